"""Paddle inference models of both stages, for `predict.py --inference_dir DIR` (and any
paddle.inference deployment): DIR/backbone.* (images [N, 3, S, S] -> [N, feature_dim]: the
extractor config's MODEL.backbone; a temporal-shift one takes N in whole clips), DIR/head.*
(features [B, T, D] and mask [B, T] -> logits [B, classes]; batch and time dynamic) and
DIR/export.json, the settings they were exported with (written last: a folder without it is
incomplete).

    python -m videotag.export --model AttentionLSTM --weights out/AttentionLSTM_best.pdparams \
        --extractor_weights tsn.pdparams --save_dir inference/
"""
import json
import os

import core  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
import paddle
from paddle.static import InputSpec

from core.checkpoint import build_with_weights
from core.config import load_config
from core.errors import InputError, exit_on_input_error
from core.fsutil import atomic_open
from core.log import log
from extractor import backbones
from extractor.cli import DEFAULT_CONFIG
from extractor.predictor import build_model, check_precision, inference_device, save_inference_program

from . import cli
from .heads import MANIFEST, check_head_takes_extractor_features
from .tagging import add_extractor_arguments

HEAD, BACKBONE = "head", "backbone"


def head_input_spec(model_cfg):
    return [[InputSpec([None, None, dim], "float32", name=name)
             for name, dim in zip(model_cfg["feature_names"], model_cfg["feature_dims"])],
            InputSpec([None, None], "float32", name="mask")]


def export_head(head, model_cfg, prefix):
    """The head (in eval mode) as a Paddle inference model at prefix.json/.pdmodel + .pdiparams."""
    # full_graph: without it Paddle 3.x traces in SOT mode and ignores the input_spec (docs/MODELS.md).
    paddle.jit.save(paddle.jit.to_static(head, input_spec=head_input_spec(model_cfg), full_graph=True), prefix)


def check_exportable_precision(extractor_cfg):
    """fp32 and bf16 share the exported program (bf16 is switched on where it runs, from
    export.json); the int8 program lives in the calibration cache and is not exported."""
    precision = str(extractor_cfg.INFER.get("precision", "fp32"))
    check_precision(precision, inference_device(), "inference", extractor_cfg.path)
    if precision == "int8":
        raise InputError("int8 backbones are not exported: export with --precision fp32 or bf16, or tag with "
                         "--extractor_weights and --precision int8 (after bash run.sh calibrate)", extractor_cfg.path)


def export(args, cfg, task, extractor_cfg):
    check_exportable_precision(extractor_cfg)
    os.makedirs(args.save_dir, exist_ok=True)
    head = build_with_weights(task, args.weights)  # sets the MODEL switches the weights need
    head.eval()
    export_head(head, cfg.MODEL, os.path.join(args.save_dir, HEAD))
    size = int(extractor_cfg.INFER.target_size)
    save_inference_program(build_model(extractor_cfg.MODEL, args.extractor_weights),
                           os.path.join(args.save_dir, BACKBONE), size)
    manifest = {"model_name": task.model_name, "head": HEAD, "backbone": BACKBONE,
                "model": dict(cfg.MODEL),
                "extractor": {"MODEL": dict(extractor_cfg.MODEL), "INFER": dict(extractor_cfg.INFER)},
                "weights": os.path.abspath(args.weights),
                "extractor_weights": args.extractor_weights and os.path.abspath(args.extractor_weights),
                "paddle": paddle.__version__}
    with atomic_open(os.path.join(args.save_dir, MANIFEST)) as f:
        json.dump(manifest, f, indent=2)
    log.info("exported %s and the %s backbone (%dx%d crops, %s) to %s", task.model_name,
             describe_backbone(extractor_cfg.MODEL), size, size, extractor_cfg.INFER.get("precision", "fp32"),
             args.save_dir)


def describe_backbone(model_cfg):
    spec = backbones.get(model_cfg)
    return spec.description + (f", {model_cfg.get('num_layers', 101)} layers" if spec.depths else "")


@exit_on_input_error
def main(argv=None):
    p = cli.parser(__doc__, prog="python -m videotag.export", weights_help="the .pdparams of the head")
    add_extractor_arguments(p, runs=False)
    args = p.parse_args(argv)
    args.save_dir = args.save_dir or os.path.join("output", args.model_name, "inference")
    cfg, task = cli.setup(args)
    extractor_cfg = load_config(args.extractor_config, args.extractor_override, DEFAULT_CONFIG)
    backbones.get(extractor_cfg.MODEL, extractor_cfg.path)  # an unknown backbone or depth: one line
    check_head_takes_extractor_features(cfg.MODEL, cfg.path, extractor_cfg.MODEL)
    export(args, cfg, task, extractor_cfg)


if __name__ == "__main__":
    main()
