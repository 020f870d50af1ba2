"""Weights of other projects rewritten in this project's names, as .safetensors: a head from VideoTag,
the PaddleCV video zoo (.pdparams or a one-file-per-parameter folder) or PaddleVideo (docs/MODELS.md),
or a backbone (--extractor_config's MODEL.backbone) from VideoTag's static tsn.pdparams or PaddleVideo.
Every command also reads the originals directly; a converted file loads faster and without the renaming.

    python -m videotag.convert --model AttentionLSTM --weights attention_lstm.pdparams --save attention_lstm.safetensors
    python -m videotag.convert --model NeXtVLAD --config configs/nextvlad_yt8m.yaml --weights NeXtVLAD_final.pdparams \
        --save nextvlad_yt8m.safetensors
    python -m videotag.convert --extractor_weights tsn.pdparams --save tsn.safetensors

The head is built from its config (--config, -o) and loaded exactly, so a file that does not fit
fails here rather than later.
"""
import argparse
import inspect

import core  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from core.checkpoint import build_with_weights
from core.config import load_config
from core.errors import InputError, exit_on_input_error
from core.log import log, setup as setup_logging
from core.safeload import save_safetensors
from extractor import backbones
from extractor.cli import DEFAULT_CONFIG
from extractor.predictor import build_model as build_backbone

from . import cli
from .export import describe_backbone
from .models import HEADS, default_config_path


def parse_args(argv):
    p = argparse.ArgumentParser(prog="python -m videotag.convert", description=inspect.cleandoc(__doc__),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name", "--model", help=", ".join(HEADS) + " (with --weights)")
    p.add_argument("--config", help="the head's yaml (default: the model's file in configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.key=value",
                   help="override a config value (repeatable), e.g. -o MODEL.num_classes=3862")
    p.add_argument("--weights", help="the head's weights: a .pdparams, .safetensors or fluid folder")
    p.add_argument("--extractor_weights", help="the backbone's weights (instead of --weights)")
    p.add_argument("--extractor_config", default=default_config_path("TSN"),
                   help="the extractor's yaml, for MODEL.backbone and its depth (default configs/tsn.yaml)")
    p.add_argument("--save", required=True, help="the .safetensors to write")
    p.set_defaults(save_dir=None)  # cli.setup names one; nothing is written there
    args = p.parse_args(argv)
    if bool(args.weights) == bool(args.extractor_weights):
        raise InputError("give --weights (a head) or --extractor_weights (a backbone), one of them")
    if args.weights and args.model_name not in HEADS:
        raise InputError(f"--weights needs --model, one of {', '.join(HEADS)}")
    if not args.save.endswith(".safetensors"):
        raise InputError("--save must name a .safetensors file", args.save)
    return args


def convert_head(args):
    cfg, task = cli.setup(args)
    model = build_with_weights(task, args.weights)
    switches = {k: cfg.MODEL[k] for k in ("lstm", "scale_rgb") if k in cfg.MODEL}
    save_safetensors(model.state_dict(), args.save)
    log.info("%s: %s in this project's names%s", args.save, task.model_name,
             "".join(f", MODEL.{k}={v} (follows from the names)" for k, v in switches.items()))


def convert_backbone(args):
    setup_logging()
    extractor_cfg = load_config(args.extractor_config, reference=DEFAULT_CONFIG)
    backbones.get(extractor_cfg.MODEL, extractor_cfg.path)  # an unknown backbone or depth: one line
    save_safetensors(build_backbone(extractor_cfg.MODEL, args.extractor_weights).state_dict(), args.save)
    log.info("%s: the %s backbone in this project's names", args.save, describe_backbone(extractor_cfg.MODEL))


@exit_on_input_error
def main(argv=None):
    args = parse_args(argv)
    if args.weights:
        convert_head(args)
    else:
        convert_backbone(args)


if __name__ == "__main__":
    main()
