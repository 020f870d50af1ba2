"""What bf16 could give AttentionLSTM's training on this CPU: its biggest products in fp32 and
every bf16 route Paddle offers, in interleaved rounds.

    .venv/bin/python bench/cpu_bf16_products.py [--rounds 3]

The product: the LSTM's gate projection of one batch at VideoTag's shapes (32 videos x 225 frames
= 7,200 rows, embedding 1024 -> 4 x 512 gates x 2 directions = 4096), which with the embedding is
73% of a training step's arithmetic. Routes:
- eager fp32: what training runs (paddle.matmul);
- eager bf16: paddle.matmul on bfloat16 tensors (the route `--amp` would take; refused on the CPU);
- paddle.inference bf16: the same product as an exported program run by oneDNN's bfloat16 kernels
  (AMX where present), inputs and output copied in and out: the fastest bf16 product a Paddle
  program reaches here, though no training step can be built from predictors;
- static-graph bf16 training (paddle.static.amp.bf16, old program format, FLAGS_enable_pir_api=0):
  forward, backward and an update of one fully connected layer of that size, against the same
  program in fp32; the only bf16 training route, for the old program format Paddle 3 is leaving.
Then training steps of NeXtVLAD and Attention Cluster (batch 32 and 256), and Attention Cluster's
first fully connected layer alone (forward and gradients, batch 32-256), in float32 and with `--amp`'s bf16
products, in turn.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import common  # noqa: E402  (first: paddle's import-time lines kept quiet)

import numpy as np  # noqa: E402
import paddle  # noqa: E402

from core import heap  # noqa: E402

ROWS, INNER, OUTER = 7200, 1024, 4096
FLOP = 2 * ROWS * INNER * OUTER
# Share of an AttentionLSTM training step's arithmetic in the embedding and gate-projection
# products (forward, weight and input gradients), per frame: 33.6 of 46.1 MFLOP (docs/BENCHMARKS.md).
PRODUCT_SHARE = 33.6 / 46.1

STATIC_STEP = """
import os, sys, time
os.environ["FLAGS_enable_pir_api"] = "0"
import numpy as np, paddle
paddle.enable_static()
bf16 = sys.argv[1] == "bf16"
main, start = paddle.static.Program(), paddle.static.Program()
with paddle.static.program_guard(main, start):
    x = paddle.static.data("x", [%(rows)d, %(inner)d], "float32")
    out = paddle.static.nn.fc(x, %(outer)d)
    loss = paddle.mean(out * out)
    opt = paddle.optimizer.SGD(1e-3)
    if bf16:
        from paddle.static import amp
        opt = amp.bf16.decorate_bf16(opt, amp_lists=amp.bf16.AutoMixedPrecisionListsBF16(
            custom_bf16_list={"mul", "matmul_v2", "elementwise_add"}), use_bf16_guard=False)
    opt.minimize(loss)
exe = paddle.static.Executor(paddle.CPUPlace())
exe.run(start)
feed = {"x": np.random.default_rng(0).standard_normal((%(rows)d, %(inner)d)).astype("float32")}
for _ in range(2):
    exe.run(main, feed=feed, fetch_list=[loss])
started = time.perf_counter()
for _ in range(5):
    exe.run(main, feed=feed, fetch_list=[loss])
print("seconds", (time.perf_counter() - started) / 5)
""" % {"rows": ROWS, "inner": INNER, "outer": OUTER}


def seconds(fn, calls=5):
    fn()
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls


def predictor_product(folder):
    """x @ w through paddle.inference with oneDNN's bfloat16 kernels; both are inputs."""
    class Product(paddle.nn.Layer):
        def forward(self, x, w):
            return paddle.matmul(x, w)

    spec = [paddle.static.InputSpec([-1, -1], "float32", name) for name in ("x", "w")]
    prefix = os.path.join(folder, "product")
    paddle.jit.save(paddle.jit.to_static(Product(), input_spec=spec, full_graph=True), prefix)
    model = prefix + (".json" if os.path.exists(prefix + ".json") else ".pdmodel")
    config = paddle.inference.Config(model, prefix + ".pdiparams")
    config.disable_gpu()
    config.enable_mkldnn()
    config.enable_mkldnn_bfloat16()
    config.set_cpu_math_library_num_threads(os.cpu_count() or 1)
    config.disable_glog_info()
    runner = paddle.inference.create_predictor(config)
    inputs = [runner.get_input_handle(name) for name in runner.get_input_names()]
    output = runner.get_output_handle(runner.get_output_names()[0])

    def product(x, w):
        for handle, value in zip(inputs, (x, w)):
            handle.reshape(list(value.shape))
            handle.copy_from_cpu(value)
        runner.run()
        return output.copy_to_cpu()
    return product


