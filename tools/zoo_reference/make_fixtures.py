"""Golden fixtures for the PaddleCV video-zoo sequence heads (AttentionLSTM, AttentionCluster,
NeXtVLAD) made on the real fluid runtime (PaddlePaddle 1.8.5).

Each head is rebuilt here with fluid ops, in the same op order and with the same parameter names
(explicit ParamAttr names and fluid's auto names such as fc_0.w_0, lstm_0.b_0, batch_norm_0.w_1)
as the zoo builds them, but at small sizes. Every parameter gets seeded random values (BatchNorm
statistics and scales, LSTM peepholes and biases included), a small batch of videos of different
lengths is run in inference mode, and the weights are written in both fluid layouts:
  <case>/model.pdparams   fluid.save (pickle of {name: ndarray}; what the final zoo released)
  <case>/params/<name>    fluid.io.save_params (one serialised LoDTensor per parameter; the
                          layout of the older *_youtube8m.tar.gz folders)
  <case>/io.npz           inputs as the model consumes them, plus logits and probabilities
Each case is also recomputed with numpy_reference.py (plain numpy from the equations) from both
weight layouts; the largest differences go into manifest.json.

Run (needs the fluid venv: python3.8 -m venv; pip install paddlepaddle==1.8.5 'numpy<1.20'
protobuf==3.20.3):
    /work/venvs/fluid-zoo/bin/python tools/zoo_reference/make_fixtures.py --out tests/fixtures/zoo
The PaddleVideo 2.x part is a separate script, make_paddlevideo_fixture.py (Paddle 3).
"""
import argparse
import json
import os
import shutil
import sys

import numpy as np
import paddle
import paddle.fluid as fluid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy_reference as ref  # noqa: E402

NUM_CLASSES = 7
RGB_DIM, AUDIO_DIM = 24, 8
LENGTHS = [5, 2, 7]            # frames per video in the batch (real YT8M: up to 300)
DATA_SEED = 20240601

SMALL = {
    "AttentionLSTM": dict(embedding_size=6, lstm_size=5, fc_sizes=(16, 12)),         # zoo: 512, 1024, (8192, 4096)
    "AttentionCluster": dict(seg_num=4, cluster_nums=3, fc_sizes=(16, 12)),          # zoo: 100, 32, (1024, 4096)
    "NeXtVLAD": dict(cluster_size=4, groups=8, expansion=2, hidden_size=16, gating_reduction=4),
    # zoo: cluster 128, groups 8, expansion 2, hidden 2048, gating_reduction 8
}


# ---------------------------------------------------------------- the three programs
def attention_lstm_program(feature_names, feature_dims, cfg):
    """LoD inputs [sum n, D]; per modality: fc tanh, two (fc -> dynamic_lstm) directions, concat,
    dropout, fc(size 1, sequence_softmax) attention, weighted sequence sum. Then fc relu, fc tanh, fc."""
    feeds = [fluid.data(name=name, shape=[None, dim], dtype="float32", lod_level=1)
             for name, dim in zip(feature_names, feature_dims)]
    hid = cfg["lstm_size"]
    pooled = []
    for x in feeds:
        emb = fluid.layers.fc(input=x, size=cfg["embedding_size"], act="tanh")
        fwd_in = fluid.layers.fc(input=emb, size=4 * hid)
        fwd, _ = fluid.layers.dynamic_lstm(input=fwd_in, size=4 * hid, is_reverse=False)
        bwd_in = fluid.layers.fc(input=emb, size=4 * hid)
        bwd, _ = fluid.layers.dynamic_lstm(input=bwd_in, size=4 * hid, is_reverse=True)
        both = fluid.layers.dropout(fluid.layers.concat([fwd, bwd], axis=1), dropout_prob=0.5, is_test=True)
        score = fluid.layers.fc(input=both, size=1, act="sequence_softmax")
        pooled.append(fluid.layers.sequence_pool(
            fluid.layers.elementwise_mul(x=both, y=score, axis=0), pool_type="sum"))
    hidden = fluid.layers.fc(input=fluid.layers.concat(pooled, axis=1), size=cfg["fc_sizes"][0], act="relu")
    hidden = fluid.layers.fc(input=hidden, size=cfg["fc_sizes"][1], act="tanh")
    logits = fluid.layers.fc(input=hidden, size=NUM_CLASSES, act=None)
    return feeds, logits, pooled


