"""bash run.sh calibrate: make a reduced-precision backbone for your videos and say how far it is from fp32.

    bash run.sh calibrate --video_path VIDEOS --extractor_weights tsn.pdparams [--precision int8|bf16]
        [--model AttentionLSTM --weights head.pdparams]

int8 (the default): --frames frames sampled evenly from the library calibrate Paddle's post-training
quantisation (a temporal-shift backbone's in whole clips; PP-TSMv2 is refused on Paddle 3);
the int8 backbone is cached by backbone, weights, crop size, paddle version and precision, where
extract and tag (--precision int8) find it. Then, for both int8 and bf16, --check_videos videos go
through fp32 and the reduced precision and it prints the features' cosine similarity (mean, min),
the backbone's speed in both, and, given a head, how often their top-k tags agree and the largest
difference of a tag probability. --check: only the comparison (no new calibration).
"""
import argparse
import math
import time

import numpy as np

import core  # noqa: F401  (sets OMP_NUM_THREADS before paddle loads)
from core.config import load_config
from core.errors import InputError, exit_on_input_error
from core.log import log, setup as setup_logging
from extractor.cli import DEFAULT_CONFIG, check_settings
from extractor.pipeline import InferSettings, backbone_from_config, clip_batch_size, clip_order, iter_video_features
from extractor.predictor import (backbone_shape, check_int8_backbone, check_precision, inference_device,
                                quantize_int8, read_calibration)
from extractor.sampling import normalize
from extractor.video import VideoError, read_sampled_crops
from extractor.videos import listed_videos

from . import cli
from .heads import DygraphHead, Tagger
from .tagging import add_extractor_arguments


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bash run.sh calibrate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--video_path", help="a folder of your videos (searched recursively)")
    source.add_argument("--filelist", help="one video path per line")
    add_extractor_arguments(p)
    p.add_argument("--frames", type=int, default=64, help="calibration frames, spread over the library (int8)")
    p.add_argument("--check_videos", type=int, default=4, help="videos compared in fp32 and the reduced precision")
    p.add_argument("--check", action="store_true", help="only compare: keep the int8 calibration there is")
    p.add_argument("--model_name", "--model", help="a head, to compare tags too (with --weights)")
    p.add_argument("--weights", help="the head's .pdparams")
    p.add_argument("--config", help="the head's yaml (default: beside --weights, else configs/)")
    p.add_argument("-o", "--override", action="append", default=[], metavar="SECTION.key=value",
                   help="override a value of the head's config (repeatable)")
    p.add_argument("--topk", type=int, default=5)
    args = p.parse_args(argv)
    if bool(args.model_name) != bool(args.weights):
        p.error("--model and --weights go together")
    return args


def spread(items, count):
    """`count` items evenly spread over `items` (all when there are fewer)."""
    if count >= len(items):
        return list(items)
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, count).round()]