def static_step(precision):
    out = subprocess.run([sys.executable, "-c", STATIC_STEP, precision], capture_output=True, text=True)
    if out.returncode:
        return None, out.stderr.strip().splitlines()[-1]
    return float(out.stdout.split("seconds")[-1]), ""


def training_steps(model, rounds, videos, frames):
    """Seconds of a training step of `model` (a head over 2048-d frames, Adam) in float32 and with bf16
    products, taken in turn: (fp32 list, bf16 list)."""
    from core import bf16_products

    optimizer = paddle.optimizer.Adam(2e-4, parameters=model.parameters())
    rng = np.random.default_rng(0)
    features = [paddle.to_tensor(rng.standard_normal((videos, frames, 2048)).astype("float32"))]
    mask = paddle.ones([videos, frames])

    def step(bf16):
        started = time.perf_counter()
        with bf16_products.enabled(bf16):
            loss = model(features, mask).mean()
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        return time.perf_counter() - started

    return in_turn(step, rounds)


def in_turn(step, rounds):
    """step(bf16) -> seconds, in float32 and bf16 in turn after one untimed of each: (fp32 list, bf16 list)."""
    step(False), step(True)
    times = {False: [], True: []}
    for _ in range(rounds):
        for bf16 in (False, True):
            times[bf16].append(step(bf16))
    return times[False], times[True]