def attention_cluster_program(feature_names, feature_dims, cfg):
    """Dense inputs [B, seg_num, F] (the reader's sampled frames). Per modality: 1x1 conv over
    [B, F, L, 1] gives C scores per frame, softmax over the L frames, per-cluster weighted sum,
    shift (w_c * v + b_c), L2 normalise, / sqrt(C); concat clusters. Concat modalities, dropout,
    fc tanh, fc tanh, fc."""
    seg, n_att = cfg["seg_num"], cfg["cluster_nums"]
    feeds = [fluid.data(name=name, shape=[None, seg, dim], dtype="float32")
             for name, dim in zip(feature_names, feature_dims)]
    parts = []
    for i, (x, dim) in enumerate(zip(feeds, feature_dims)):
        name = "satt{}".format(i)
        columns = fluid.layers.unsqueeze(fluid.layers.transpose(x, perm=[0, 2, 1]), [-1])  # [B, F, L, 1]
        scores = fluid.layers.conv2d(columns, n_att, filter_size=1,
                                     param_attr=fluid.ParamAttr(name=name + ".conv.weight"),
                                     bias_attr=fluid.ParamAttr(name=name + ".conv.bias"))
        scores = fluid.layers.squeeze(scores, [-1])                                          # [B, C, L]
        weights = fluid.layers.reshape(fluid.layers.softmax(fluid.layers.reshape(scores, [-1, seg])),
                                       [-1, n_att, seg])
        shift_w = fluid.layers.create_parameter(shape=(n_att,), dtype="float32",
                                                attr=fluid.ParamAttr(name=name + ".shift_w"))
        shift_b = fluid.layers.create_parameter(shape=(n_att,), dtype="float32",
                                                attr=fluid.ParamAttr(name=name + ".shift_b"))
        clusters = []
        for c in range(n_att):
            w_c = fluid.layers.expand(fluid.layers.transpose(
                fluid.layers.slice(weights, axes=[1], starts=[c], ends=[c + 1]), perm=[0, 2, 1]), [1, 1, dim])
            summed = fluid.layers.reduce_sum(x * w_c, dim=1)                                 # [B, F]
            shifted = summed * fluid.layers.slice(shift_w, axes=[0], starts=[c], ends=[c + 1]) \
                + fluid.layers.slice(shift_b, axes=[0], starts=[c], ends=[c + 1])
            clusters.append(fluid.layers.l2_normalize(shifted, axis=-1) / float(np.sqrt(n_att)))
        parts.append(fluid.layers.concat(clusters, axis=1))
    out = fluid.layers.dropout(fluid.layers.concat(parts, axis=1), 0.5, is_test=True)
    hidden = fluid.layers.fc(out, size=cfg["fc_sizes"][0], act="tanh",
                             param_attr=fluid.ParamAttr(name="fc1.weights"), bias_attr=fluid.ParamAttr(name="fc1.bias"))
    hidden = fluid.layers.fc(hidden, size=cfg["fc_sizes"][1], act="tanh",
                             param_attr=fluid.ParamAttr(name="fc2.weights"), bias_attr=fluid.ParamAttr(name="fc2.bias"))
    logits = fluid.layers.fc(hidden, size=NUM_CLASSES, act=None, name="logits_clf",
                             param_attr=fluid.ParamAttr(name="logistic.weights"),
                             bias_attr=fluid.ParamAttr(name="logistic.bias"))
    return feeds, logits, parts


