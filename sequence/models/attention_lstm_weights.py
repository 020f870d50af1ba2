"""AttentionLSTM checkpoints of other projects onto our names (sequence/models/attention_lstm.py).

- VideoTag (fluid): rgb_fc.*, rgb_fc_forward.w_0 (input projection, no bias), rgb_lstm_forward.{w_0,b_0},
  rgb_fc_backward.w_0, rgb_lstm_backward.*, rgb_weight.w_0, fc1.*, fc2.*, output.*  -> lstm: peephole
- PaddleCV zoo (fluid, automatic names): per modality m fc_{4m} embedding, fc_{4m+1} / lstm_{2m} forward,
  fc_{4m+2} / lstm_{2m+1} backward, fc_{4m+3} attention (its bias cancels in the softmax: dropped);
  then fc_{4M} relu, fc_{4M+1} tanh, fc_{4M+2} logits  -> lstm: peephole
- PaddleVideo 2.x AttentionLstmHead: [head.]fc_feature{i}.*, bi_lstm{i}.*, att_fc{i}.*, fc_out1, fc_out2,
  fc_logit  -> lstm: standard (nn.LSTM, same keys as ours)
- ours: encoders.{i}.*; the kind of LSTM follows from the names.
fluid's dynamic_lstm blocks are (c~, i, f, o), nn.LSTM's (i, f, c~, o); its bias [1, 7H] is the gate
bias then the peepholes (i, f, o). The 0.5 of fluid's inference dropout after the LSTMs goes into the
attention weights and fc1.
"""
import functools
import re

import numpy as np

from core.errors import InputError

from .weights import FLUID_DROPOUT_SCALE, Converted, bare, check_shape, take, unrecognised

FLUID_TO_OURS_GATES = [1, 2, 0, 3]
LSTM_ALIASES = {"weight_ih_l0": "0.cell_fw.weight_ih", "weight_hh_l0": "0.cell_fw.weight_hh",
                "bias_ih_l0": "0.cell_fw.bias_ih", "bias_hh_l0": "0.cell_fw.bias_hh",
                "weight_ih_l0_reverse": "0.cell_bw.weight_ih", "weight_hh_l0_reverse": "0.cell_bw.weight_hh",
                "bias_ih_l0_reverse": "0.cell_bw.bias_ih", "bias_hh_l0_reverse": "0.cell_bw.bias_hh"}
FAMILIES = ("ours (encoders.*)", "VideoTag (rgb_lstm_forward.*)", "PaddleCV zoo (lstm_0.*, fc_0.*)",
            "PaddleVideo (bi_lstm0.*)")


def gates(matrix):
    """fluid's four gate blocks of the last axis in nn.LSTM's order."""
    blocks = np.split(matrix, 4, axis=-1)
    return np.concatenate([blocks[i] for i in FLUID_TO_OURS_GATES], axis=-1)


def fluid_lstm_direction(ours, suffix, projection_w, projection_b, lstm_w, lstm_b):
    """One direction of fluid's (fc projection + dynamic_lstm) as our PeepholeLSTM's parameters."""
    size = lstm_w.shape[0]
    lstm_b = lstm_b.reshape(-1)
    return {f"{ours}.weight_ih{suffix}": gates(projection_w).T,
            f"{ours}.bias_ih{suffix}": gates(projection_b) if projection_b is not None
            else np.zeros(4 * size, "float32"),
            f"{ours}.weight_hh{suffix}": gates(lstm_w).T,
            f"{ours}.bias_hh{suffix}": gates(lstm_b[:4 * size]),
            f"{ours}.peephole{suffix}": lstm_b[4 * size:]}


def fluid_encoder(i, embedding, forward, backward, attention):
    """encoders.{i} from fluid arrays: embedding (w, b); forward/backward (projection w, b or None, lstm w, b)."""
    out = {f"encoders.{i}.embedding.weight": embedding[0], f"encoders.{i}.embedding.bias": embedding[1],
           f"encoders.{i}.attention.weight": FLUID_DROPOUT_SCALE * attention}
    out.update(fluid_lstm_direction(f"encoders.{i}.lstm", "_l0", *forward))
    out.update(fluid_lstm_direction(f"encoders.{i}.lstm", "_l0_reverse", *backward))
    return out


def fluid_top(state, fc1, fc2, output, family, fc1_suffix="w_0"):
    get = functools.partial(take, state, family=family)
    return {"fc1.weight": FLUID_DROPOUT_SCALE * get(f"{fc1}.w_0"), "fc1.bias": get(f"{fc1}.b_0"),
            "fc2.weight": get(f"{fc2}.w_0"), "fc2.bias": get(f"{fc2}.b_0"),
            "classifier.weight": get(f"{output}.w_0"), "classifier.bias": get(f"{output}.b_0")}