def attention_cluster_fc1(rounds, batches=(32, 64, 128, 256)):
    """Seconds of Attention Cluster's first fully connected layer (32 clusters x 2048 pooled -> 1024,
    67M weights), forward and both gradients, in float32 and as bf16 products, taken in turn:
    {batch: (fp32 list, bf16 list)}."""
    from core import bf16_products

    rng = np.random.default_rng(0)
    weight = paddle.to_tensor((rng.standard_normal((32 * 2048, 1024)) / 256).astype("float32"), stop_gradient=False)
    found = {}
    for batch in batches:
        pooled = paddle.to_tensor(rng.standard_normal((batch, 32 * 2048)).astype("float32"), stop_gradient=False)

        def step(bf16):
            started = time.perf_counter()
            with bf16_products.enabled(bf16):
                out = bf16_products.linear(pooled, weight)
            out.sum().backward()
            pooled.clear_gradient(), weight.clear_gradient()
            return time.perf_counter() - started

        found[batch] = in_turn(step, rounds)
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    heap.keep_freed_memory()  # as training does on the CPU
    print(f"# {common.machine()}; paddle {paddle.__version__}; {common.load()} at start", flush=True)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((ROWS, INNER)).astype("float32")
    w = (rng.standard_normal((INNER, OUTER)) / np.sqrt(INNER)).astype("float32")
    exact = x.astype("float64") @ w.astype("float64")
    tx, tw = paddle.to_tensor(x), paddle.to_tensor(w)
    try:
        paddle.matmul(tx.astype("bfloat16"), tw.astype("bfloat16"))
        eager_bf16 = "runs"
    except Exception as err:  # Paddle's NotFound: no such kernel
        eager_bf16 = str(err).strip().splitlines()[0][:120]
    with tempfile.TemporaryDirectory() as folder:
        product = predictor_product(folder)
        error = float(np.abs(product(x, w) - exact).max() / np.abs(exact).max())
        runs = {"eager fp32": [], "inference bf16": [], "static fp32 step": [], "static bf16 step": []}
        notes = {}
        for round_ in range(args.rounds):
            runs["eager fp32"].append(seconds(lambda: paddle.matmul(tx, tw).numpy()))
            runs["inference bf16"].append(seconds(lambda: product(x, w)))
            for precision in ("fp32", "bf16"):
                took, why = static_step(precision)
                if took is None:
                    notes[precision] = why
                else:
                    runs[f"static {precision} step"].append(took)
            print(f"# round {round_ + 1}: " + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in runs.items() if v)
                  + f"; {common.load()}", flush=True)
    median = {k: float(np.median(v)) for k, v in runs.items() if v}
    rows = [["eager fp32 (training)", f"{median['eager fp32'] * 1000:.0f}",
             f"{FLOP / median['eager fp32'] / 1e9:.0f}", "1.00x", ""],
            ["eager bf16 (--amp)", "-", "-", "-", eager_bf16],
            ["paddle.inference bf16 (oneDNN)", f"{median['inference bf16'] * 1000:.0f}",
             f"{FLOP / median['inference bf16'] / 1e9:.0f}",
             f"{np.median(np.array(runs['eager fp32']) / np.array(runs['inference bf16'])):.2f}x",
             f"max error {error:.1e} of the largest output"]]
    if "static fp32 step" in median and "static bf16 step" in median:
        rows.append(["static-graph bf16 step (fwd+bwd+SGD) vs fp32", f"{median['static bf16 step'] * 1000:.0f}",
                     f"{3 * FLOP / median['static bf16 step'] / 1e9:.0f}",
                     f"{np.median(np.array(runs['static fp32 step']) / np.array(runs['static bf16 step'])):.2f}x",
                     f"fp32 step {median['static fp32 step'] * 1000:.0f} ms"])
    for precision, why in notes.items():
        rows.append([f"static-graph {precision} step", "-", "-", "-", why[:120]])
    print()
    print(common.table(rows, ["route", "ms", "GFLOP/s", "vs eager fp32", "note"]))
    best = max(r for r in (np.median(np.array(runs["eager fp32"]) / np.array(runs["inference bf16"])),) if r)
    bound = 1 / ((1 - PRODUCT_SHARE) + PRODUCT_SHARE / best)
    print(f"\n[{ROWS}, {INNER}] x [{INNER}, {OUTER}] ({FLOP / 1e9:.0f} GFLOP); {args.rounds} interleaved rounds, "
          f"medians. If every embedding and gate-projection product ({PRODUCT_SHARE:.0%} of a step's arithmetic) "
          f"ran at the paddle.inference bf16 rate, a step would be at most {bound:.2f}x faster (Amdahl); "
          f"{common.load()} at the end")
    from sequence.models.attention_cluster import AttentionCluster
    from sequence.models.nextvlad import NeXtVLAD
    print()
    for name, make, videos, frames in (("NeXtVLAD", lambda: NeXtVLAD(3862, [2048]), 32, 300),
                                       ("Attention Cluster", lambda: AttentionCluster(3396, [2048]), 32, 100),
                                       ("Attention Cluster", lambda: AttentionCluster(3396, [2048]), 256, 100)):
        paddle.seed(0)
        fp32, bf16 = training_steps(make(), args.rounds, videos, frames)
        print(f"{name} training step ({videos} videos x {frames} frames, reference widths): float32 "
              f"{' '.join(f'{t:.2f}' for t in fp32)} s, bf16 products {' '.join(f'{t:.2f}' for t in bf16)} s: "
              f"{np.median(np.array(fp32) / np.array(bf16)):.2f}x; {common.load()}")
    for batch, (fp32, bf16) in attention_cluster_fc1(args.rounds).items():
        print(f"Attention Cluster's first fully connected layer (forward and gradients, batch {batch}): float32 "
              f"{' '.join(f'{t * 1000:.0f}' for t in fp32)} ms, bf16 products {' '.join(f'{t * 1000:.0f}' for t in bf16)} "
              f"ms: {np.median(np.array(fp32) / np.array(bf16)):.2f}x")


if __name__ == "__main__":
    main()
