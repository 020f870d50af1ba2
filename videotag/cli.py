"""What train.py, eval.py and predict.py share: their common flags, logging, the task for a model."""
import argparse
import logging
import os

from core import dist
from core.config import default_config_path, load_config


def parser(description, weights_help=None):
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--model_name", "--model", required=True,
                   help="AttentionLSTM, AttentionCluster, NeXtVLAD (stage two) or TSN (stage one)")
    p.add_argument("--config", help="yaml config (default: the model's file in configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.key=value",
                   help="override a config value (repeatable), e.g. -o TRAIN.epoch=3")
    p.add_argument("--save_dir", help="output folder (default: output/<model_name>)")
    if weights_help:
        p.add_argument("--weights", required=True, help=weights_help)
    return p


def setup(args):
    """Logging (only the first process talks), the config, the save folder, the task."""
    log = logging.getLogger("videotag")
    if not log.handlers:  # our own handler: paddle sets up the root logger with its format on import
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", datefmt="%H:%M:%S"))
        log.addHandler(handler)
        log.propagate = False
    log.setLevel(logging.INFO if dist.is_main() else logging.WARNING)
    cfg = load_config(args.config or default_config_path(args.model_name), args.override)
    args.save_dir = args.save_dir or os.path.join("output", args.model_name)
    return cfg, make_task(args.model_name, cfg)


def make_task(model_name, cfg):
    from sequence.task import HEADS, SequenceTask

    if model_name in HEADS:
        return SequenceTask(model_name, cfg)
    if model_name == "TSN":
        from extractor.tsn import TSNTask

        return TSNTask(cfg)
    from core.errors import InputError

    raise InputError(f"unknown model '{model_name}'; choose one of {', '.join(HEADS)}, TSN")
