"""The optimizer's update of AttentionLSTM's parameters (the shipped model: 64M, 3396 classes) with one
optimizer and in shares on several cores at once (core/parallel_update.py), in interleaved rounds.

    .venv/bin/python bench/optimizer_update.py [--rounds 10] [--optimizer RMSProp Momentum Adam]

Each optimizer takes the shipped config's settings (RMSProp: centered, L2 on all but the fc biases);
the gradients are made once by a backward pass and each round times one step of each.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # noqa: E402  (first: sets up paddle quietly)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from core import heap, parallel_update  # noqa: E402
from core.config import load_config  # noqa: E402
from core.trainer import build_optimizer  # noqa: E402
from videotag.models import default_config_path, make_task  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--optimizer", nargs="+", default=["RMSProp", "Momentum", "Adam"])
    args = parser.parse_args()
    heap.keep_freed_memory()  # as training does on the CPU
    shares = parallel_update.default_shares()
    print(f"# {common.machine()}; paddle {paddle.__version__}; {shares} shares; {common.load()} at start")
    for name in args.optimizer:
        task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), [f"TRAIN.optimizer={name}"]))
        model = task.build_model()
        sum(p.sum() for p in model.parameters()).backward()
        optimizers = {1: build_optimizer(task.cfg.TRAIN, model, shares=1),
                      shares: build_optimizer(task.cfg.TRAIN, model, shares=shares)}
        times = {k: [] for k in optimizers}
        for round_no in range(args.rounds + 1):  # the first round makes the accumulators: not counted
            for k, optimizer in optimizers.items():
                started = time.perf_counter()
                optimizer.step()
                if round_no:
                    times[k].append(time.perf_counter() - started)
        size = sum(int(np.prod(p.shape)) for p in model.parameters())
        ratios = np.array(times[1]) / np.array(times[shares])
        print(f"{name} ({size / 1e6:.1f}M parameters): one optimizer {' '.join(f'{t * 1000:.0f}' for t in times[1])} ms; "
              f"{shares} shares {' '.join(f'{t * 1000:.0f}' for t in times[shares])} ms; "
              f"{np.median(ratios):.2f}x (median); {common.load()}")


if __name__ == "__main__":
    main()
