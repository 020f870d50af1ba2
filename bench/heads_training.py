"""Each head's training samples/s at the reference shapes (T=300, 2048-d, batch 32, 3396 classes)
next to the data loader's samples/s alone on the same feature files.

    .venv/bin/python bench/heads_training.py [--videos 96] [--steps 3]

Prints a table; the loader should run at least 10x the slowest model, so it never starves training.
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

from core.trainer import build_optimizer  # noqa: E402
from core.config import load_config  # noqa: E402
from videotag.models import HEADS, default_config_path, make_task  # noqa: E402


def write_features(folder, videos, frames=300, dim=2048, num_classes=3396):
    """A feature list of `videos` random videos of `frames` frames, or of (shortest, longest)."""
    rng = np.random.default_rng(0)
    shortest, longest = (frames, frames) if isinstance(frames, int) else frames
    lines = []
    for i in range(videos):
        name = f"v{i:04d}.npy"
        length = int(rng.integers(shortest, longest + 1))
        np.save(os.path.join(folder, name), rng.standard_normal((length, dim), dtype=np.float32))
        lines.append(f"{name} {rng.integers(num_classes)} {rng.integers(num_classes)}")
    path = os.path.join(folder, "train.list")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def task_for(model_name, list_path, batch_size):
    overrides = [f"TRAIN.filelist={list_path}", f"TRAIN.batch_size={batch_size}"]
    return make_task(model_name, load_config(default_config_path(model_name), overrides))


def loader_rate(source):
    start, seen = time.perf_counter(), 0
    for batch in source.batches(shuffle=True, drop_last=True):
        seen += len(batch.names)
    return seen / (time.perf_counter() - start)


def training_rate(task, batches, steps):
    paddle.seed(0)
    model = task.build_model()
    model.train()
    optimizer = build_optimizer(task.cfg.TRAIN, model.parameters())

    def step(batch):
        loss = task.loss(task.forward(model, batch), batch)
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()

    step(batches[0])  # warm-up: allocation and kernel selection
    start = time.perf_counter()
    for batch in batches[1:steps + 1]:
        step(batch)
    return steps * len(batches[0].names) / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        list_path = write_features(folder, args.videos)
        rows = []
        for name in HEADS:
            task = task_for(name, list_path, args.batch_size)
            source = task.source("train")
            loader = loader_rate(source)
            batches = []
            for batch in source.batches(shuffle=False, drop_last=True):
                batches.append(batch)
                if len(batches) == args.steps + 1:
                    break
            model = training_rate(task, batches, args.steps)
            rows.append((name, model, loader))
    print(f"\nheads at reference shapes: T=300, 2048-d, batch {args.batch_size}, 3396 classes; "
          f"{os.cpu_count()} CPU cores, paddle {paddle.__version__}")
    print(f"{'head':<18}{'train samples/s':>16}{'loader samples/s':>18}{'loader/model':>14}")
    for name, model, loader in rows:
        print(f"{name:<18}{model:>16.1f}{loader:>18.1f}{loader / model:>14.1f}")


if __name__ == "__main__":
    main()
