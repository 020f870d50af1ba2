"""NeXtVLAD checkpoints of the PaddleCV video zoo (fluid) onto our names (sequence/models/nextvlad.py).

Zoo names, per modality (prefix video_, then audio_): {p}fc_expansion_w/_b, {p}fc_group_attention_w/_b,
{p}cluster_weights (cluster logits, no bias), {p}cluster_weights2 (centres [K, fs]); batch_norm_<n> in
build order: per modality the cluster-logit BN then the VLAD BN, then the hidden BN and the gating BN;
hidden1_fc_weights, gating_fc1_weights, gating_fc2_weights (no bias), logits_clf_weights/_bias, and
eigen_param (the rgb scale, non-trainable: our rgb_scale, switched on by MODEL.scale_rgb).
fluid flattens the VLAD feature-major (f*K + k), ours cluster-major (k*fs + f): the VLAD BN vectors
and the rows of hidden1_fc_weights are permuted per modality. The 0.5 of fluid's inference dropout
goes into the hidden weights; our gate has a bias where the zoo's has none: 0.
"""
import functools
import re

import numpy as np

from .weights import FLUID_DROPOUT_SCALE, Converted, bare, check_shape, fluid_batch_norm, take, unrecognised

FAMILIES = ("ours (encoders.*)", "PaddleCV zoo (video_cluster_weights, hidden1_fc_weights)")
PREFIXES = ("video_", "audio_")


def feature_major_order(clusters, feature_size):
    """order[k*fs + f] = f*K + k: our cluster-major position -> fluid's feature-major one."""
    return np.arange(clusters * feature_size).reshape(feature_size, clusters).T.reshape(-1)


def from_zoo(state):
    family = "PaddleCV zoo NeXtVLAD"
    get = functools.partial(take, state, family=family)
    batch_norms = sorted({int(m.group(1)) for k in state for m in [re.fullmatch(r"batch_norm_(\d+)\.w_0", k)] if m})
    prefixes = [p for p in PREFIXES if p + "cluster_weights" in state]
    if len(batch_norms) != 2 * len(prefixes) + 2:
        raise unrecognised("NeXtVLAD", state, FAMILIES)
    bn = [f"batch_norm_{n}" for n in batch_norms]
    out, hidden_rows, start = {}, [], 0
    hidden = get("hidden1_fc_weights")
    for i, p in enumerate(prefixes):
        ours = f"encoders.{i}"
        clusters, feature_size = get(p + "cluster_weights2").shape
        order = feature_major_order(clusters, feature_size)
        check_shape(get(f"{bn[2 * i + 1]}.w_0"), [clusters * feature_size], f"{bn[2 * i + 1]}.w_0", family)
        out.update({f"{ours}.expand.weight": get(p + "fc_expansion_w"), f"{ours}.expand.bias": get(p + "fc_expansion_b"),
                    f"{ours}.group_attention.weight": get(p + "fc_group_attention_w"),
                    f"{ours}.group_attention.bias": get(p + "fc_group_attention_b"),
                    f"{ours}.cluster_logits.weight": get(p + "cluster_weights"),
                    f"{ours}.centers": get(p + "cluster_weights2")})
        out.update(fluid_batch_norm(state, bn[2 * i], f"{ours}.cluster_bn", family))
        out.update(fluid_batch_norm(state, bn[2 * i + 1], f"{ours}.vlad_bn", family, order))
        hidden_rows.append(start + order)
        start += clusters * feature_size
    check_shape(hidden, [start, hidden.shape[1]], "hidden1_fc_weights", family)
    gate_excite = get("gating_fc2_weights")
    out.update({"hidden.weight": FLUID_DROPOUT_SCALE * hidden[np.concatenate(hidden_rows)],
                "gate_squeeze.weight": get("gating_fc1_weights"),
                "gate_excite.weight": gate_excite, "gate_excite.bias": np.zeros(gate_excite.shape[1], "float32"),
                "classifier.weight": get("logits_clf_weights"), "classifier.bias": get("logits_clf_bias")})
    out.update(fluid_batch_norm(state, bn[-2], "hidden_bn", family))
    out.update(fluid_batch_norm(state, bn[-1], "gate_bn", family))
    if "eigen_param" in state:
        out["rgb_scale"] = get("eigen_param")
    return Converted(out, {"scale_rgb": "eigen_param" in state}, "PaddleCV zoo (fluid)")


def convert(state, model_cfg):
    state = bare(state)
    if any(k.startswith("encoders.") for k in state):
        return Converted(state, {"scale_rgb": "rgb_scale" in state}, "ours")
    if "video_cluster_weights" in state or "hidden1_fc_weights" in state:
        return from_zoo(state)
    raise unrecognised("NeXtVLAD", state, FAMILIES)
