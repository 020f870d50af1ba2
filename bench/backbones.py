"""Stage one's backbones side by side (MODEL.backbone), in one run on the same frames, same engine:

  network     images/s and images per CPU-second of each backbone through the extractor's own
              predictor (extractor.predictor.create_backbone -> paddle.inference), one batch of 32
              frames decoded from the 360p clip (224 crops), in interleaved rounds (A, B, C, A, ...);
              "vs ResNet-101" is the median of each round's ratio
  per video   wall seconds of extractor.pipeline.iter_video_features on the 10 s 360p clip (decoding,
              crop, normalisation, network) at seg_num = the backbone's clip (8; PP-TSMv2-16: 16),
              and the network's share of VideoTag's seg_num 300 (300 / images/s)

    .venv/bin/python bench/backbones.py [--rounds 3] [--precision fp32 bf16]

Weights are random (speed does not depend on them). The exports go to a temporary folder under
bench/.cache and are removed at the end.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402  (imports videotag before paddle)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from core.errors import InputError  # noqa: E402
from extractor.pipeline import InferSettings, iter_video_features  # noqa: E402
from extractor.predictor import check_precision, create_backbone  # noqa: E402
from extractor.sampling import normalize  # noqa: E402
from extractor.video import read_sampled_crops  # noqa: E402

SHORT, CROP, BATCH = 256, 224, 32
BACKBONES = {  # label: MODEL section
    "ResNet-101 TSN (resnet_tsn)": {"backbone": "resnet_tsn", "num_layers": 101},
    "PP-TSN R50 (pptsn)": {"backbone": "pptsn", "num_layers": 50},
    "PP-TSM R50 (pptsm, 8)": {"backbone": "pptsm", "num_layers": 50, "num_seg": 8},
    "PP-TSM R101 (pptsm, 8)": {"backbone": "pptsm", "num_layers": 101, "num_seg": 8},
    "PP-TSMv2 (pptsmv2, 8)": {"backbone": "pptsmv2", "num_seg": 8},
    "PP-TSMv2 (pptsmv2, 16)": {"backbone": "pptsmv2", "num_seg": 16, "temporal_attention": True},
}
BASELINE = "ResNet-101 TSN (resnet_tsn)"


def timed(backbone, images):
    """(wall seconds, CPU seconds of the whole process) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    backbone(images)
    return time.perf_counter() - wall, time.process_time() - cpu


def per_video(backbone, path, seg_num):
    settings = InferSettings(seg_num=seg_num, short_size=SHORT, target_size=CROP, batch_size=BATCH, num_workers=1)
    started = time.perf_counter()
    [result] = iter_video_features([path], settings, backbone)
    assert result.ok, result.error
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
    print(f"# {common.machine()}; paddle {paddle.__version__}; {common.load()} at start", flush=True)
    clip = common.clip("360p_10s")
    frames = normalize(read_sampled_crops(clip, BATCH, SHORT, CROP)[0])
    precisions = []
    for precision in args.precision:
        try:
            check_precision(precision)
            precisions.append(precision)
        except InputError as err:
            print(f"# {precision} skipped: {err}", flush=True)
    cache = tempfile.mkdtemp(prefix="backbones-", dir=common.CACHE)
    runs = {}  # (label, precision) -> backbone
    for label, section in BACKBONES.items():
        for precision in precisions:
            started = time.perf_counter()
            backbone = create_backbone(section, None, CROP, cache_dir=cache, max_batch=BATCH, precision=precision)
            assert backbone.backend == "inference", "the predictor fell back to dygraph"
            backbone(frames)  # warm-up: the first call of a shape builds its kernels
            runs[label, precision] = backbone
            print(f"# {label} {precision}: exported and warm in {time.perf_counter() - started:.0f} s", flush=True)
    speeds = {key: [] for key in runs}
    videos = {key: [] for key in runs}
    for round_ in range(args.rounds):
        for (label, precision), backbone in runs.items():
            wall, cpu = timed(backbone, frames)
            speeds[label, precision].append((BATCH / wall, BATCH / cpu))
            videos[label, precision].append(per_video(backbone, clip, max(8, backbone.clip_frames)))
        print(f"# round {round_ + 1}: " + ", ".join(f"{label} {precision} {s[-1][0]:.1f} img/s"
                                                     for (label, precision), s in speeds.items())
              + f"; {common.load()}", flush=True)
    rows = []
    for (label, precision), backbone in runs.items():
        measured = speeds[label, precision]
        wall, per_cpu = np.median([s[0] for s in measured]), np.median([s[1] for s in measured])
        baseline = speeds[BASELINE, precision]
        ratio = np.median([s[0] / b[0] for s, b in zip(measured, baseline)])
        seg = max(8, backbone.clip_frames)
        rows.append([label, precision, backbone.feature_dim, f"{wall:.2f}", f"{per_cpu:.2f}", f"{ratio:.2f}x",
                     f"{np.median(videos[label, precision]):.2f} s ({seg} frames)", f"{300 / wall:.0f} s"])
    shutil.rmtree(cache, ignore_errors=True)
    print()
    print(common.table(rows, ["backbone", "precision", "feature", "img/s", "img per CPU-s",
                              "vs ResNet-101 (same round)", "per 10 s video, end to end",
                              "network, seg_num 300"]))
    print(f"\nrandom weights, {CROP} crops of the 360p clip, batch {BATCH}, {args.rounds} interleaved rounds, "
          f"medians; {common.load()} at the end (a shared machine)")


if __name__ == "__main__":
    main()
