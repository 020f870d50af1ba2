"""VideoTag's AttentionLSTM training step on fluid 1.8.5, timed: LoD batches (real frames only),
dropout on, the loss summed over the batch, centered RMSProp with L2 8e-4 on all but the fc biases,
as VideoTag's train.py ran it. Prints one line: `videos/s <rate>`.

    /work/venvs/fluid-vt/bin/python tools/videotag_reference/time_training_step.py --lengths 150,300,...

bench/fluid_training.py runs it between rounds of ours (interleaved), with the same frame counts.
"""
import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("CPU_NUM", "1")

import numpy as np  # noqa: E402
import paddle.fluid as fluid  # noqa: E402
from paddle.fluid import ParamAttr  # noqa: E402

PLACE = fluid.CPUPlace()


def bias_no_l2():
    return ParamAttr(regularizer=fluid.regularizer.L2Decay(0.0))


def build_training(dim, classes, embedding=1024, lstm=512, fc1=8192, fc2=4096, drop_rate=0.5):
    rgb = fluid.data(name="rgb", shape=[None, dim], dtype="float32", lod_level=1)
    label = fluid.data(name="label", shape=[None, classes], dtype="float32")
    emb = fluid.layers.fc(rgb, embedding, act="tanh", bias_attr=bias_no_l2(), name="rgb_fc")
    proj_f = fluid.layers.fc(emb, 4 * lstm, act=None, bias_attr=False, name="rgb_fc_forward")
    h_f, _ = fluid.layers.dynamic_lstm(proj_f, 4 * lstm, is_reverse=False, name="rgb_lstm_forward")
    proj_b = fluid.layers.fc(emb, 4 * lstm, act=None, bias_attr=False, name="rgb_fc_backward")
    h_b, _ = fluid.layers.dynamic_lstm(proj_b, 4 * lstm, is_reverse=True, name="rgb_lstm_backward")
    both = fluid.layers.concat([h_f, h_b], axis=1)
    dropped = fluid.layers.dropout(both, dropout_prob=drop_rate)
    att = fluid.layers.fc(dropped, 1, act="sequence_softmax", bias_attr=False, name="rgb_weight")
    pooled = fluid.layers.sequence_pool(fluid.layers.elementwise_mul(dropped, att, axis=0), pool_type="sum")
    hidden = fluid.layers.fc(pooled, fc1, act="relu", bias_attr=bias_no_l2(), name="fc1")
    hidden = fluid.layers.fc(hidden, fc2, act="tanh", bias_attr=bias_no_l2(), name="fc2")
    logit = fluid.layers.fc(hidden, classes, act=None, bias_attr=bias_no_l2(), name="output")
    loss = fluid.layers.reduce_sum(fluid.layers.sigmoid_cross_entropy_with_logits(logit, label))
    fluid.optimizer.RMSPropOptimizer(learning_rate=1.25e-4, centered=True,
                                     regularization=fluid.regularizer.L2Decay(8e-4)).minimize(loss)
    return loss


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", required=True, help="frame counts, comma-separated, in batch order")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=3396)
    args = parser.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    rng = np.random.default_rng(0)
    main_program, startup = fluid.Program(), fluid.Program()
    with fluid.program_guard(main_program, startup):
        loss = build_training(args.dim, args.classes)
    exe = fluid.Executor(PLACE)
    exe.run(startup)
    batches = [lengths[i:i + args.batch_size] for i in range(0, len(lengths) - args.batch_size + 1, args.batch_size)]

    def feed(batch):
        frames = rng.standard_normal((sum(batch), args.dim)).astype(np.float32)
        labels = np.zeros((len(batch), args.classes), np.float32)
        labels[np.arange(len(batch)), rng.integers(args.classes, size=len(batch))] = 1
        return {"rgb": fluid.create_lod_tensor(frames, [batch], PLACE), "label": labels}

    feeds = [feed(b) for b in batches]
    exe.run(main_program, feed=feeds[0], fetch_list=[loss])  # warm-up (not timed), as ours
    seconds = 0.0
    for data in feeds:
        start = time.perf_counter()
        exe.run(main_program, feed=data, fetch_list=[loss])
        seconds += time.perf_counter() - start
    print(f"videos/s {sum(len(b) for b in batches) / seconds:.3f}", flush=True)


if __name__ == "__main__":
    main()
