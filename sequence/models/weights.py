"""What the heads' checkpoint converters share (sequence/models/*_weights.py).

Every converter is `convert(state, model_cfg) -> Converted`: the checkpoint renamed, reshaped and
rescaled onto our parameter names, plus the MODEL switches the original network needs. It
recognises the family by the names: ours, VideoTag (fluid), the PaddleCV video zoo (fluid, both
`fluid.save` .pdparams and one-file-per-parameter folders, which read to the same dict), PaddleVideo
2.x. A checkpoint it cannot map raises InputError naming what is missing.
"""
import typing

import numpy as np

from core.errors import InputError
from core.safeload import NAME_TABLE

# fluid's downgrade_in_infer dropout multiplies by (1 - 0.5) at inference and does not rescale in
# training; paddle 2's dropout rescales in training instead. Folding 0.5 into the next layer's
# weights gives the fluid network exactly, in both modes.
FLUID_DROPOUT_SCALE = 0.5


class Converted(typing.NamedTuple):
    state: dict  # {our parameter name: float32 ndarray}
    model: dict  # MODEL keys the checkpoint needs (e.g. {"lstm": "peephole"})
    family: str  # e.g. "VideoTag (fluid)", for the log


def bare(state, prefix="head."):
    """The state without paddle.save's name table and without `prefix` on every key (when all have it)."""
    state = {k: v for k, v in state.items() if k != NAME_TABLE}
    if state and all(k.startswith(prefix) for k in state):
        state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def take(state, key, family):
    if key not in state:
        raise InputError(f"this {family} checkpoint lacks '{key}'")
    return np.asarray(state[key], dtype="float32")


def check_shape(array, shape, key, family):
    if list(array.shape) != list(shape):
        raise InputError(f"this {family} checkpoint's '{key}' has shape {list(array.shape)}, expected {list(shape)}")


def fluid_batch_norm(state, fluid_name, ours, family, order=None):
    """fluid batch_norm's w_0 (scale), b_0 (offset), w_1 (mean), w_2 (variance) -> nn.BatchNorm1D names;
    `order` permutes the channels."""
    out = {}
    for fluid_suffix, our_suffix in (("w_0", "weight"), ("b_0", "bias"), ("w_1", "_mean"), ("w_2", "_variance")):
        value = take(state, f"{fluid_name}.{fluid_suffix}", family)
        out[f"{ours}.{our_suffix}"] = value if order is None else value[order]
    return out


def unrecognised(model_name, state, families):
    names = ", ".join(list(state)[:4]) or "none"
    return InputError(f"cannot map this checkpoint onto {model_name}: its names ({names}, ...) are none of "
                      f"{', '.join(families)}")
