"""AttentionLSTM training videos/s with and without length bucketing (TRAIN.bucket_batches) on videos
of 150-300 frames at the reference shapes (2048-d, batch 32, 3396 classes), in interleaved rounds so
both see the same machine load.

    .venv/bin/python bench/bucketing.py [--videos 256] [--rounds 3]

Each round trains one epoch (the same videos) of each setting, their steps taken in turn, timing the
steps only (files are read before the clock starts).
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

from core import bf16_products, heap  # noqa: E402
from core.config import load_config  # noqa: E402
from core.trainer import batch_loss_scale, build_optimizer  # noqa: E402
from videotag.models import default_config_path, make_task  # noqa: E402

from heads_training import write_features  # noqa: E402  (bench/ is on sys.path when run as a script)


def epoch_batches(task):
    """The first epoch's training batches, and the frames computed (padded) and real in them."""
    batches = list(task.source("train").batches(shuffle=True, drop_last=True, epoch=0, seed=0))
    return batches, sum(b.mask.size for b in batches), int(sum(b.mask.sum() for b in batches))


class Stepper:
    """One model and optimizer taking the trainer's steps (loss x batch_loss scale, RMSProp)."""

    def __init__(self, task, bf16=False, keep_freed_memory=True):
        if keep_freed_memory:  # as the trainer does on the CPU (process-wide from here on)
            heap.keep_freed_memory()
        paddle.seed(0)
        self.task, self.bf16 = task, bf16  # bf16: the large products in bfloat16 (--amp on the CPU)
        self.model = task.build_model()
        self.model.train()
        self.optimizer = build_optimizer(task.cfg.TRAIN, self.model)
        self.scale = batch_loss_scale(task.cfg.TRAIN)

    def step(self, batch):
        """Seconds for one training step."""
        start = time.perf_counter()
        with bf16_products.enabled(self.bf16):
            loss = self.task.loss(self.task.forward(self.model, batch), batch) * self.scale
        loss.backward()
        self.optimizer.step()
        self.optimizer.clear_grad()
        return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--shortest", type=int, default=150)
    parser.add_argument("--longest", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        list_path = write_features(folder, args.videos, (args.shortest, args.longest))
        settings = {}
        for bucket in (0, 8):
            overrides = [f"TRAIN.filelist={list_path}", "TRAIN.batch_size=32", f"TRAIN.bucket_batches={bucket}"]
            task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), overrides))
            settings[bucket] = (Stepper(task), *epoch_batches(task))
        for stepper, batches, _, _ in settings.values():
            stepper.step(batches[0])  # warm-up: allocation and kernel selection (not timed)
        rates = {bucket: [] for bucket in settings}
        for round_no in range(args.rounds):  # one epoch of each, step by step in turn: the same load
            seconds = {bucket: 0.0 for bucket in settings}
            for i in range(len(settings[0][1])):
                for bucket, (stepper, batches, _, _) in settings.items():
                    seconds[bucket] += stepper.step(batches[i])
            for bucket, (_, batches, _, _) in settings.items():
                rates[bucket].append(sum(len(b.names) for b in batches) / seconds[bucket])
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
