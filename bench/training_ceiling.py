"""How fast can an AttentionLSTM training step be on this machine in float32? The step's matrix
products, each at its exact shape, plus the optimizer's update, with everything else free; against
VideoTag's fluid 1.8.5 step and ours, in interleaved rounds on the same videos.

    .venv/bin/python bench/training_ceiling.py [--videos 192] [--rounds 3] [--fluid_python /work/venvs/fluid-vt/bin/python]

The ceiling of a batch (7,000-7,300 real frames of 150-300 each, 2048-d, batch 32, 3396 classes):
- the products fluid's program and ours both compute (the same arithmetic: the LSTM over real frames
  only), timed one by one in eager float32 (Paddle's oneDNN/MKL GEMM, the library fluid calls):
  the embedding (forward, weight gradient), both directions' gate projections as one product
  (forward, weight and input gradients), the recurrent products of every step at the number of
  videos still running (forward and input gradient), the recurrent weights' gradient, attention
  pooling and the three fully connected layers (forward, both gradients);
- the optimizer's update of the model's 64M parameters (centered RMSProp), timed alone;
- gate arithmetic, the cell, softmax, dropout, the loss: counted as free.
Also printed: the same arithmetic at the CPU's float32 peak (cores x GHz x 64 FLOP per cycle:
two AVX-512 FMA units of 16 lanes), the hardware's bound for any program.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.bucketing import Stepper, epoch_batches, write_features  # noqa: E402  (sets up paddle)
from bench.fluid_training import fluid_rate  # noqa: E402

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from core.config import load_config  # noqa: E402
from videotag.models import default_config_path, make_task  # noqa: E402

FEATURES, EMBEDDING, HIDDEN, FC, CLASSES = 2048, 1024, 512, (8192, 4096), 3396


def product_shapes(lengths):
    """(x shape, y shape, batched) of every product of one training step on videos of `lengths`."""
    frames, videos = int(sum(lengths)), len(lengths)
    shapes = [((frames, FEATURES), (FEATURES, EMBEDDING)),             # embedding
              ((FEATURES, frames), (frames, EMBEDDING)),               # its weight gradient
              ((frames, EMBEDDING + 1), (EMBEDDING + 1, 8 * HIDDEN)),  # gate projections (biases as a column)
              ((EMBEDDING + 1, frames), (frames, 8 * HIDDEN)),         # their weight gradient
              ((frames, 8 * HIDDEN), (8 * HIDDEN, EMBEDDING + 1)),     # their input gradient
              ((2, 4 * HIDDEN, frames), (2, frames, HIDDEN))]          # the recurrent weights' gradient
    for running in (np.asarray(lengths)[None, :] > np.arange(max(lengths))[:, None]).sum(1):
        shapes += [((2, running, HIDDEN), (2, HIDDEN, 4 * HIDDEN)),     # step t, forward
                   ((2, running, 4 * HIDDEN), (2, 4 * HIDDEN, HIDDEN))]  # step t, input gradient
    longest = max(lengths)
    shapes += [((videos, 1, longest), (videos, longest, 2 * HIDDEN))] * 2  # pooling, its gradient
    for fan_in, fan_out in zip((2 * HIDDEN,) + FC, FC + (CLASSES,)):
        shapes += [((videos, fan_in), (fan_in, fan_out)), ((fan_in, videos), (videos, fan_out)),
                   ((videos, fan_out), (fan_out, fan_in))]
    return shapes


def flop(shapes):
    return sum(2 * np.prod(x) * y[-1] for x, y in shapes)


class Products:
    """A batch's products, run one after another (seconds); operands made once, one tensor per shape
    (the recurrent weights are the same in every step)."""

    def __init__(self, lengths, tensors):
        rng = np.random.default_rng(0)
        for shape in {shape for pair in product_shapes(lengths) for shape in pair} - set(tensors):
            tensors[shape] = paddle.to_tensor(rng.standard_normal(shape, dtype=np.float32))
        self.pairs = [(tensors[x], tensors[y]) for x, y in product_shapes(lengths)]

    def run(self):
        start = time.perf_counter()
        for x, y in self.pairs:
            out = paddle.matmul(x, y)
        float(out.flatten()[0])  # the last product done
        return time.perf_counter() - start


def optimizer_seconds(stepper, batch):
    """The optimizer's update alone, after a real forward and backward."""
    loss = stepper.task.loss(stepper.task.forward(stepper.model, batch), batch) * stepper.scale
    loss.backward()
    start = time.perf_counter()
    stepper.optimizer.step()
    seconds = time.perf_counter() - start
    stepper.optimizer.clear_grad()
    return seconds


