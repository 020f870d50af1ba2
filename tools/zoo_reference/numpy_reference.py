"""Plain-numpy forward passes of the three PaddleCV video-zoo sequence heads, written from the
equations (not from any framework code), plus readers for the two fluid weight layouts.

It needs only numpy (any Python 3), so it can run next to Paddle 1.8.5 or Paddle 3. The fixture
maker uses it to check its own reading of the zoo models against the fluid runtime; a converter
can use it as an executable statement of what each parameter does.

Conventions: `params` is {fluid parameter name: ndarray}. Sequences are given as a list with one
float array [n_b, D] per video (no padding anywhere: fluid sees them as a LoD batch).
"""
import os
import pickle
import struct

import numpy as np

DROP_INFER_SCALE = 0.5  # fluid dropout (downgrade_in_infer) at inference: x * (1 - p), p = 0.5
BN_EPSILON = 1e-5       # fluid.layers.batch_norm default
L2_EPSILON = 1e-12      # fluid.layers.l2_normalize default: x / sqrt(sum x^2 + eps)


# ---------------------------------------------------------------- weight files
def load_pdparams(path):
    """fluid.save output: a pickle of {name: ndarray} (Paddle 1.8 writes protocol 2)."""
    with open(path, "rb") as handle:
        return pickle.load(handle, encoding="latin1")


_FLUID_DTYPES = {0: np.bool_, 1: np.int16, 2: np.int32, 3: np.int64, 4: np.float16,
                 5: np.float32, 6: np.float64, 20: np.uint8, 21: np.int8}