def nextvlad_branch(x, feature_size, cfg, prefix):
    """One NeXtVLAD branch over a LoD batch [sum n, N] -> [B, K * lambdaN/G]."""
    groups, k, lam = cfg["groups"], cfg["cluster_size"], cfg["expansion"]
    fs = lam * feature_size // groups
    x = fluid.layers.fc(input=x, size=lam * feature_size, act=None, name=prefix + "fc_expansion",
                        param_attr=fluid.ParamAttr(name=prefix + "fc_expansion_w"),
                        bias_attr=fluid.ParamAttr(name=prefix + "fc_expansion_b"))
    attention = fluid.layers.fc(input=x, size=groups, act="sigmoid", name=prefix + "fc_group_attention",
                                param_attr=fluid.ParamAttr(name=prefix + "fc_group_attention_w"),
                                bias_attr=fluid.ParamAttr(name=prefix + "fc_group_attention_b"))
    cluster_w = fluid.layers.create_parameter(shape=[lam * feature_size, groups * k], dtype="float32",
                                              attr=fluid.ParamAttr(name=prefix + "cluster_weights"))
    act = fluid.layers.batch_norm(fluid.layers.matmul(x, cluster_w), is_test=True)
    act = fluid.layers.softmax(fluid.layers.reshape(act, [-1, groups, k]))             # over K
    act = fluid.layers.elementwise_mul(act, attention, axis=0)                          # [n, G, K]
    a_sum = fluid.layers.reduce_sum(fluid.layers.sequence_pool(act, "sum"), dim=1)       # [B, K]
    centers = fluid.layers.create_parameter(shape=[k, fs], dtype="float32",
                                            attr=fluid.ParamAttr(name=prefix + "cluster_weights2"))
    a = fluid.layers.elementwise_mul(fluid.layers.expand(fluid.layers.reshape(a_sum, [-1, k, 1]), [1, 1, fs]),
                                     centers, axis=1)
    act_t = fluid.layers.lod_reset(fluid.layers.transpose(act, perm=[0, 2, 1]), act)  # [n, K, G], LoD kept
    vlad = fluid.layers.matmul(act_t, fluid.layers.reshape(x, [-1, groups, fs]))        # [n, K, fs]
    vlad = fluid.layers.elementwise_sub(fluid.layers.sequence_pool(vlad, "sum"), a)     # [B, K, fs]
    vlad = fluid.layers.l2_normalize(fluid.layers.transpose(vlad, [0, 2, 1]), axis=1)   # [B, fs, K]
    vlad = fluid.layers.reshape(vlad, [-1, k * fs])                                     # f * K + k
    return fluid.layers.batch_norm(vlad, is_test=True)


def nextvlad_program(feature_names, feature_dims, cfg, eigen_values):
    """uint8 LoD inputs; in-graph dequantisation (rgb: x*4/255 - 2, then * eigen_param; audio:
    x*4/255 - 2 + 4/512), one branch per modality (prefix video_ / audio_), concat, dropout,
    fc (no bias) + BN, gating fc (no bias) + BN relu, gating fc (no bias) sigmoid, multiply, fc."""
    feeds = [fluid.data(name=name, shape=[None, dim], dtype="uint8", lod_level=1)
             for name, dim in zip(feature_names, feature_dims)]
    rgb = fluid.layers.scale(fluid.layers.cast(feeds[0], "float32"), scale=4.0 / 255, bias=-2.0)
    eigen_param = fluid.layers.create_parameter(
        shape=eigen_values.shape, dtype="float32", attr=fluid.ParamAttr(name="eigen_param", trainable=False),
        default_initializer=fluid.initializer.NumpyArrayInitializer(eigen_values))
    inputs = [fluid.layers.elementwise_mul(rgb, eigen_param)]
    if len(feeds) > 1:
        inputs.append(fluid.layers.scale(fluid.layers.cast(feeds[1], "float32"), scale=4.0 / 255,
                                         bias=-2.0 + 4.0 / 512))
    parts = [nextvlad_branch(x, dim, cfg, prefix)
             for x, dim, prefix in zip(inputs, feature_dims, ["video_", "audio_"])]
    vlad = fluid.layers.dropout(fluid.layers.concat(parts, axis=1), 0.5, is_test=True)
    hidden = fluid.layers.fc(input=vlad, size=cfg["hidden_size"], act=None, name="hidden1_fc",
                             param_attr=fluid.ParamAttr(name="hidden1_fc_weights"), bias_attr=False)
    hidden = fluid.layers.batch_norm(hidden, is_test=True)
    gates = fluid.layers.fc(input=hidden, size=cfg["hidden_size"] // cfg["gating_reduction"], act=None,
                            name="gating_fc1", param_attr=fluid.ParamAttr(name="gating_fc1_weights"), bias_attr=False)
    gates = fluid.layers.batch_norm(gates, is_test=True, act="relu")
    gates = fluid.layers.fc(input=gates, size=cfg["hidden_size"], act="sigmoid", name="gating_fc2",
                            param_attr=fluid.ParamAttr(name="gating_fc2_weights"), bias_attr=False)
    hidden = fluid.layers.elementwise_mul(hidden, gates)
    logits = fluid.layers.fc(input=hidden, size=NUM_CLASSES, act=None, name="logits_clf",
                             param_attr=fluid.ParamAttr(name="logits_clf_weights"),
                             bias_attr=fluid.ParamAttr(name="logits_clf_bias"))
    return feeds, logits, parts


