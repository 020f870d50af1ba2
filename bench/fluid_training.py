"""AttentionLSTM training videos/s: VideoTag's fluid 1.8.5 step (LoD: real frames only) against ours
without and with length bucketing, in interleaved rounds on the same frame counts (150-300 frames,
2048-d, batch 32, 3396 classes, the full-size model).

    .venv/bin/python bench/fluid_training.py [--videos 192] [--rounds 3] [--fluid_python /work/venvs/fluid-vt/bin/python]
        [--settings packed packed-bf16]

Each round: one epoch of each of our settings, their steps taken in turn (steps only timed), between
two epochs of fluid's step (tools/videotag_reference/time_training_step.py, in its own venv; its
program build is not timed) whose mean is the round's fluid rate. Settings: TRAIN.bucket_batches, and
the LSTM over the padded batch (nn.LSTM, as before packing) or over packed real frames (shipped),
and the packed one with `--amp`'s bf16 products (CPUs with AVX512_BF16 or AMX, Paddle 3).
"""
import argparse
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.bucketing import Stepper, epoch_batches, write_features  # noqa: E402  (sets up paddle)

import numpy as np  # noqa: E402

from core import bf16_products  # noqa: E402
from core.config import load_config  # noqa: E402
from videotag.models import default_config_path, make_task  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLUID_SCRIPT = os.path.join(ROOT, "tools", "videotag_reference", "time_training_step.py")
# name: (TRAIN.bucket_batches, AttentionLSTM.packed, bf16 products as --amp on the CPU); padded is
# nn.LSTM over the padded batch (before packing)
SETTINGS = {"padded": (8, False, False), "packed-unbucketed": (0, True, False), "packed": (8, True, False),
            "packed-bf16": (8, True, True)}


def fluid_rate(python, lengths):
    out = subprocess.run([python, FLUID_SCRIPT, "--lengths", ",".join(map(str, lengths))],
                         capture_output=True, text=True, check=True).stdout
    return float(out.split("videos/s")[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fluid_python", default="/work/venvs/fluid-vt/bin/python")
    parser.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                        help="our settings to run (each is one more model in memory, stepped in turn)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        list_path = write_features(folder, args.videos, (150, 300))
        lengths = [np.load(os.path.join(folder, line.split()[0]), mmap_mode="r").shape[0]
                   for line in open(list_path).read().splitlines()]
        ours = {}
        for bucket, packed, bf16 in (SETTINGS[name] for name in args.settings):
            if bf16 and bf16_products.unavailable_reason():
                print(f"# no bf16 setting: {bf16_products.unavailable_reason()}")
                continue
            overrides = [f"TRAIN.filelist={list_path}", "TRAIN.batch_size=32", f"TRAIN.bucket_batches={bucket}"]
            task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), overrides))
            stepper, (batches, _, _) = Stepper(task, bf16), epoch_batches(task)
            stepper.model.packed = packed
            stepper.step(batches[0])  # warm-up (not timed)
            name = f"ours, bucket {bucket}, {'packed' if packed else 'padded'}{', bf16' if bf16 else ''}"
            ours[name] = (stepper, batches)
        rates = {name: [] for name in ours}
        fluid_runs = [fluid_rate(args.fluid_python, lengths)]
        for round_no in range(args.rounds):
            seconds = {name: 0.0 for name in ours}
            steps = len(next(iter(ours.values()))[1])  # the same videos in every setting
            for i in range(steps):  # our settings' steps in turn: the same load for each
                for name, (stepper, own_batches) in ours.items():
                    seconds[name] += stepper.step(own_batches[i])
            for name, (_, batches) in ours.items():
                rates[name].append(sum(len(b.names) for b in batches) / seconds[name])
            fluid_runs.append(fluid_rate(args.fluid_python, lengths))
            print(f"round {round_no + 1}: fluid before {fluid_runs[-2]:.2f} after {fluid_runs[-1]:.2f}, "
                  + ", ".join(f"{n} {r[-1]:.2f}" for n, r in rates.items()), flush=True)
    # fluid's rate for a round: the mean of its epochs just before and just after ours
    fluid = (np.array(fluid_runs[:-1]) + np.array(fluid_runs[1:])) / 2
    rates = {"fluid 1.8.5 (LoD), mean around": list(fluid), **rates}
    print(f"\n{'setting':<34}{'videos/s per round':>28}{'/ fluid (mean of rounds)':>26}")
    for name, values in rates.items():
        print(f"{name:<34}{', '.join(f'{v:.2f}' for v in values):>28}{np.mean(np.array(values) / fluid):>26.2f}")


if __name__ == "__main__":
    main()