def _varint(buf, pos):
    value, shift = 0, 0
    while True:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def read_fluid_tensor_file(path):
    """One file of fluid.io.save_params / save_persistables (a serialised LoDTensor):
    uint32 lod-tensor version (0) | uint64 lod levels, each: uint64 byte size + size_t offsets |
    uint32 tensor version (0) | int32 size of a TensorDesc protobuf | the protobuf
    (field 1 = data type enum, field 2 = dims, int64 varints, packed or not) | raw little-endian data.
    """
    with open(path, "rb") as handle:
        buf = handle.read()
    pos = 4  # lod tensor version
    (levels,) = struct.unpack_from("<Q", buf, pos)
    pos += 8
    for _ in range(levels):
        (size,) = struct.unpack_from("<Q", buf, pos)
        pos += 8 + size
    pos += 4  # tensor version
    (desc_size,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    desc, pos_data = buf[pos:pos + desc_size], pos + desc_size
    dtype, dims, i = None, [], 0
    while i < len(desc):
        key, i = _varint(desc, i)
        field, wire = key >> 3, key & 7
        if field == 1 and wire == 0:
            dtype, i = _varint(desc, i)
        elif field == 2 and wire == 0:
            value, i = _varint(desc, i)
            dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        elif field == 2 and wire == 2:
            length, i = _varint(desc, i)
            end = i + length
            while i < end:
                value, i = _varint(desc, i)
                dims.append(value - (1 << 64) if value >= 1 << 63 else value)
        else:
            raise ValueError(f"unexpected TensorDesc field {field} (wire type {wire}) in {path}")
    np_dtype = np.dtype(_FLUID_DTYPES[dtype])
    count = int(np.prod(dims)) if dims else 1
    data = np.frombuffer(buf, dtype=np_dtype, count=count, offset=pos_data)
    return data.reshape(dims).copy()


def load_params_folder(folder):
    """fluid.io.save_params output: one file per parameter, the file name is the parameter name."""
    return {name: read_fluid_tensor_file(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


# ---------------------------------------------------------------- small helpers
def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def softmax(x, axis):
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def l2_normalize(x, axis):
    return x / np.sqrt((x * x).sum(axis=axis, keepdims=True) + L2_EPSILON)


def batch_norm_infer(x, params, prefix):
    """fluid batch_norm with is_test=True over the last axis; `prefix` like 'batch_norm_3'."""
    scale, offset = params[prefix + ".w_0"], params[prefix + ".b_0"]
    mean, variance = params[prefix + ".w_1"], params[prefix + ".w_2"]
    return (x - mean) / np.sqrt(variance + BN_EPSILON) * scale + offset


def dequantize(codes):
    """YouTube-8M uint8 -> float (the zoo reader does it in float64): x * 4/255 + 4/512 - 2."""
    return codes.astype(np.float64) * (4.0 / 255.0) + (4.0 / 512.0 - 2.0)


# ---------------------------------------------------------------- fluid dynamic_lstm
def dynamic_lstm(gate_input, weight, bias, reverse=False, peepholes=True, output_peephole_on_new_cell=True):
    """One sequence through fluid's `lstm` op.

    gate_input [T, 4H] is the (already projected) input; weight [H, 4H]; bias [1, 7H] with peepholes.
    Column blocks of weight, of gate_input and of bias[:, :4H] are in the order
    (candidate c~, input i, forget f, output o). bias[:, 4H:7H] = peephole vectors (w_ic, w_fc, w_oc):
      i = sigmoid(x_i + h_prev W_i + b_i + w_ic * c_prev)
      f = sigmoid(x_f + h_prev W_f + b_f + w_fc * c_prev)
      c~ = tanh(x_c + h_prev W_c + b_c)
      c = f * c_prev + i * c~
      o = sigmoid(x_o + h_prev W_o + b_o + w_oc * c)      (peephole on the NEW cell)
      h = o * tanh(c)
    (output_peephole_on_new_cell=False is a wrong reading, kept only to show that it does not match.)
    is_reverse runs the recurrence from the last step to the first (outputs stay in time order).
    """
    steps, four_h = gate_input.shape
    size = four_h // 4
    bias = bias.reshape(-1)
    gate_bias = bias[:4 * size]
    if peepholes:
        w_ic, w_fc, w_oc = bias[4 * size:5 * size], bias[5 * size:6 * size], bias[6 * size:7 * size]
    else:
        w_ic = w_fc = w_oc = np.zeros(size)
    h = np.zeros(size)
    c = np.zeros(size)
    out = np.zeros((steps, size))
    order = range(steps - 1, -1, -1) if reverse else range(steps)
    for t in order:
        gates = gate_input[t] + h @ weight + gate_bias
        cand, gi, gf, go = (gates[k * size:(k + 1) * size] for k in range(4))
        i = sigmoid(gi + w_ic * c)
        f = sigmoid(gf + w_fc * c)
        c_prev = c
        c = f * c + i * np.tanh(cand)
        o = sigmoid(go + w_oc * (c if output_peephole_on_new_cell else c_prev))
        h = o * np.tanh(c)
        out[t] = h
    return out


# ---------------------------------------------------------------- the three heads
def attention_lstm(params, videos_by_modality, fc_index_start=0, lstm_index_start=0):
    """PaddleCV AttentionLSTM at inference. videos_by_modality: [modality][video] -> [n, D].
    Auto names per modality m (k = 4m, l = 2m): fc_{k} embedding (tanh), fc_{k+1} forward input
    projection, lstm_{l} forward, fc_{k+2} backward input projection, lstm_{l+1} backward,
    fc_{k+3} attention score (size 1, with bias). Then fc_{4M} relu, fc_{4M+1} tanh, fc_{4M+2} logits."""
    n_mod = len(videos_by_modality)
    n_video = len(videos_by_modality[0])
    pooled = np.zeros((n_video, 0))
    per_modality = []
    for m in range(n_mod):
        k, l = fc_index_start + 4 * m, lstm_index_start + 2 * m
        rows = []
        for video in videos_by_modality[m]:
            emb = np.tanh(video @ params[f"fc_{k}.w_0"] + params[f"fc_{k}.b_0"])
            fwd = dynamic_lstm(emb @ params[f"fc_{k+1}.w_0"] + params[f"fc_{k+1}.b_0"],
                               params[f"lstm_{l}.w_0"], params[f"lstm_{l}.b_0"], reverse=False)
            bwd = dynamic_lstm(emb @ params[f"fc_{k+2}.w_0"] + params[f"fc_{k+2}.b_0"],
                               params[f"lstm_{l+1}.w_0"], params[f"lstm_{l+1}.b_0"], reverse=True)
            both = np.concatenate([fwd, bwd], axis=1) * DROP_INFER_SCALE
            score = both @ params[f"fc_{k+3}.w_0"] + params[f"fc_{k+3}.b_0"]  # [n, 1]
            weight = softmax(score, axis=0)                                      # sequence_softmax
            rows.append((both * weight).sum(axis=0))                             # sequence_pool sum
        rows = np.stack(rows)
        per_modality.append(rows)
        pooled = np.concatenate([pooled, rows], axis=1)
    k = fc_index_start + 4 * n_mod
    hidden = np.maximum(pooled @ params[f"fc_{k}.w_0"] + params[f"fc_{k}.b_0"], 0.0)
    hidden = np.tanh(hidden @ params[f"fc_{k+1}.w_0"] + params[f"fc_{k+1}.b_0"])
    logits = hidden @ params[f"fc_{k+2}.w_0"] + params[f"fc_{k+2}.b_0"]
    return logits, per_modality


def attention_cluster(params, sampled_by_modality):
    """PaddleCV AttentionCluster at inference. sampled_by_modality: [modality] -> [B, seg_num, F]
    (the reader's sampled frames: no padding, no mask)."""
    parts = []
    for m, x in enumerate(sampled_by_modality):
        name = f"satt{m}"
        kernel = params[name + ".conv.weight"]  # [C, F, 1, 1]
        n_att = kernel.shape[0]
        scores = np.einsum("blf,cf->bcl", x, kernel[:, :, 0, 0]) + params[name + ".conv.bias"][None, :, None]
        weights = softmax(scores, axis=2)                          # over the seg_num frames
        pooled = np.einsum("bcl,blf->bcf", weights, x)             # [B, C, F]
        shifted = pooled * params[name + ".shift_w"][None, :, None] + params[name + ".shift_b"][None, :, None]
        normed = l2_normalize(shifted, axis=2) / np.sqrt(n_att)
        parts.append(normed.reshape(x.shape[0], -1))               # cluster-major: c * F + f
    out = np.concatenate(parts, axis=1) * DROP_INFER_SCALE
    hidden = np.tanh(out @ params["fc1.weights"] + params["fc1.bias"])
    hidden = np.tanh(hidden @ params["fc2.weights"] + params["fc2.bias"])
    logits = hidden @ params["logistic.weights"] + params["logistic.bias"]
    return logits, parts


def nextvlad_encoder(params, frames, prefix, cluster_bn, vlad_bn, groups):
    """One NeXtVLAD branch for one video: frames [n, N] -> [K * lambdaN/G], in fluid's flatten
    order f * K + k (feature-major, because fluid transposes to [fs, K] before the reshape)."""
    x = frames @ params[prefix + "fc_expansion_w"] + params[prefix + "fc_expansion_b"]      # [n, lN]
    attention = sigmoid(x @ params[prefix + "fc_group_attention_w"] + params[prefix + "fc_group_attention_b"])
    act = batch_norm_infer(x @ params[prefix + "cluster_weights"], params, cluster_bn)      # [n, G*K]
    centers = params[prefix + "cluster_weights2"]                                           # [K, fs]
    k, fs = centers.shape
    act = softmax(act.reshape(-1, groups, k), axis=2) * attention[:, :, None]              # [n, G, K]
    a_sum = act.sum(axis=(0, 1))                                                            # [K]
    vlad = np.einsum("ngk,ngf->kf", act, x.reshape(-1, groups, fs)) - a_sum[:, None] * centers
    vlad = l2_normalize(vlad, axis=1)                                                       # per cluster
    flat = vlad.T.reshape(-1)                                                               # f * K + k
    return batch_norm_infer(flat, params, vlad_bn)


def nextvlad(params, codes_by_modality, groups, bn_names, prefixes=("video_", "audio_")):
    """PaddleCV NeXtVLAD (final version: uint8 input, dequantisation and eigen scaling in the graph).
    codes_by_modality: [modality][video] -> uint8 [n, D]. bn_names: per modality (cluster BN, vlad BN),
    then the hidden BN and the gating BN (auto names batch_norm_<i>)."""
    n_video = len(codes_by_modality[0])
    rows = []
    per_modality = [[] for _ in codes_by_modality]
    for b in range(n_video):
        parts = []
        for m, prefix in enumerate(prefixes[:len(codes_by_modality)]):
            x = codes_by_modality[m][b].astype(np.float32).astype(np.float64) * (4.0 / 255.0) - 2.0
            if m == 0:
                x = x * params["eigen_param"]          # rgb: (dequantised - 4/512) * (sqrt(eig) + 1e-4)
            else:
                x = x + 4.0 / 512.0                   # audio: plain dequantisation
            enc = nextvlad_encoder(params, x, prefix, bn_names[2 * m], bn_names[2 * m + 1], groups)
            per_modality[m].append(enc)
            parts.append(enc)
        rows.append(np.concatenate(parts))
    vlad = np.stack(rows) * DROP_INFER_SCALE
    hidden = batch_norm_infer(vlad @ params["hidden1_fc_weights"], params, bn_names[-2])
    gates = np.maximum(batch_norm_infer(hidden @ params["gating_fc1_weights"], params, bn_names[-1]), 0.0)
    gates = sigmoid(gates @ params["gating_fc2_weights"])
    logits = (hidden * gates) @ params["logits_clf_weights"] + params["logits_clf_bias"]
    return logits, [np.stack(p) for p in per_modality]