# ---------------------------------------------------------------- random, non-trivial weights
def random_value(name, shape, rng):
    """Values by role, so that nothing is the trivial 0 / 1 a converter could get right by accident."""
    shape = tuple(shape)
    if name.startswith("batch_norm_"):
        kind = name.split(".")[-1]
        if kind == "w_0":   # scale
            return rng.uniform(0.5, 1.5, shape)
        if kind == "b_0":   # offset
            return rng.normal(0.0, 0.3, shape)
        if kind == "w_1":   # running mean
            return rng.normal(0.0, 0.2, shape)
        if kind == "w_2":   # running variance
            return rng.uniform(0.3, 2.0, shape)
    if name.endswith(".shift_w"):
        return rng.normal(1.0, 0.4, shape)
    if name.startswith("lstm_") and name.endswith(".b_0"):  # 4 gate biases + 3 peephole vectors
        return rng.normal(0.0, 0.5, shape)
    is_bias = name.endswith(("b_0", ".bias", "_bias", "_b", ".shift_b"))
    if is_bias:
        return rng.normal(0.0, 0.3, shape)
    fan_in = shape[1] if len(shape) == 4 else shape[0]  # conv [C_out, C_in, 1, 1], else [in, out]
    return rng.normal(0.0, 1.2 / np.sqrt(fan_in), shape)


def fill_parameters(program, scope, place, rng):
    values = {}
    for param in sorted(program.global_block().all_parameters(), key=lambda p: p.name):
        if param.name == "eigen_param":
            values[param.name] = np.array(scope.find_var(param.name).get_tensor())
            continue
        value = random_value(param.name, param.shape, rng).astype("float32")
        scope.find_var(param.name).get_tensor().set(value, place)
        values[param.name] = value
    return values


# ---------------------------------------------------------------- data
def make_videos(rng, with_audio):
    rgb = [rng.randint(0, 256, (n, RGB_DIM)).astype("uint8") for n in LENGTHS]
    audio = [rng.randint(0, 256, (n, AUDIO_DIM)).astype("uint8") for n in LENGTHS] if with_audio else None
    return rgb, audio


def pad(videos, dtype):
    out = np.zeros((len(videos), max(LENGTHS), videos[0].shape[1]), dtype=dtype)
    for b, v in enumerate(videos):
        out[b, :len(v)] = v
    return out


def lod_tensor(videos, dtype, place):
    return fluid.create_lod_tensor(np.concatenate(videos).astype(dtype), [[len(v) for v in videos]], place)


def sample_indices(n_frames, seg_num, rng):
    """The zoo reader's AttentionCluster sampling (train, valid, test AND infer alike): frame
    min(n - 1, int((i + u_i) * n / seg_num)) for i < seg_num, u_i ~ U[0, 1) (np.random.random)."""
    stride = float(n_frames) / seg_num
    return [min(n_frames - 1, int((i + rng.random_sample()) * stride)) for i in range(seg_num)]


