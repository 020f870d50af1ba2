"""AttentionLSTM training videos/s with and without length bucketing (TRAIN.bucket_batches) on videos
of 150-300 frames at the reference shapes (2048-d, batch 32, 3396 classes), in interleaved rounds so
both see the same machine load.

    .venv/bin/python bench/bucketing.py [--videos 256] [--steps 6] [--rounds 3]

Each round trains `steps` steps of each setting from the same start (the epoch's first batches),
timing the steps only (files are read before the clock starts).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import videotag  # noqa: E402,F401  (sets OMP_NUM_THREADS before paddle)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from core.config import load_config  # noqa: E402
from core.trainer import batch_loss_scale, build_optimizer  # noqa: E402
from videotag.models import default_config_path, make_task  # noqa: E402


def write_features(folder, videos, shortest, longest, dim=2048, num_classes=3396):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(videos):
        name = f"v{i:04d}.npy"
        frames = int(rng.integers(shortest, longest + 1))
        np.save(os.path.join(folder, name), rng.standard_normal((frames, dim), dtype=np.float32))
        lines.append(f"{name} {rng.integers(num_classes)} {rng.integers(num_classes)}")
    path = os.path.join(folder, "train.list")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def first_batches(task, steps):
    source = task.source("train")
    batches, padded, real = [], 0, 0
    for batch in source.batches(shuffle=True, drop_last=True, epoch=0, seed=0):
        padded += batch.mask.size
        real += int(batch.mask.sum())
        if len(batches) < steps:
            batches.append(batch)
    return batches, padded, real


def timed_steps(task, batches):
    """videos/s of training steps on `batches` (the trainer's step: loss x batch_loss scale, RMSProp)."""
    paddle.seed(0)
    model = task.build_model()
    model.train()
    optimizer = build_optimizer(task.cfg.TRAIN, model)
    scale = batch_loss_scale(task.cfg.TRAIN)

    def step(batch):
        loss = task.loss(task.forward(model, batch), batch) * scale
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    step(batches[0])  # warm-up: allocation and kernel selection (not timed)
    start = time.perf_counter()
    for batch in batches[1:]:
        step(batch)
    return sum(len(b.names) for b in batches[1:]) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=256)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shortest", type=int, default=150)
    parser.add_argument("--longest", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        list_path = write_features(folder, args.videos, args.shortest, args.longest)
        settings = {}
        for bucket in (0, 8):
            overrides = [f"TRAIN.filelist={list_path}", "TRAIN.batch_size=32", f"TRAIN.bucket_batches={bucket}"]
            task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), overrides))
            settings[bucket] = (task, *first_batches(task, args.steps + 1))
        rates = {bucket: [] for bucket in settings}
        for round_no in range(args.rounds):
            for bucket, (task, batches, _, _) in settings.items():
                rates[bucket].append(timed_steps(task, batches))
            print(f"round {round_no + 1}: " + ", ".join(f"bucket_batches {b}: {r[-1]:.2f} videos/s"
                                                      for b, r in rates.items()), flush=True)
    print(f"\nAttentionLSTM training, {args.shortest}-{args.longest} frames, 2048-d, batch 32, 3396 classes; "
          f"{os.cpu_count()} CPU cores, paddle {paddle.__version__}")
    print(f"{'bucket_batches':<16}{'frames computed/real (epoch)':>30}{'videos/s per round':>32}{'ratio':>8}")
    for bucket, (_, _, padded, real) in settings.items():
        ratios = np.array(rates[bucket]) / np.array(rates[0])
        print(f"{bucket:<16}{padded / real:>30.3f}{', '.join(f'{r:.2f}' for r in rates[bucket]):>32}"
              f"{ratios.mean():>8.2f}")


if __name__ == "__main__":
    main()
