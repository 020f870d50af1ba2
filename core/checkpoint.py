"""Loading weights into a model: exactly (eval, predict, export, resume) or where names and shapes
match (fine-tuning from another label set or another checkpoint). Weights are a .pdparams,
.safetensors or (nested) .pdopt file, or a folder of fluid's one-file-per-parameter layout.

A task may have `adopt_checkpoint(state, path) -> state`: it maps another project's names onto its
model's and sets the MODEL switches the weights need, so it runs before the model is built."""
import os

from . import fluidfiles, safeload
from .errors import InputError
from .log import log


def read_state(path, what="checkpoint"):
    """The {name: numpy array} of a .pdparams, .safetensors or (nested) .pdopt, read without running
    anything the file asks for (core/safeload.py), or of a folder of fluid tensor files (core/fluidfiles.py)."""
    if not os.path.exists(path):
        raise InputError(f"{what} not found", path)
    try:
        state = fluidfiles.read_folder(path) if os.path.isdir(path) else safeload.load(path)
    except safeload.WeightsFileError as err:
        raise InputError(str(err)) from None
    if not isinstance(state, dict):
        raise InputError("not a parameter file (.pdparams holding a dict of tensors)", path)
    return state


def _shape(value):
    return list(value.shape)


def build_with_weights(task, path):
    """The task's model, built for the weights at `path` (file or fluid folder) and loaded exactly."""
    state = read_state(path)
    if hasattr(task, "adopt_checkpoint"):
        state = task.adopt_checkpoint(state, path)
    model = task.build_model()
    load_exact(model, path, task.model_name, state)
    return model


def load_exact(model, path, model_name, state=None):
    """Load every parameter of `model` from `path` (or `state`, read from it already); anything
    missing or misshapen is an error."""
    state = read_state(path) if state is None else state
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        hint = "" if set(state) & set(expected) else f" (no parameter names match: was it saved by another model than {model_name}?)"
        raise InputError(f"checkpoint does not fit {model_name}{hint}: missing {_few(missing)}, "
                         f"unexpected {_few(unexpected)}", path)
    wrong = [k for k in expected if _shape(state[k]) != _shape(expected[k])]
    if wrong:
        k = wrong[0]
        raise InputError(f"checkpoint does not fit {model_name}: '{k}' has shape {_shape(state[k])}, the model "
                         f"{_shape(expected[k])} (another num_classes or size? use --pretrain to fine-tune)", path)
    model.set_state_dict(state)


def load_matching(model, path, model_name, convert=None, state=None, partial=False):
    """Fine-tuning: load the parameters whose name and shape match, keep the rest freshly initialised.
    `state` is the checkpoint at `path` if read already; `convert(state, model)`, when given, first
    renames a checkpoint of another naming scheme. Matching under half of the model's tensors is
    an error unless `partial` (--pretrain_partial): it is rarely what was meant."""
    state = read_state(path) if state is None else state
    if convert is not None:
        state = convert(state, model)
    expected = model.state_dict()
    usable = {k: v for k, v in state.items() if k in expected and _shape(v) == _shape(expected[k])}
    if not usable:
        raise InputError(f"no parameter of this checkpoint matches {model_name} by name and shape", path)
    fresh = [k for k in expected if k not in usable]
    ignored = [k for k in state if k not in usable]
    if 2 * len(usable) < len(expected) and not partial:
        raise InputError(f"only {len(usable)} of the {len(expected)} tensors of {model_name} match this checkpoint "
                         f"by name and shape (not matched: {_few(fresh, 3)}); add --pretrain_partial if that "
                         "is intended", path)
    model.set_state_dict(usable)
    log.info("pretrained weights from %s: loaded %d of %d parameters", path, len(usable), len(expected))
    for k in fresh:
        why = f"shape {_shape(state[k])} in the checkpoint" if k in state else "not in the checkpoint"
        log.info("  initialised fresh: %s %s (%s)", k, _shape(expected[k]), why)
    if ignored:
        log.info("  ignored from the checkpoint: %s", _few(ignored))


def _few(keys, n=5):
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")