# ---------------------------------------------------------------- one case
def run_case(model, modalities, out_dir, seed, eigen_values=None):
    names = ["rgb", "audio"][:len(modalities)]
    dims = [RGB_DIM, AUDIO_DIM][:len(modalities)]
    cfg = SMALL[model]
    data_rng = np.random.RandomState(DATA_SEED)
    rgb_codes, audio_codes = make_videos(data_rng, with_audio=True)  # same videos in every case
    codes = [rgb_codes, audio_codes][:len(modalities)]

    main, startup = fluid.Program(), fluid.Program()
    with fluid.program_guard(main, startup), fluid.unique_name.guard():
        if model == "AttentionLSTM":
            feeds, logits, parts = attention_lstm_program(names, dims, cfg)
        elif model == "AttentionCluster":
            feeds, logits, parts = attention_cluster_program(names, dims, cfg)
        else:
            feeds, logits, parts = nextvlad_program(names, dims, cfg, eigen_values)
        probs = fluid.layers.sigmoid(logits)
    place = fluid.CPUPlace()
    exe = fluid.Executor(place)
    scope = fluid.Scope()
    with fluid.scope_guard(scope):
        exe.run(startup)
        values = fill_parameters(main, scope, place, np.random.RandomState(seed))

        arrays = {"lengths": np.array(LENGTHS, dtype="int64")}
        mask = np.zeros((len(LENGTHS), max(LENGTHS)), dtype="float32")
        for b, n in enumerate(LENGTHS):
            mask[b, :n] = 1
        arrays["mask"] = mask
        floats = [[ref.dequantize(v).astype("float32") for v in vids] for vids in codes]
        for name, vids, fvids in zip(names, codes, floats):
            arrays[name + "_uint8"] = pad(vids, "uint8")
            arrays[name] = pad(fvids, "float32")
        if model == "AttentionLSTM":
            feed = {name: lod_tensor(fvids, "float32", place) for name, fvids in zip(names, floats)}
        elif model == "AttentionCluster":
            sample_rng = np.random.RandomState(seed + 1)
            idx = np.array([sample_indices(n, cfg["seg_num"], sample_rng) for n in LENGTHS], dtype="int64")
            arrays["sample_idx"] = idx
            sampled = [np.stack([fv[i] for fv, i in zip(fvids, idx)]) for fvids in floats]
            for name, s in zip(names, sampled):
                arrays[name + "_sampled"] = s
            feed = {name: s for name, s in zip(names, sampled)}
        else:
            feed = {name: lod_tensor(vids, "uint8", place) for name, vids in zip(names, codes)}
            # what the first NeXtVLAD fc sees for rgb: (x * 4/255 - 2) * eigen_param (float32, as in the graph)
            arrays["rgb_scaled"] = pad([(v.astype("float32") * np.float32(4.0 / 255) - np.float32(2.0)) * eigen_values
                                        for v in rgb_codes], "float32")
        fetched = exe.run(main, feed=feed, fetch_list=[logits, probs] + parts, return_numpy=False)
        arrays["logits"] = np.array(fetched[0])
        arrays["probs"] = np.array(fetched[1])
        for name, part in zip(names, fetched[2:]):
            arrays["pooled_" + name] = np.array(part)

        if os.path.isdir(out_dir):
            shutil.rmtree(out_dir)
        os.makedirs(out_dir)
        fluid.save(main, os.path.join(out_dir, "model"))
        for extra in ("model.pdopt", "model.pdmodel"):
            if os.path.exists(os.path.join(out_dir, extra)):
                os.remove(os.path.join(out_dir, extra))
        fluid.io.save_params(exe, os.path.join(out_dir, "params"), main_program=main)
    np.savez(os.path.join(out_dir, "io.npz"), **arrays)

    # ---- cross-check with plain numpy from both saved layouts
    checks = {}
    for layout, params in (("pdparams", ref.load_pdparams(os.path.join(out_dir, "model.pdparams"))),
                           ("save_params", ref.load_params_folder(os.path.join(out_dir, "params")))):
        assert sorted(params) == sorted(values), (sorted(params), sorted(values))
        for key, val in values.items():
            assert params[key].shape == val.shape and np.array_equal(params[key], val), key
        if model == "AttentionLSTM":
            expect, _ = ref.attention_lstm(params, [[v.astype("float64") for v in fv] for fv in floats])
        elif model == "AttentionCluster":
            expect, _ = ref.attention_cluster(params, [arrays[n + "_sampled"].astype("float64") for n in names])
        else:
            bn = ["batch_norm_{}".format(i) for i in range(2 * len(names) + 2)]
            expect, _ = ref.nextvlad(params, codes, SMALL["NeXtVLAD"]["groups"], bn)
        checks["numpy_vs_fluid_max_abs_logit_error_" + layout] = float(np.abs(expect - arrays["logits"]).max())

    params = {name: {"shape": list(v.shape), "dtype": str(v.dtype)} for name, v in sorted(values.items())}
    return arrays, params, checks


