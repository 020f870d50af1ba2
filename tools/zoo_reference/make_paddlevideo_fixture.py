"""Golden fixture for PaddleVideo 2.x's AttentionLstmHead (paddlevideo/modeling/heads/
attention_lstm_head.py), made by running PaddleVideo's own class in eval mode on Paddle 3.

PaddleVideo is not a dependency of this project and none of its code is kept here: point
--paddlevideo at a folder that holds an unpacked `paddlevideo` package (e.g. the snapshot's
working copy extracted to /tmp/pv). The inputs are the videos of the fluid AttentionLSTM fixture
(so run make_fixtures.py first), padded the way PaddleVideo's FeatureDecoder pads them.

Run:
    /work/main/.venv/bin/python tools/zoo_reference/make_paddlevideo_fixture.py \
        --paddlevideo /tmp/pv --out tests/fixtures/zoo

Writes <out>/paddlevideo_attention_lstm_head_<case>/ with
  head.pdparams        paddle.save(head.state_dict())                  (keys fc_feature0.weight ...)
  recognizer.pdparams  the same tensors under 'head.<key>', as a Recognizer1D checkpoint holds them
  io.npz               inputs in PaddleVideo's convention, logits and probabilities
and <out>/paddlevideo_cases.json.

Small sizes: the head hard-codes fc_out1 -> 8192 -> 4096 (a 134 MB fc_out2); after construction
fc_out1/fc_out2/fc_logit are replaced by Linear layers of 16, 12 and 7 outputs (same bias
attributes), which leaves the forward untouched. rgb-only: the class sizes fc_out1 for
4 * lstm_size inputs whatever feature_num is, so a one-modality head fails in forward; the rgb
case records that error and then uses a fc_out1 of 2 * lstm_size inputs (what a user would patch).
"""
import argparse
import json
import os
import sys

import numpy as np

EMBEDDING, LSTM, FC_SIZES, NUM_CLASSES, PAD_TO = 6, 5, (16, 12), 7, 9


def build_head(head_class, feature_dims, paddle):
    from paddle import ParamAttr
    from paddle.nn.initializer import Normal
    from paddle.regularizer import L2Decay

    head = head_class(num_classes=NUM_CLASSES, feature_num=len(feature_dims), feature_dims=feature_dims,
                      embedding_size=EMBEDDING, lstm_size=LSTM)

    def linear(n_in, n_out):
        return paddle.nn.Linear(n_in, n_out, bias_attr=ParamAttr(regularizer=L2Decay(0.0), initializer=Normal()))

    head.fc_out1 = linear(head.fc_out1.weight.shape[0], FC_SIZES[0])
    head.fc_out2 = linear(FC_SIZES[0], FC_SIZES[1])
    head.fc_logit = linear(FC_SIZES[1], NUM_CLASSES)
    return head


def randomise(head, seed):
    rng = np.random.RandomState(seed)
    for name, param in sorted(head.state_dict().items()):
        shape = list(param.shape)
        if "bias" in name:
            value = rng.normal(0.0, 0.3, shape)
        else:  # paddle Linear weight [in, out]; LSTM weight_ih/hh [4H, in]
            fan_in = shape[0] if name.startswith(("fc_", "att_fc")) else shape[1]
            value = rng.normal(0.0, 1.2 / np.sqrt(fan_in), shape)
        param.set_value(value.astype("float32"))


def padded_inputs(videos, lengths):
    """FeatureDecoder's convention (there with max_len=512): data [B, T, D] zero-padded, len [B]
    int64, mask [B, T, D] = 1 on real frames (the head averages it over D)."""
    batch, dim = len(lengths), videos.shape[2]
    data = np.zeros((batch, PAD_TO, dim), dtype="float32")
    mask = np.zeros((batch, PAD_TO, dim), dtype="float32")
    for b, n in enumerate(lengths):
        data[b, :n] = videos[b, :n]
        mask[b, :n] = 1.0
    return data, np.array(lengths, dtype="int64"), mask


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paddlevideo", required=True, help="folder holding the paddlevideo package")
    parser.add_argument("--out", default="tests/fixtures/zoo")
    args = parser.parse_args()
    sys.path.insert(0, os.path.abspath(args.paddlevideo))
    import paddle
    from paddlevideo.modeling.heads.attention_lstm_head import AttentionLstmHead

    paddle.set_device("cpu")
    source = np.load(os.path.join(args.out, "attentionlstm_rgb_audio", "io.npz"))
    lengths = [int(n) for n in source["lengths"]]
    report = {"paddle_version": paddle.__version__, "cases": {}}
    for tag, names, seed in (("rgb_audio", ["rgb", "audio"], 505), ("rgb", ["rgb"], 506)):
        dims = [int(source[n].shape[2]) for n in names]
        head = build_head(AttentionLstmHead, dims, paddle)
        note = None
        if len(names) == 1:
            probe = [tuple(paddle.to_tensor(a) for a in padded_inputs(source["rgb"], lengths))]
            head.eval()
            try:
                head(probe)
            except Exception as err:  # noqa: BLE001 - record whatever the unpatched head raises
                first = [line for line in str(err).splitlines() if line.strip()][0].strip()
                note = "unpatched head fails: {}: {}".format(type(err).__name__, first[:300])
            head.fc_out1 = paddle.nn.Linear(2 * LSTM, FC_SIZES[0])
        randomise(head, seed)
        head.eval()
        arrays = {"lengths": np.array(lengths, dtype="int64")}
        inputs = []
        for n in names:
            data, lens, mask = padded_inputs(source[n], lengths)
            arrays[n + "_data"], arrays[n + "_len"], arrays[n + "_mask"] = data, lens, mask
            inputs.append((paddle.to_tensor(data), paddle.to_tensor(lens), paddle.to_tensor(mask)))
        with paddle.no_grad():
            logits, probs = head(inputs)
        arrays["logits"], arrays["probs"] = logits.numpy(), probs.numpy()
        # eval must be deterministic: a second run gives the same numbers (dropout off)
        with paddle.no_grad():
            again, _ = head(inputs)
        out_dir = os.path.join(args.out, "paddlevideo_attention_lstm_head_" + tag)
        os.makedirs(out_dir, exist_ok=True)
        state = head.state_dict()
        paddle.save(state, os.path.join(out_dir, "head.pdparams"))
        paddle.save({"head." + k: v for k, v in state.items()}, os.path.join(out_dir, "recognizer.pdparams"))
        np.savez(os.path.join(out_dir, "io.npz"), **arrays)
        report["cases"]["paddlevideo_attention_lstm_head_" + tag] = {
            "modalities": names, "weight_seed": seed,
            "config": {"num_classes": NUM_CLASSES, "feature_dims": dims, "embedding_size": EMBEDDING,
                       "lstm_size": LSTM, "fc_sizes": list(FC_SIZES), "padded_to": PAD_TO},
            "params": {k: {"shape": list(v.shape), "dtype": str(v.numpy().dtype)} for k, v in state.items()},
            "io": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sorted(arrays.items())},
            "eval_rerun_max_abs_diff": float(np.abs(again.numpy() - arrays["logits"]).max()),
            "note": note,
        }
        print(tag, note, report["cases"]["paddlevideo_attention_lstm_head_" + tag]["eval_rerun_max_abs_diff"])
    with open(os.path.join(args.out, "paddlevideo_cases.json"), "w") as handle:
        json.dump(report, handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