def calibration_frames(videos, count, settings, clip_frames=0):
    """`count` normalised frames: segment middles of videos spread over the library. For a shift
    backbone, whole clips (count rounded up to them) in the order extraction runs them."""
    clip = clip_frames or 1
    count = -(-count // clip) * clip
    chosen = spread(videos, count // clip)
    per_video = math.ceil(count / len(chosen) / clip) * clip
    crops, sources = [], []
    for video in chosen:
        try:
            frames, _ = read_sampled_crops(video.path, per_video, settings.short_size, settings.target_size,
                                           settings.resize, settings.accept_partial, settings.sampling)
        except VideoError as err:
            log.warning("calibration skips %s: %s", video.path, err.reason)
            continue
        crops.append(frames[clip_order(len(frames), clip_frames)[0]] if clip_frames else frames)
        sources.append(video.path)
    if not crops:
        raise InputError("no video of the library could be decoded for calibration")
    return normalize(np.concatenate(crops)[:count]), sources


class TimedBackbone:
    """A backbone that counts its frames, wall seconds and CPU seconds (all threads of the process)."""

    def __init__(self, backbone):
        self.backbone, self.frames, self.wall, self.cpu = backbone, 0, 0.0, 0.0
        self.clip_frames = getattr(backbone, "clip_frames", 0)  # the pipeline batches a shift backbone's clips

    def __call__(self, images):
        wall, cpu = time.perf_counter(), time.process_time()
        features = self.backbone(images)
        self.wall += time.perf_counter() - wall
        self.cpu += time.process_time() - cpu
        self.frames += len(images)
        return features

    def speed(self):
        return self.frames / max(self.wall, 1e-9), self.frames / max(self.cpu, 1e-9)


def video_features(videos, settings, backbone):
    results = list(iter_video_features(videos, settings, backbone))
    return {r.video.path: r.features for r in results if r.ok}


def cosines(reference, other):
    return [float(c) for path in reference for c in
            (reference[path] * other[path]).sum(1)
            / (np.linalg.norm(reference[path], axis=1) * np.linalg.norm(other[path], axis=1) + 1e-12)]


def tag_agreement(args, reference, other, batch_size):
    """Top-k agreement (mean share of common tags, videos with the same first tag) and the largest
    difference of any tag probability between the two feature sets."""
    args.save_dir = None
    cfg, task = cli.setup(args)
    num_classes = int(cfg.MODEL.num_classes)
    tagger = Tagger(DygraphHead(task, args.weights), cfg.MODEL, [str(i) for i in range(num_classes)],
                    num_classes, batch_size)
    paths = sorted(reference)

    def probabilities(features):
        table = np.zeros((len(paths), num_classes))
        for row, tags in enumerate(tagger([features[p] for p in paths])):
            for tag in tags:
                table[row, tag["class_id"]] = tag["probability"]
        return table

    first, second = probabilities(reference), probabilities(other)
    topk = min(args.topk, num_classes)
    top_a, top_b = (np.argsort(-t, axis=1, kind="stable")[:, :topk] for t in (first, second))
    shared = [len(set(a) & set(b)) / topk for a, b in zip(top_a, top_b)]
    return {"model": args.model_name, "topk": topk, "topk_agreement": float(np.mean(shared)),
            "top1_same": int((top_a[:, 0] == top_b[:, 0]).sum()), "videos": len(paths),
            "max_probability_difference": float(np.abs(first - second).max())}


def compare(videos, cfg, settings, args, precision):
    """fp32 against `precision` on `videos`: the report's numbers."""
    timed = {}
    features = {}
    for name in ("fp32", precision):
        cfg.INFER["precision"] = name
        backbone = backbone_from_config(cfg, args.extractor_weights, "inference", args.cache_dir)
        size = settings.target_size
        warm_up = clip_batch_size(settings.batch_size, backbone.clip_frames)  # whole clips of a shift backbone
        backbone(np.zeros((warm_up, 3, size, size), "float32"))  # first calls build the kernels: not timed
        timed[name] = TimedBackbone(backbone)
        features[name] = video_features(videos, settings, timed[name])
    decoded = [path for path in features["fp32"] if path in features[precision]]
    if not decoded:
        raise InputError("none of the check videos could be decoded")
    reference, other = ({p: features[n][p] for p in decoded} for n in ("fp32", precision))
    similarity = cosines(reference, other)
    report = {"precision": precision, "videos": len(decoded), "frames": len(similarity),
              "cosine_mean": float(np.mean(similarity)), "cosine_min": float(np.min(similarity)),
              "speed": {name: dict(zip(("img_per_s", "img_per_cpu_s"), t.speed())) for name, t in timed.items()}}
    if args.model_name:
        report["tags"] = tag_agreement(args, reference, other, settings.batch_size)
    return report


def print_report(report, settings):
    speed = report["speed"]
    ratio = speed[report["precision"]]["img_per_s"] / speed["fp32"]["img_per_s"]
    print(f"\n{report['precision']} against fp32 on {report['videos']} videos ({report['frames']} frames, "
          f"seg_num {settings.seg_num}, {settings.target_size}px crops):")
    print(f"  feature cosine      mean {report['cosine_mean']:.5f}   min {report['cosine_min']:.5f}")
    print("  backbone speed      " + ",  ".join(
        f"{name} {s['img_per_s']:.1f} img/s ({s['img_per_cpu_s']:.1f} per CPU-s)" for name, s in speed.items())
        + f":  {ratio:.2f}x\n                      (one pass each on a warm backbone; on a busy machine see "
        "bench/extraction.py --precision, in interleaved rounds)")
    if "tags" in report:
        tags = report["tags"]
        print(f"  {tags['model']} tags:  top-{tags['topk']} agreement {tags['topk_agreement']:.3f},  same first tag "
              f"{tags['top1_same']}/{tags['videos']},  largest probability difference "
              f"{tags['max_probability_difference']:.4f}")


def calibrate(args):
    """Calibrate (int8) and compare; returns the report (a dict)."""
    cfg = load_config(args.extractor_config, args.extractor_override, DEFAULT_CONFIG)
    settings = InferSettings.from_config(cfg)
    check_settings(settings, cfg.path)
    precision = settings.precision
    if precision == "fp32":
        precision = "int8"
        log.info("calibrating int8 (pass --precision bf16 to compare bf16 instead)")
    check_precision(precision, inference_device(), "inference", cfg.path)
    if args.frames < 1 or args.check_videos < 1:
        raise InputError("--frames and --check_videos must be positive")
    if precision == "int8":
        check_int8_backbone(cfg.MODEL, cfg.path)
    videos = listed_videos(args.filelist, args.video_path, "no videos")
    if precision == "int8":
        if args.check:
            read_calibration(cfg.MODEL, args.extractor_weights, settings.target_size, args.cache_dir)  # or refuses
        else:
            frames, sources = calibration_frames(videos, args.frames, settings, backbone_shape(cfg.MODEL)[1])
            quantize_int8(cfg.MODEL, args.extractor_weights, settings.target_size, frames, args.cache_dir, sources)
    report = compare(spread(videos, args.check_videos), cfg, settings, args, precision)
    print_report(report, settings)
    return report


@exit_on_input_error
def main(argv=None):
    setup_logging()
    calibrate(parse_args(argv))


if __name__ == "__main__":
    main()