def check_dynamic_lstm(seed):
    """fluid dynamic_lstm (peepholes on, both directions) against numpy_reference.dynamic_lstm."""
    hid, lengths = 4, [6, 3]
    rng = np.random.RandomState(seed)
    main, startup = fluid.Program(), fluid.Program()
    with fluid.program_guard(main, startup), fluid.unique_name.guard():
        x = fluid.data(name="x", shape=[None, 4 * hid], dtype="float32", lod_level=1)
        fwd, _ = fluid.layers.dynamic_lstm(input=x, size=4 * hid, is_reverse=False)
        bwd, _ = fluid.layers.dynamic_lstm(input=x, size=4 * hid, is_reverse=True)
    place = fluid.CPUPlace()
    exe = fluid.Executor(place)
    scope = fluid.Scope()
    with fluid.scope_guard(scope):
        exe.run(startup)
        values = fill_parameters(main, scope, place, rng)
        seqs = [rng.normal(0, 1, (n, 4 * hid)).astype("float32") for n in lengths]
        out_f, out_b = (np.array(t) for t in exe.run(main, feed={"x": lod_tensor(seqs, "float32", place)},
                                                      fetch_list=[fwd, bwd], return_numpy=False))
    exp_f = np.concatenate([ref.dynamic_lstm(s, values["lstm_0.w_0"], values["lstm_0.b_0"]) for s in seqs])
    exp_b = np.concatenate([ref.dynamic_lstm(s, values["lstm_1.w_0"], values["lstm_1.b_0"], reverse=True)
                            for s in seqs])
    # the same with a wrong reading (i, f, c~, o order; no peepholes) must NOT match
    wrong = []
    for s in seqs:
        perm = np.concatenate([np.arange(hid, 2 * hid), np.arange(2 * hid, 3 * hid), np.arange(hid), np.arange(3 * hid, 4 * hid)])
        wrong.append(ref.dynamic_lstm(s[:, perm], values["lstm_0.w_0"][:, perm],
                                      values["lstm_0.b_0"][:, np.concatenate([perm, np.arange(4 * hid, 7 * hid)])]))
    old_cell = np.concatenate([ref.dynamic_lstm(s, values["lstm_0.w_0"], values["lstm_0.b_0"],
                                                output_peephole_on_new_cell=False) for s in seqs])
    return {
        "shapes": {k: list(v.shape) for k, v in sorted(values.items())},
        "max_abs_error_if_output_peephole_used_previous_cell": float(np.abs(old_cell - out_f).max()),
        "max_abs_error_forward": float(np.abs(exp_f - out_f).max()),
        "max_abs_error_reverse": float(np.abs(exp_b - out_b).max()),
        "max_abs_error_if_order_were_i_f_c_o": float(np.abs(np.concatenate(wrong) - out_f).max()),
        "max_abs_error_if_peepholes_ignored": float(np.abs(np.concatenate(
            [ref.dynamic_lstm(s, values["lstm_0.w_0"], values["lstm_0.b_0"], peepholes=False) for s in seqs])
            - out_f).max()),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/zoo")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    eigen_rng = np.random.RandomState(7)
    # stand-in for yt8m_pca/eigenvals.npy (float [N, 1], N >= feature size; decreasing like PCA)
    eigenvals = np.sort(eigen_rng.uniform(0.01, 4.0, (32, 1)))[::-1].astype("float64")
    np.save(os.path.join(args.out, "nextvlad_eigenvals.npy"), eigenvals)
    eigen_values = (np.sqrt(eigenvals[:RGB_DIM, 0]) + 1e-4).astype("float32")

    cases = {}
    seeds = {"AttentionLSTM": 101, "AttentionCluster": 202, "NeXtVLAD": 303}
    for model in ("AttentionLSTM", "AttentionCluster", "NeXtVLAD"):
        for tag, modalities in (("rgb_audio", ["rgb", "audio"]), ("rgb", ["rgb"])):
            case = "{}_{}".format(model.lower(), tag)
            seed = seeds[model] + (0 if tag == "rgb_audio" else 1)
            arrays, params, checks = run_case(model, modalities, os.path.join(args.out, case), seed,
                                              eigen_values=eigen_values)
            cases[case] = {
                "model": model, "modalities": modalities, "weight_seed": seed, "data_seed": DATA_SEED,
                "config": dict(SMALL[model], num_classes=NUM_CLASSES,
                               feature_dims=[RGB_DIM, AUDIO_DIM][:len(modalities)]),
                "params": params,
                "io": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in sorted(arrays.items())},
                "checks": checks,
            }
            print(case, checks)
    lstm_check = check_dynamic_lstm(404)
    print("dynamic_lstm", lstm_check)
    with open(os.path.join(args.out, "fluid_cases.json"), "w") as handle:
        json.dump({"paddle_version": paddle.__version__, "numpy_version": np.__version__,
                   "cases": cases, "dynamic_lstm_check": lstm_check,
                   "eigenvals": {"file": "nextvlad_eigenvals.npy", "shape": list(eigenvals.shape),
                                 "seed": 7, "used": "sqrt(eigenvals[:24, 0]) + 1e-4 -> eigen_param"}},
                  handle, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