def peak_flops():
    """cores x clock x 64 float32 FLOP per cycle (two AVX-512 FMA units x 16 lanes x 2)."""
    mhz = max(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count()) * mhz * 1e6 * 64


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fluid_python", default="/work/venvs/fluid-vt/bin/python")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        list_path = write_features(folder, args.videos, (150, 300))
        lengths = [np.load(os.path.join(folder, line.split()[0]), mmap_mode="r").shape[0]
                   for line in open(list_path).read().splitlines()]
        overrides = [f"TRAIN.filelist={list_path}", "TRAIN.batch_size=32", "TRAIN.bucket_batches=8"]
        task = make_task("AttentionLSTM", load_config(default_config_path("AttentionLSTM"), overrides))
        stepper, (batches, _, _) = Stepper(task), epoch_batches(task)
        batch_lengths = [[int(n) for n in batch.mask.sum(1)] for batch in batches]
        tensors = {}  # operands by shape, shared by the batches
        products = [Products(lengths, tensors) for lengths in batch_lengths]
        videos = sum(len(lengths) for lengths in batch_lengths)
        arithmetic = sum(flop(product_shapes(lengths)) for lengths in batch_lengths)
        print(f"# {videos} videos in {len(batches)} batches, {sum(map(sum, batch_lengths))} real frames, "
              f"{arithmetic / videos / 1e9:.2f} GFLOP of products per video")
        stepper.step(batches[0])
        products[0].run()  # warm-up (not timed)
        rows, fluid_runs = [], [fluid_rate(args.fluid_python, lengths)]
        for round_no in range(args.rounds):
            ours = sum(stepper.step(batch) for batch in batches)
            product_seconds = sum(p.run() for p in products)
            update = sum(optimizer_seconds(stepper, batch) for batch in batches)
            fluid_runs.append(fluid_rate(args.fluid_python, lengths))
            fluid = (fluid_runs[-2] + fluid_runs[-1]) / 2
            rows.append((fluid, videos / ours, videos / (product_seconds + update), videos / product_seconds,
                         arithmetic / product_seconds / 1e9))
            print(f"round {round_no + 1}: fluid {fluid:.2f} videos/s, ours {rows[-1][1]:.2f}, ceiling "
                  f"(products + update) {rows[-1][2]:.2f}, products alone {rows[-1][3]:.2f} "
                  f"({rows[-1][4]:.0f} GFLOP/s)", flush=True)
    peak = peak_flops()
    at_peak = videos / (arithmetic / peak)
    print(f"\nthe products at the CPU's float32 peak ({peak / 1e9:.0f} GFLOP/s), update free: {at_peak:.2f} videos/s")
    for name, column in (("fluid", 0), ("ours", 1), ("ceiling: products + update", 2), ("products alone", 3)):
        values = [row[column] for row in rows]
        print(f"{name}: {', '.join(f'{v:.2f}' for v in values)} videos/s, "
              f"{np.mean([v / row[0] for v, row in zip(values, rows)]):.2f}x fluid")
    print(f"1.5x fluid: {1.5 * np.mean([row[0] for row in rows]):.2f} videos/s; "
          f"the hardware bound: {at_peak / np.mean([row[0] for row in rows]):.2f}x fluid")


if __name__ == "__main__":
    main()
