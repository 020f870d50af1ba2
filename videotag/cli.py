"""What train.py, eval.py and predict.py share: their common flags, logging, the task for a model."""
import argparse
import inspect
import os

from core.config import load_config, saved_config_beside
from core.log import log, setup as setup_logging

from .models import MODELS, default_config_path, make_task


def parser(description, prog, weights_help=None):
    p = argparse.ArgumentParser(prog=prog, description=inspect.cleandoc(description),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model_name", "--model", required=True, help=", ".join(MODELS))
    p.add_argument("--config", help="yaml config (default: config.yaml beside --weights, written by its training run, else the model's file in configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.key=value",
                   help="override a config value (repeatable), e.g. -o TRAIN.epoch=3")
    p.add_argument("--save_dir", help="output folder (default: output/<model_name>)")
    if weights_help:
        p.add_argument("--weights", required=True, help=weights_help)
    return p


def fluid_weights_path(path):
    """`weights/attention_lstm` for weights/attention_lstm.pdparams, as fluid.load took it (FineTune.md)."""
    if path and not os.path.exists(path) and os.path.isfile(path + ".pdparams"):
        return path + ".pdparams"
    return path


def setup(args):
    """Logging (only the first process talks), the config, the save folder, the task."""
    setup_logging()
    for flag in ("weights", "pretrain"):
        if getattr(args, flag, None):
            setattr(args, flag, fluid_weights_path(getattr(args, flag)))
    if not args.config:
        args.config = saved_config_beside(getattr(args, "weights", None), args.model_name)
        if args.config:
            log.info("config of the training run: %s", args.config)
    reference = default_config_path(args.model_name)  # the schema and defaults of a user's file
    cfg = load_config(args.config or reference, args.override, reference)
    args.save_dir = args.save_dir or os.path.join("output", args.model_name)
    return cfg, make_task(args.model_name, cfg)

