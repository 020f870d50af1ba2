"""Video quality scores (docs/QUALITY.md): `bash run.sh score` for scores alone, and the scorer that
`bash run.sh tag --quality_weights W` runs on each video beside its tags.

The weights say which model they are (the config.yaml their training run left beside them):
  Quality      end to end: the video's frames, sampled and cut its own way (decoded again when tagging)
  QualityHead  on features: those tagging has just extracted (nothing decoded again), or for `score` a
               feature list (.npy per line, as `tag --keep_features` keeps them)

    bash run.sh score --weights out/Quality_best.pdparams --video_path library/ --save_dir scores/
    bash run.sh score --weights out/QualityHead_best.pdparams --filelist kept/features.list --save_dir scores/

Writes <save_dir>/scores.jsonl ({"video": ..., "quality": ...} per video, in list order), scores.csv,
and failures.txt (videos that could not be read; exit status 1 when there are any).
"""
import argparse
import csv
import json
import os
import sys

import paddle

from core import dist
from core.checkpoint import build_with_weights
from core.config import load_config, saved_config_beside
from core.errors import InputError, check_writable, exit_on_input_error
from core.fsutil import atomic_open
from core.log import log, setup as setup_logging
from core.trainer import Trainer
from extractor.quality_data import QualityListSource, unscored, video_frames
from extractor.sampling import normalize
from extractor.videos import find_videos
from sequence.data import segments

from .models import default_config_path, make_task

QUALITY_MODELS = ("Quality", "QualityHead")
SCORES, SCORES_CSV, FAILURES = "scores.jsonl", "scores.csv", "failures.txt"


def quality_model_name(weights):
    """The quality model `weights` are for: MODEL.name of the config.yaml beside them, else Quality."""
    return next((name for name in QUALITY_MODELS if saved_config_beside(weights, name)), "Quality")


def quality_setup(weights, overrides=()):
    """(config, task, model in eval mode) of quality weights."""
    if not os.path.exists(weights):
        raise InputError("quality weights not found", weights)
    name = quality_model_name(weights)
    cfg = load_config(saved_config_beside(weights, name) or default_config_path(name), list(overrides),
                      default_config_path(name))
    task = make_task(name, cfg)
    model = build_with_weights(task, weights)
    model.eval()
    return cfg, task, model


class QualityScorer:
    """One video's score at a time, for tagging: scorer(video path, its extracted features [T, D])."""

    def __init__(self, weights, overrides=()):
        self.cfg, self.task, self.model = quality_setup(weights, overrides)
        self.on_features = self.task.model_name == "QualityHead"

    def __call__(self, video_path, features):
        """The score; ValueError or InputError when this video cannot be scored."""
        with paddle.no_grad():
            if self.on_features:
                dim = int(self.cfg.MODEL.feature_dims[0])
                if features.ndim != 2 or features.shape[1] != dim:
                    raise ValueError(f"the quality head takes [frames, {dim}] features, not {list(features.shape)}")
                frames = segments([features.astype("float32")], self.cfg.MODEL.get("seg_num"))[0]
                score = self.model([paddle.to_tensor(frames[None])], paddle.ones([1, len(frames)]))
            else:
                images = normalize(video_frames(video_path, self.cfg.INFER))
                score = self.model(paddle.to_tensor(images[None]))
        return round(float(score.numpy().ravel()[0]), 4)


def usable(source):
    """(positions that read, [(name, reason)] of those that do not)."""
    good, failures = [], []
    for index, video in enumerate(source.videos):
        try:
            source.check(index)
            good.append(index)
        except InputError as err:
            failures.append((video.name, str(err)))
    return good, failures


def write_scores(save_dir, names, scores):
    with atomic_open(os.path.join(save_dir, SCORES), encoding="utf-8") as f:
        f.writelines(json.dumps({"video": name, "quality": score}, ensure_ascii=False) + "\n"
                     for name, score in zip(names, scores))
    with atomic_open(os.path.join(save_dir, SCORES_CSV), newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(("video", "quality"))
        writer.writerows(zip(names, scores))


def score_source(args, task):
    """The data to score: a folder or list of videos (Quality), a feature list (QualityHead)."""
    if task.model_name == "QualityHead":
        if not args.filelist:
            raise InputError("the feature-level quality head scores a feature list: give --filelist")
        return task.source("infer", args.filelist)
    if args.video_path:
        return QualityListSource(args.video_path, task.cfg.INFER, training=False, num_workers=args.num_workers,
                                 videos=unscored(v.path for v in find_videos(args.video_path)))
    return task.source("infer", args.filelist)


@exit_on_input_error
def main(argv=None):
    p = argparse.ArgumentParser(prog="run.sh score", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a Quality or QualityHead checkpoint (its config.yaml beside it)")
    p.add_argument("--video_path", help="score every video under this folder (Quality)")
    p.add_argument("--filelist", help="videos (Quality) or features (QualityHead) to score, one per line")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.key=value",
                   help="override a config value, e.g. -o INFER.input=whole")
    p.add_argument("--num_workers", type=int, default=2, help="videos decoded ahead")
    p.add_argument("--save_dir", default="output/scores")
    args = p.parse_args(argv)
    setup_logging()
    if bool(args.video_path) == bool(args.filelist):
        raise InputError("give --video_path or --filelist (one of them)")
    cfg, task, model = quality_setup(args.weights, args.override)
    check_writable(args.save_dir)
    source = score_source(args, task)
    good, failures = usable(source)
    source.videos = [source.videos[i] for i in good]
    if hasattr(source, "scores"):  # the feature source keeps its scores apart
        source.scores = [source.scores[i] for i in good]
    names, scores = [], []
    if source.videos:
        names, outputs, _ = Trainer(task, args.save_dir).infer(model, source)
        scores = [round(float(x), 4) for x in outputs.ravel()]
    if dist.is_main():
        write_scores(args.save_dir, names, scores)
        with atomic_open(os.path.join(args.save_dir, FAILURES), encoding="utf-8") as f:
            f.writelines(f"{name}\t{reason}\n" for name, reason in failures)
        ranked = sorted(zip(scores, names))
        log.info("%d videos scored into %s (%s)%s", len(names), os.path.join(args.save_dir, SCORES), task.model_name,
                 f"; {len(failures)} could not be read ({FAILURES})" if failures else "")
        if ranked:
            log.info("lowest: %s", ", ".join(f"{n} {s:.3f}" for s, n in ranked[:3]))
            log.info("highest: %s", ", ".join(f"{n} {s:.3f}" for s, n in ranked[::-1][:3]))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
