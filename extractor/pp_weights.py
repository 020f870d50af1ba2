"""PaddleVideo's PP checkpoints (and ours) onto resnet_vd.py (PP-TSN, PP-TSM) and pptsm_v2.py (PP-TSMv2).

Layouts PaddleVideo saves, all read:
- a recognizer (ppTSM_k400_uniform.pdparams, ppTSN_k400.pdparams, PPTSMv2_k400_8f.pdparams):
  backbone.<name>, head.fc.* (ignored);
- a distillation recognizer (PPTSMv2_k400_16f_dml.pdparams): Student.0.<name> and Teacher.* (the
  teacher is ignored: the student is the released model);
- its student alone (PPTSMv2_k400_16f_dml_student.pdparams): 0.<name>;
- a bare backbone (ImageNet ResNet*_vd_ssld / PPLCNetV2 pretrained files): <name>.
Names inside the backbone, PaddleVideo's -> ours:
- ResNet-vd: conv1_{1,2,3} -> stem.{0,1,2}; bb_<s>_<b>.{conv0,conv1,conv2,short} ->
  stages.<s>.<b>.{conv1,conv2,conv3,shortcut}; ._conv. -> .conv., ._batch_norm. -> .bn.
- PP-LCNetV2: stem.0 / stem.1 -> stem.conv / stem.block; dw_conv_list -> dw_branches, dw_conv -> dw,
  se.conv1/conv2 -> se.reduce/expand, pw_conv[_1,_2] -> pw[1,2], global_attention -> temporal_attention.
  A reparameterised block's fused dw_conv.{weight,bias} repeats its branches (used only after
  PaddleVideo's rep()) and is skipped, as is the classifier fc.
"""
import re

import paddle

from core.checkpoint import read_state
from core.errors import InputError

from .weights import CLASSIFIER_PREFIXES, log_mismatches, map_state

STUDENT, TEACHER = "Student.", "Teacher."
LAYOUT_PREFIXES = ("backbone.", "0.")  # recognizer; saved distillation student (its Sequential's backbone)
STUDENT_HEAD = "1."  # a saved student's head (its Sequential's second layer)

LCNET_RENAMES = [(re.compile(pattern), replacement) for pattern, replacement in (
    (r"^stem\.0\.", "stem.conv."),
    (r"^stem\.1\.", "stem.block."),
    (r"\.dw_conv_list\.", ".dw_branches."),
    (r"\.dw_conv\.(conv|bn)\.", r".dw.\1."),
    (r"\.se\.conv1\.", ".se.reduce."),
    (r"\.se\.conv2\.", ".se.expand."),
    (r"\.pw_conv_1\.", ".pw1."),
    (r"\.pw_conv_2\.", ".pw2."),
    (r"\.pw_conv\.", ".pw."),
    (r"^global_attention\.", "temporal_attention."),
)]
LCNET_FUSED = re.compile(r"\.dw_conv\.(weight|bias)$")


def backbone_keys(checkpoint):
    """({bare backbone name: (checkpoint key, value)}, keys of a distillation file in neither of its models),
    whichever layout the file has."""
    distilled = any(key.startswith(STUDENT) for key in checkpoint)
    bare, set_aside = {}, []
    for key, value in checkpoint.items():
        name = key
        if distilled:
            if not key.startswith(STUDENT):
                if not key.startswith(TEACHER):
                    set_aside.append(key)
                continue
            name = key[len(STUDENT):]
        if name.startswith(STUDENT_HEAD):
            continue
        for prefix in LAYOUT_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix):]
                break
        bare[name] = (key, value)
    return bare, set_aside


def resnet_vd_name(name, model_state):
    """Our name for PaddleVideo's (or our own) ResNet-vd parameter `name`; None if not one."""
    if name in model_state:
        return name
    name = name.replace("._conv.", ".conv.").replace("._batch_norm.", ".bn.")
    stem = re.match(r"^conv1_([123])\.(.*)$", name)
    if stem:
        return f"stem.{int(stem.group(1)) - 1}.{stem.group(2)}"
    block = re.match(r"^bb_(\d+)_(\d+)\.(conv0|conv1|conv2|short)\.(.*)$", name)
    if block:
        branch = {"conv0": "conv1", "conv1": "conv2", "conv2": "conv3", "short": "shortcut"}[block.group(3)]
        return f"stages.{block.group(1)}.{block.group(2)}.{branch}.{block.group(4)}"
    return None


def lcnet_name(name, model_state):
    """Our name for PaddleVideo's (or our own) PP-LCNetV2 parameter `name`; None if not one."""
    if name in model_state:
        return name
    if LCNET_FUSED.search(name):
        return None
    for pattern, replacement in LCNET_RENAMES:
        name = pattern.sub(replacement, name)
    return name


def convert_state(checkpoint, model_state, rename, what, path):
    """Map `checkpoint` (any layout above) onto `model_state`'s names; see weights.map_state."""
    bare, set_aside = backbone_keys(checkpoint)
    state, missing, unexpected = map_state(
        ((name, key, value) for name, (key, value) in bare.items()), model_state,
        lambda name: rename(name, model_state), what, path,
        skipped=lambda name: name.startswith(CLASSIFIER_PREFIXES) or bool(LCNET_FUSED.search(name)))
    return state, missing, set_aside + unexpected


def describe(model):
    if hasattr(model, "depth"):
        kind = "PP-TSM" if model.temporal_shift else "PP-TSN"
        return f"{kind} ResNet{model.depth}_vd"
    attention = " with temporal attention" if model.temporal_attention is not None else ""
    return f"PP-TSMv2 ({model.clip_frames} frames{attention})"


def load_weights(model, path):
    """Load `path` into `model` (a resnet_vd.ResNetVd or pptsm_v2.PPTSMv2), logging missing and unused keys."""
    checkpoint = read_state(path, "weights file")
    model_state = model.state_dict()
    what = describe(model)
    rename = resnet_vd_name if hasattr(model, "depth") else lcnet_name
    state, missing, unexpected = convert_state(checkpoint, model_state, rename, what, path)
    if not state:
        raise InputError(f"no {what} weights found (first keys: {', '.join(list(checkpoint)[:5])})", path)
    check_attention(model, state, unexpected, path)
    log_mismatches(path, missing, unexpected)
    model.set_state_dict({key: paddle.to_tensor(value) for key, value in state.items()})
    return missing, unexpected


def check_attention(model, state, unexpected, path):
    """PP-TSMv2's temporal attention changes every feature: the network and the checkpoint must agree on it."""
    if not hasattr(model, "temporal_attention"):
        return
    in_file = any(".global_attention." in key or key.startswith("global_attention.") for key in unexpected)
    if model.temporal_attention is None and in_file:
        raise InputError("the checkpoint has PP-TSMv2's temporal attention: set MODEL.temporal_attention: true", path)
    if model.temporal_attention is not None and not any(key.startswith("temporal_attention.") for key in state):
        raise InputError("the checkpoint has no temporal attention weights: set MODEL.temporal_attention: false", path)