def from_videotag(state, model_cfg):
    family = "VideoTag AttentionLSTM"
    found = [k[:-len("_lstm_forward.w_0")] for k in state if k.endswith("_lstm_forward.w_0")]
    modalities = found
    if len(found) > 1:  # the order of the modalities is the config's
        modalities = [m for m in model_cfg.get("feature_names", []) if m in found]
        if len(modalities) != len(found):
            raise InputError(f"this {family} checkpoint has the modalities {sorted(found)}: name them in "
                             f"MODEL.feature_names (now {list(model_cfg.get('feature_names', []))})")
    get = functools.partial(take, state, family=family)
    out = {}
    for i, m in enumerate(modalities):
        out.update(fluid_encoder(
            i, (get(f"{m}_fc.w_0"), get(f"{m}_fc.b_0")),
            (get(f"{m}_fc_forward.w_0"), None, get(f"{m}_lstm_forward.w_0"), get(f"{m}_lstm_forward.b_0")),
            (get(f"{m}_fc_backward.w_0"), None, get(f"{m}_lstm_backward.w_0"), get(f"{m}_lstm_backward.b_0")),
            get(f"{m}_weight.w_0")))
    out.update(fluid_top(state, "fc1", "fc2", "output", family))
    return Converted(out, {"lstm": "peephole"}, "VideoTag (fluid)")


def indices(state, layer):
    return sorted({int(m.group(1)) for k in state for m in [re.fullmatch(layer + r"_(\d+)\.w_0", k)] if m})


def from_zoo(state):
    family = "PaddleCV zoo AttentionLSTM"
    get = functools.partial(take, state, family=family)
    fcs, lstms = indices(state, "fc"), indices(state, "lstm")
    modalities = len(lstms) // 2
    if len(lstms) % 2 or len(fcs) != 4 * modalities + 3:
        raise unrecognised("AttentionLSTM", state, FAMILIES)  # not the zoo's layer count
    out = {}
    for m in range(modalities):
        fc = [f"fc_{fcs[4 * m + j]}" for j in range(4)]
        forward, backward = f"lstm_{lstms[2 * m]}", f"lstm_{lstms[2 * m + 1]}"
        hidden = get(f"{forward}.w_0").shape[0]
        embedding = get(f"{fc[0]}.w_0").shape[1]
        # Automatic names depend on build order: check every layer is where the zoo puts it.
        for key, shape in ((f"{fc[1]}.w_0", [embedding, 4 * hidden]), (f"{fc[2]}.w_0", [embedding, 4 * hidden]),
                           (f"{backward}.w_0", [hidden, 4 * hidden]), (f"{fc[3]}.w_0", [2 * hidden, 1])):
            check_shape(get(key), shape, key, family)
        out.update(fluid_encoder(
            m, (get(f"{fc[0]}.w_0"), get(f"{fc[0]}.b_0")),
            (get(f"{fc[1]}.w_0"), get(f"{fc[1]}.b_0"), get(f"{forward}.w_0"), get(f"{forward}.b_0")),
            (get(f"{fc[2]}.w_0"), get(f"{fc[2]}.b_0"), get(f"{backward}.w_0"), get(f"{backward}.b_0")),
            get(f"{fc[3]}.w_0")))
    top = [f"fc_{i}" for i in fcs[4 * modalities:]]
    out.update(fluid_top(state, *top, family))
    return Converted(out, {"lstm": "peephole"}, "PaddleCV zoo (fluid)")


def from_paddlevideo(state):
    family = "PaddleVideo AttentionLstmHead"
    for key in ("fc_feature0.weight", "bi_lstm0.weight_ih_l0", "fc_out1.weight", "fc_out2.weight", "fc_logit.weight"):
        take(state, key, family)  # the layers every such head has
    out = {}
    renames = {"fc_out1.": "fc1.", "fc_out2.": "fc2.", "fc_logit.": "classifier."}
    for key, value in state.items():
        match = re.fullmatch(r"(fc_feature|bi_lstm|att_fc)(\d+)\.(.+)", key)
        if match:
            kind, i, rest = match.groups()
            if kind == "att_fc" and rest == "bias":
                continue  # adds the same number to every step's score: cancels in the softmax
            layer = {"fc_feature": "embedding", "bi_lstm": "lstm", "att_fc": "attention"}[kind]
            out[f"encoders.{i}.{layer}.{rest}"] = value
        elif key.startswith(tuple(renames)):
            prefix = key[:key.index(".") + 1]
            out[renames[prefix] + key[len(prefix):]] = value
    return Converted(with_lstm_aliases(out), {"lstm": "standard"}, "PaddleVideo 2.x")


def with_lstm_aliases(state):
    """nn.LSTM's state dict names each parameter twice (weight_ih_l0 and 0.cell_fw.weight_ih): add
    whichever is missing."""
    out = dict(state)
    for key, value in state.items():
        prefix, _, name = key.rpartition(".lstm.")
        if _ and name in LSTM_ALIASES:
            out.setdefault(f"{prefix}.lstm.{LSTM_ALIASES[name]}", value)
    return out


def convert(state, model_cfg):
    state = bare(state)
    if any(k.startswith("encoders.") for k in state):
        peephole = any(".lstm.peephole_l0" in k for k in state)
        return Converted(state if peephole else with_lstm_aliases(state),
                         {"lstm": "peephole" if peephole else "standard"}, "ours")
    if any(k.endswith("_lstm_forward.w_0") for k in state):
        return from_videotag(state, model_cfg)
    if indices(state, "lstm"):
        return from_zoo(state)
    if any(k.startswith("bi_lstm") for k in state):
        return from_paddlevideo(state)
    raise unrecognised("AttentionLSTM", state, FAMILIES)
