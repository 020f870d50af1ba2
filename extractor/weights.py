"""Load a ResNet checkpoint in any of the three naming schemes into our backbone.

- static (VideoTag tsn.pdparams, PaddleCV): conv1_weights, bn_conv1_scale,
  res4b22_branch2c_weights, bn4b22_branch2c_variance, res3a_branch1_weights, fc_0.w_0 ...
- dygraph (PaddleVideo 2.x): [backbone.]conv._conv.weight, [backbone.]res2a.conv0._batch_norm._mean,
  [backbone.]res2a.short._conv.weight, head.fc.weight ...
- ours (resnet.py): [backbone.]stem.conv.weight, [backbone.]stages.2.22.conv3.bn._variance, fc.weight ...
The classifier (fc) of any scheme is ignored; other unknown keys and missing keys are reported.
"""

import numpy as np
import paddle

from core.checkpoint import read_state
from core.errors import InputError
from core.log import log

from .resnet import BLOCKS_PER_STAGE


BN_STATIC = {"weight": "scale", "bias": "offset", "_mean": "mean", "_variance": "variance"}
BN_DYGRAPH = {"weight": "weight", "bias": "bias", "_mean": "_mean", "_variance": "_variance"}
STATIC_BRANCH = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}
DYGRAPH_BRANCH = {"conv1": "conv0", "conv2": "conv1", "conv3": "conv2", "shortcut": "short"}
CLASSIFIER_PREFIXES = ("fc.", "fc_", "head.")


def block_name(depth, stage, block):
    """res2a, res3d, res4b22 ...: deep nets number stage 4's blocks a, b1, b2 ... instead of a, b, c."""
    letters = depth >= 101 and stage == 2
    suffix = ("a" if block == 0 else f"b{block}") if letters else chr(ord("a") + block)
    return f"res{stage + 2}{suffix}"


def conv_bn_units(depth):
    """(our prefix, static conv name, static bn prefix, dygraph prefix) for every ConvBN of the net."""
    units = [("stem", "conv1", "bn_conv1", "conv")]
    for stage, blocks in enumerate(BLOCKS_PER_STAGE[depth]):
        for block in range(blocks):
            name = block_name(depth, stage, block)
            for branch in ("conv1", "conv2", "conv3", "shortcut"):
                if branch == "shortcut" and block > 0:
                    continue
                static = f"{name}_{STATIC_BRANCH[branch]}"
                units.append((f"stages.{stage}.{block}.{branch}", static, "bn" + static[3:],
                              f"{name}.{DYGRAPH_BRANCH[branch]}"))
    return units


def name_map(depth):
    """Every accepted checkpoint key (without a `backbone.` prefix) -> our parameter name."""
    names = {}
    for ours, static_conv, static_bn, dygraph in conv_bn_units(depth):
        names[f"{static_conv}_weights"] = names[f"{dygraph}._conv.weight"] = f"{ours}.conv.weight"
        names[f"{ours}.conv.weight"] = f"{ours}.conv.weight"
        for param in BN_STATIC:
            target = f"{ours}.bn.{param}"
            names[f"{static_bn}_{BN_STATIC[param]}"] = target
            names[f"{dygraph}._batch_norm.{BN_DYGRAPH[param]}"] = target
            names[target] = target
    return names


def to_numpy(value):
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def map_state(entries, model_state, rename, what, path=None, skipped=lambda name: name.startswith(CLASSIFIER_PREFIXES)):
    """Checkpoint weights onto `model_state`'s names: `entries` are (name without the layout's prefix,
    checkpoint key, value); `rename(name)` is our name or None; names `skipped` accepts are left out
    without a word. Returns (state, missing, unexpected); a shape mismatch raises InputError naming the key."""
    state, unexpected = {}, []
    for name, key, value in entries:
        target = rename(name)
        if target not in model_state:
            if not skipped(name):
                unexpected.append(key)
            continue
        array = to_numpy(value)
        expected = tuple(model_state[target].shape)
        if tuple(array.shape) != expected:
            raise InputError(f"weight '{key}' has shape {list(array.shape)}, the {what} backbone expects "
                             f"{list(expected)}", path)
        state[target] = array.astype("float32")
    missing = sorted(set(model_state) - set(state))
    return state, missing, unexpected


def convert_state(checkpoint, model_state, depth):
    """Map `checkpoint` (any of the three schemes) onto `model_state`'s names; see map_state."""
    entries = ((key[len("backbone."):] if key.startswith("backbone.") else key, key, value)
               for key, value in checkpoint.items())
    return map_state(entries, model_state, name_map(depth).get, f"ResNet-{depth}")


def log_mismatches(path, missing, unexpected):
    """Warn about backbone weights a checkpoint lacks and checkpoint keys nothing took."""
    if missing:
        log.warning("%s: %d backbone weights missing, left at random init: %s",
                    path, len(missing), ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else ""))
    if unexpected:
        log.warning("%s: %d keys not used: %s", path, len(unexpected),
                    ", ".join(unexpected[:10]) + (" ..." if len(unexpected) > 10 else ""))


def load_weights(model, path):
    """Load `path` into `model` (a ResNet), logging missing and unexpected keys."""
    checkpoint = read_state(path, "weights file")
    model_state = model.state_dict()
    state, missing, unexpected = convert_state(checkpoint, model_state, model.depth)
    if not state:
        raise InputError(f"no ResNet-{model.depth} weights found (first keys: "
                         f"{', '.join(list(checkpoint)[:5])})", path)
    log_mismatches(path, missing, unexpected)
    model.set_state_dict({key: paddle.to_tensor(value) for key, value in state.items()})
    return missing, unexpected
