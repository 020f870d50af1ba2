"""bash run.sh demo [HEAD]: both stages, end to end, on a small generated video library (CPU, minutes).

make library -> extract frame features -> train HEAD -> evaluate next to chance -> tag test videos.
The backbone has random weights unless --extractor_weights is given: features then carry brightness, texture
and their changes over time well, colours and shapes poorly, and the figures say so.
"""
import argparse
import json
import os
import time

import numpy as np

import core  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from core.config import load_config
from core.errors import InputError, exit_on_input_error
from core.flags import renamed
from core.lists import list_entries
from extractor import cli as extractor_cli
from extractor.pipeline import backbone_from_config
from sequence.data import read_feature_list
from sequence.metrics import all_metrics

from . import commands, synthetic
from .models import HEADS, MODELS

# Few segments and a small crop, so that extraction fits a 2-core machine in about a minute.
EXTRACT = ["INFER.seg_num=8", "INFER.short_size=64", "INFER.target_size=64", "INFER.batch_size=32"]
# 56 epochs of 9 batches: the 500 optimizer steps a run needs (the trainer warns below that).
TRAIN = ["TRAIN.batch_size=16", "TRAIN.epoch=56", "TRAIN.optimizer=Adam", "TRAIN.learning_rate=0.001",
         "TRAIN.lr_schedule=constant", "TRAIN.weight_decay=0", "MODEL.drop_rate=0.2",
         "VALID.batch_size=48", "TEST.batch_size=48", "INFER.batch_size=48"]
SPLITS = ("train", "val", "test")


def extract_library(library, save_dir, weights):
    """Features of every split, with one backbone; returns {split: features.list}."""
    lists, backbone = {}, None
    for split in SPLITS:
        argv = ["--filelist", library["lists"][split], "--save_dir", os.path.join(save_dir, split)]
        argv += ["--extractor_weights", weights] if weights else []
        for item in EXTRACT:
            argv += ["-o", item]
        args = extractor_cli.parse_args(argv)
        if backbone is None:
            backbone = backbone_from_config(load_config(args.config, args.override, extractor_cli.DEFAULT_CONFIG), weights, args.extractor_backend,
                                            args.cache_dir)
        if extractor_cli.extract(args, backbone=backbone) != 0:
            raise InputError(f"some videos failed, see {args.save_dir}/failures.txt", library["lists"][split])
        lists[split] = os.path.join(save_dir, split, extractor_cli.FEATURE_LIST)
    return lists


def chance_baselines(lists, num_classes):
    """Metrics of guessing: random scores, and every video scored by the classes' training frequency."""
    def multi_hot(path):
        videos = read_feature_list(path, num_classes)
        labels = np.zeros((len(videos), num_classes))
        for row, video in enumerate(videos):
            labels[row, video.labels] = 1
        return labels

    train, test = multi_hot(lists["train"]), multi_hot(lists["test"])
    random_scores = np.random.default_rng(0).random(test.shape)
    prior = np.tile(train.mean(axis=0), (len(test), 1))
    return {"random scores": all_metrics(random_scores, test), "class frequency": all_metrics(prior, test)}


def print_report(head, metrics, baselines, predictions_path, library, lists, seconds, weights):
    names = library["label_names"]
    print(f"\n=== {head} on the demo library ({'random' if not weights else 'given'} backbone weights) ===")
    print(f"{'':<18}{'GAP':>8}{'Hit@1':>8}{'PERR':>8}{'mAP':>8}")
    for label, row in [(head, metrics), *baselines.items()]:
        print(f"{label:<18}" + "".join(f"{row[k]:>8.3f}" for k in ("gap", "hit_at_one", "perr", "map")))
    truth = {fields[0]: [names[int(c)] for c in fields[1:]] for _, fields, _ in list_entries(lists["test"])}
    print("\nTags of a few test videos (top 5, probability) beside their true labels:")
    with open(predictions_path) as f:
        for line in list(f)[:5]:
            row = json.loads(line)
            tags = ", ".join(f"{t['class_name']} {t['probability']:.2f}" for t in row["tags"])
            print(f"  {os.path.basename(row['video'])}\n    predicted: {tags}\n    true:      "
                  f"{', '.join(truth[row['video']])}")
    print(f"\nboth stages in {seconds:.0f} s; outputs in {os.path.dirname(predictions_path)}")


@exit_on_input_error
def main(argv=None):
    parser = argparse.ArgumentParser(prog="bash run.sh demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("head", nargs="?", choices=HEADS, help="the head to train (default AttentionLSTM)")
    parser.add_argument("--model", choices=HEADS, help="the same, as the other commands take it")
    parser.add_argument("--extractor_weights", help="backbone checkpoint (VideoTag tsn.pdparams, PaddleVideo or ours)")
    renamed(parser, "--weights", "--extractor_weights")
    parser.add_argument("--library", default="data/demo", help="where the generated videos go (made once)")
    parser.add_argument("--save_dir", default="output/demo", help="features, checkpoints, metrics, tags")
    parser.add_argument("--num_videos", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.head = args.model or args.head or "AttentionLSTM"
    start = time.time()

    library = synthetic.make_library(args.library, num_videos=args.num_videos, seed=args.seed)
    feature_dir = os.path.join(args.save_dir, "features-" + ("random" if not args.extractor_weights else "given"))
    lists = extract_library(library, feature_dir, args.extractor_weights)

    head_dir = os.path.join(args.save_dir, args.head)
    common = ["--model_name", args.head, "--save_dir", head_dir]
    for item in [*MODELS[args.head].demo] + TRAIN + [
            f"MODEL.num_classes={len(library['label_names'])}", f"TRAIN.filelist={lists['train']}",
            f"VALID.filelist={lists['val']}", f"TEST.filelist={lists['test']}", f"INFER.filelist={lists['test']}"]:
        common += ["-o", item]
    commands.train(common)
    best = os.path.join(head_dir, f"{args.head}_best.pdparams")
    metrics = commands.evaluate(common + ["--weights", best])
    commands.predict(common + ["--weights", best, "--label_file", library["labels_file"], "--topk", "5"])
    print_report(args.head, metrics, chance_baselines(lists, len(library["label_names"])),
                 os.path.join(head_dir, "predictions.jsonl"), library, lists, time.time() - start, args.extractor_weights)


if __name__ == "__main__":
    main()
