"""AttentionCluster checkpoints of the PaddleCV video zoo (fluid) onto our names
(sequence/models/attention_cluster.py).

Zoo names, modality i: satt{i}.conv.weight [C, D, 1, 1] (a 1x1 conv: the per-cluster scores),
satt{i}.conv.bias, satt{i}.shift_w [C], satt{i}.shift_b [C]; then fc1.weights/.bias (tanh),
fc2.weights/.bias (tanh), logistic.weights/.bias. The 0.5 of fluid's inference dropout before fc1
goes into fc1's weights. Our own checkpoints (encoders.*) pass unchanged.
"""
import functools

from .weights import FLUID_DROPOUT_SCALE, Converted, bare, take, unrecognised

FAMILIES = ("ours (encoders.*)", "PaddleCV zoo (satt0.*, fc1.weights)")


def from_zoo(state):
    family = "PaddleCV zoo AttentionCluster"
    get = functools.partial(take, state, family=family)
    out, i = {}, 0
    while f"satt{i}.conv.weight" in state:
        ours = f"encoders.{i}"
        out[f"{ours}.cluster_scores.weight"] = get(f"satt{i}.conv.weight")[:, :, 0, 0].T
        out[f"{ours}.cluster_scores.bias"] = get(f"satt{i}.conv.bias")
        out[f"{ours}.shift_scale"] = get(f"satt{i}.shift_w")[:, None]
        out[f"{ours}.shift_bias"] = get(f"satt{i}.shift_b")[:, None]
        i += 1
    out.update({"fc1.weight": FLUID_DROPOUT_SCALE * get("fc1.weights"), "fc1.bias": get("fc1.bias"),
                "fc2.weight": get("fc2.weights"), "fc2.bias": get("fc2.bias"),
                "classifier.weight": get("logistic.weights"), "classifier.bias": get("logistic.bias")})
    return Converted(out, {}, "PaddleCV zoo (fluid)")


def convert(state, model_cfg):
    state = bare(state)
    if any(k.startswith("encoders.") for k in state):
        return Converted(state, {}, "ours")
    if "satt0.conv.weight" in state:
        return from_zoo(state)
    raise unrecognised("AttentionCluster", state, FAMILIES)
