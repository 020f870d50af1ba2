"""VideoTag-style yaml configs: sections MODEL, TRAIN, VALID, TEST, INFER, overridden by
`-o SECTION.key=value` (the value parsed as YAML).

The model's reference config (configs/<model>.yaml, passed in as `reference`) is the schema and
the defaults: a user's file is merged onto it, then the overrides. Every key must be one the
reference has, or one of VideoTag's (video_tag / PaddleVideo applications/VideoTag), which is
mapped onto ours (VIDEOTAG_RENAMED, VIDEOTAG_DERIVED), accepted only with VideoTag's value
(VIDEOTAG_FIXED) or ignored with its reason (VIDEOTAG_IGNORED, logged once). Anything else is a
typo and fails loudly, as does a value of the wrong type or out of range, before anything runs.
"""
import copy
import os

import yaml

from .errors import InputError
from .fsutil import atomic_open
from .log import log

SECTIONS = ("MODEL", "TRAIN", "VALID", "TEST", "INFER")
SAVED_NAME = "config.yaml"  # the resolved config a training run leaves beside its checkpoints
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# VideoTag's name -> ours, in any section whose reference has ours.
VIDEOTAG_RENAMED = {"learning_rate_decay": "decay_gamma", "l2_weight_decay": "weight_decay",
                    "num_reader_threads": "num_workers"}
# VideoTag keys turned into ours once the config is complete (see derive_videotag_keys).
VIDEOTAG_DERIVED = {"total_videos"}  # TRAIN.num_samples: an epoch in whole batches, for the decay points
# Accepted only with the value VideoTag used: the rest of the pipeline is built on it.
VIDEOTAG_FIXED = {"seglen": 1, "image_mean": IMAGENET_MEAN, "image_std": IMAGENET_STD}
VIDEOTAG_IGNORED = {
    "use_gpu": "the launcher decides (CUDA_VISIBLE_DEVICES, paddle.distributed.launch); VideoTag's "
               "--use_gpu flag won over it too",
    "num_gpus": "the launcher decides; batch_size is the total over processes, as in VideoTag",
    "dataset": "a label only, unused by VideoTag too",
    "bone_nework": "unused by VideoTag too",
    "pretrain_base": "use --pretrain",
    "buf_size": "read-ahead is sized by num_workers",
    "format": "videos are decoded with decord",
    "topk": "this model reports its own top-k",
    "num_reader_threads": "this section reads with TRAIN.num_workers threads",
}
# Ranges checked on every config, whatever the model: (minimum, whether the minimum is allowed).
MINIMUM = {"batch_size": (1, True), "epoch": (1, True), "learning_rate": (0, True), "num_classes": (1, True),
           "seg_num": (1, True), "short_size": (1, True), "target_size": (1, True), "num_workers": (0, True),
           "cpu_threads": (0, True), "weight_decay": (0, True), "decay_gamma": (0, False), "drop_rate": (0, True),
           "num_samples": (0, True), "decay_examples": (1, True), "momentum": (0, True),
           "embedding_size": (1, True), "lstm_size": (1, True), "cluster_nums": (1, True),
           "cluster_size": (1, True), "groups": (1, True), "hidden_size": (1, True), "topk": (1, True),
           "reference_batch_size": (0, True), "warmup_steps": (0, True), "warmup_epochs": (0, True),
           "warmup_start": (0, True), "min_steps": (0, True),
           "patience": (0, True), "bucket_batches": (0, True), "label_smoothing": (0, True),
           "mixup_alpha": (0, True), "multiscale_crop": (0, True)}
# The schedule each head's own recipe used (VideoTag's, or the paper's): a config that names its
# learning_rate but no lr_schedule gets it, so old configs train as they did (see derive_recipe).
RECIPE_SCHEDULE = {"AttentionLSTM": "piecewise", "AttentionCluster": "constant", "NeXtVLAD": "exponential",
                   "PPTSM": "cosine", "PPTSN": "cosine", "PPTSMv2": "cosine",  # PaddleVideo's PP recipes
                   "Quality": "cosine", "QualityHead": "cosine"}  # Quality: PaddleVideo's warm-up cosine
_logged_ignored = set()  # (config path, "SECTION.key") already named in the log: once per process


class Section(dict):
    """A config section whose keys read as attributes: cfg.TRAIN.epoch."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class Config(Section):
    def __init__(self, sections, path, named=()):
        super().__init__({name: Section(values) for name, values in sections.items()})
        self.path = path
        self.named = set(named)  # "SECTION.key" a user's file or -o set, not the reference's defaults


def read_yaml_sections(path):
    if not os.path.isfile(path):
        raise InputError("config file not found", path)
    try:
        with open(path) as f:
            raw = yaml.safe_load(f) or {}
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        raise InputError(f"not valid YAML ({getattr(err, 'problem', err)})", path,
                         None if line is None else line + 1) from None
    if not isinstance(raw, dict):
        raise InputError("expected sections " + ", ".join(SECTIONS), path)
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise InputError(f"unknown section(s) {', '.join(unknown)}; valid: {', '.join(SECTIONS)}", path)
    for name, values in raw.items():
        if values is not None and not isinstance(values, dict):
            raise InputError(f"section {name} must hold 'key: value' lines", path)
    return {name: dict(raw.get(name) or {}) for name in SECTIONS}


def load_config(path, overrides=(), reference=None):
    """Read `path` merged onto `reference` (the model's reference config: a path or sections dict;
    None: `path` is its own schema), apply the `SECTION.key=value` strings in `overrides`, check
    every value and return a Config."""
    user = read_yaml_sections(path)
    if reference is None:
        schema = user
    elif isinstance(reference, dict):
        schema = {name: dict(reference.get(name) or {}) for name in SECTIONS}
    else:
        schema = read_yaml_sections(reference)
    merge = Merge(schema, default_origin=path if reference is None else reference)
    for section, values in user.items():
        for key, value in values.items():
            merge.assign(section, key, value, path)
    for item in overrides:
        merge.assign(*parse_override(item), "-o")
    log_ignored(merge.ignored, path)
    for section, values in merge.sections.items():
        for key in values:
            values[key] = checked_value(section, key, values[key], schema[section][key], merge.origin_of(section, key))
    derive_videotag_keys(merge.sections, merge.videotag, merge.origin)
    derive_recipe(merge.sections, merge.named(), path)
    return Config(merge.sections, path, merge.named())


def parse_override(item):
    key, sep, value = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise InputError(f"override '{item}' is not of the form SECTION.key=value", "-o")
    if section not in SECTIONS:
        raise InputError(f"override '{item}': unknown section '{section}'; valid: {', '.join(SECTIONS)}", "-o")
    try:
        return section, name, yaml.safe_load(value)
    except yaml.YAMLError:
        raise InputError(f"override '{item}': value is not valid YAML", "-o") from None


class Merge:
    """User values put onto the schema's defaults, remembering where each came from."""

    def __init__(self, schema, default_origin):
        self.schema, self.sections = schema, copy.deepcopy(schema)
        self.default_origin = default_origin
        self.origin = {}  # "TRAIN.epoch" -> the file or "-o" that set it: errors name it
        self.videotag = {}  # VideoTag-only TRAIN keys for derive_videotag_keys
        self.ignored = {}  # "TRAIN.use_gpu" -> why

    def named(self):
        """"SECTION.key" of the values a user's file or -o set (not the reference's defaults)."""
        return {key for key, where in self.origin.items() if where != self.default_origin}

    def origin_of(self, section, key):
        return self.origin.get(f"{section}.{key}", self.default_origin)

    def assign(self, section, key, value, where):
        """Put one user value where it belongs: our key, VideoTag's renamed or derived key, or ignored."""
        known = self.schema[section]
        if key in known or key in VIDEOTAG_RENAMED and VIDEOTAG_RENAMED[key] in known:
            ours = key if key in known else VIDEOTAG_RENAMED[key]
            self.sections[section][ours] = value
            self.origin[f"{section}.{ours}"] = where
        elif key in VIDEOTAG_DERIVED and section == "TRAIN":
            self.videotag[key] = value
        elif key in VIDEOTAG_FIXED:
            if not same_value(value, VIDEOTAG_FIXED[key]):
                raise InputError(f"{section}.{key} must be {VIDEOTAG_FIXED[key]} (VideoTag's value, which the "
                                 f"backbone and readers are built on), not {value!r}", where)
        elif key in VIDEOTAG_IGNORED:
            self.ignored[f"{section}.{key}"] = VIDEOTAG_IGNORED[key]
        else:
            valid = ", ".join(sorted(known)) or "(none)"
            raise InputError(f"unknown key {section}.{key}; valid keys of {section}: {valid}", where)
        if key == "learning_rate_decay":
            self.videotag[key] = value  # VideoTag's TSN: decays at thirds of the epochs


def same_value(value, expected):
    try:
        return (value == expected if not isinstance(expected, list)
                else len(value) == len(expected) and all(abs(float(v) - e) < 1e-9 for v, e in zip(value, expected)))
    except (TypeError, ValueError):
        return False


def log_ignored(ignored, path):
    fresh = {key: reason for key, reason in ignored.items() if (path, key) not in _logged_ignored}
    if fresh:
        _logged_ignored.update((path, key) for key in fresh)
        log.info("%s: ignoring VideoTag keys: %s", path, "; ".join(f"{k} ({r})" for k, r in fresh.items()))


def type_name(value):
    return {bool: "true or false", int: "an integer", float: "a number", list: "a list", str: "a string"}.get(
        type(value), type(value).__name__)


def checked_value(section, key, value, reference, where):
    """`value` converted to the type of the reference value (1e-4, a string to PyYAML, becomes a float),
    or an InputError naming the key; then its range."""
    name, given = f"{section}.{key}", value

    def fail(message):
        return InputError(f"{name} {message}, not {given!r}", where)

    if reference is None or value is None and isinstance(reference, str):
        pass  # no type to check against (eigen_file), or a list left empty (filelist: null)
    elif isinstance(reference, bool):
        if not isinstance(value, bool):
            raise fail("must be true or false")
    elif isinstance(reference, (int, float)):
        value = as_number(value, float if isinstance(reference, float) else int)
        if value is None:
            raise fail(f"must be {type_name(reference)}")
    elif isinstance(reference, list):
        if not isinstance(value, list):
            raise fail("must be a list, e.g. [5]")
        kind = list_kind(key, reference)
        if kind is not None:
            numbers = [as_number(v, kind) for v in value]
            if any(v is None for v in numbers):
                raise fail(f"must be a list of {'integers' if kind is int else 'numbers'}")
            value = numbers
    elif isinstance(reference, str) and not isinstance(value, str):
        raise fail("must be a string")
    check_range(name, key, value, where)
    return value


def list_kind(key, reference):
    """int or float for a list of numbers (by its reference value), else None."""
    if key == "decay_epochs":
        return float  # 5, or 2.5 (VideoTag's TSN decays at thirds of its epochs)
    numbers = [v for v in reference if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not numbers:
        return None
    return float if any(isinstance(v, float) for v in numbers) else int


def as_number(value, kind):
    """value as `kind` (int or float), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):  # PyYAML reads 1e-4 (no dot) as a string; VideoTag literal_evals it
        try:
            value = float(value) if kind is float else int(value)
        except ValueError:
            return None
    if kind is int:
        return value if isinstance(value, int) else None
    return float(value) if isinstance(value, (int, float)) else None


def check_range(name, key, value, where):
    if key in MINIMUM and isinstance(value, (int, float)) and not isinstance(value, bool):
        low, inclusive = MINIMUM[key]
        if value < low or (value == low and not inclusive):
            raise InputError(f"{name} must be {'at least' if inclusive else 'greater than'} {low}, not {value}",
                             where)
    if key in ("drop_rate", "label_smoothing") and isinstance(value, float) and value >= 1:
        raise InputError(f"{name} must be below 1, not {value}", where)
    if key == "warmup_start" and isinstance(value, float) and value > 1:
        raise InputError(f"{name} (a fraction of the learning rate) must be at most 1, not {value}", where)
    if key == "decay_epochs" and isinstance(value, list) and any(v < 0 for v in value):
        raise InputError(f"{name} must not hold negative epochs, not {value}", where)


def derive_videotag_keys(sections, videotag, origin):
    """VideoTag's TSN schedule: decays (x learning_rate_decay) at thirds of the epochs (unless
    decay_epochs is given), an epoch being int(total_videos / batch_size + 1) batches."""
    train = sections["TRAIN"]
    if "total_videos" in videotag:
        total = as_number(videotag["total_videos"], int)
        if total is None or total < 1:
            raise InputError(f"TRAIN.total_videos must be a positive integer, not {videotag['total_videos']!r}")
        train["num_samples"] = int(total / train["batch_size"] + 1) * train["batch_size"]
    if "learning_rate_decay" in videotag and "decay_epochs" in train and "TRAIN.decay_epochs" not in origin:
        train["decay_epochs"] = [train["epoch"] / 3, train["epoch"] * 2 / 3]


def derive_recipe(sections, named, path):
    """The shipped TRAIN defaults (a learning rate for reference_batch_size, warm-up, cosine, min_steps)
    are for a new label set. A config that names its own learning_rate keeps its recipe: the rate is
    for its batch_size, without warm-up, on the head's own schedule; one that names its epoch count
    trains exactly that many epochs. Keys it names itself win."""
    train = sections["TRAIN"]
    if "reference_batch_size" not in train:  # a model without these keys (an old reference)
        return
    given = {key.partition(".")[2] for key in named if key.startswith("TRAIN.")}
    kept = []
    if "learning_rate" in given:
        defaults = {"reference_batch_size": train["batch_size"], "warmup_steps": 0, "warmup_epochs": 0}
        if train.get("lr_schedule") == "cosine":
            defaults["lr_schedule"] = RECIPE_SCHEDULE.get(sections["MODEL"].get("name"), "constant")
        for key, value in defaults.items():
            if key not in given and train.get(key, value) != value:
                train[key] = value
                kept.append(f"{key} {value}")
    if "epoch" in given and "min_steps" not in given and train["min_steps"]:
        train["min_steps"] = 0
        kept.append("min_steps 0")
    if kept:
        log.info("%s names its own TRAIN.learning_rate/epoch: keeping its recipe (%s); name these keys to "
                 "change them", path, ", ".join(kept))


def check_model_name(cfg, model_name):
    """Refuse a config written for another model (its MODEL.name), in one line naming the file."""
    if cfg.MODEL.get("name", model_name) != model_name:
        raise InputError(f"the config is for {cfg.MODEL['name']}, not {model_name}", cfg.path)


def save_config(cfg, folder):
    """Write the resolved config (file plus overrides) to folder/config.yaml."""
    with atomic_open(os.path.join(folder, SAVED_NAME)) as f:
        yaml.safe_dump({name: dict(cfg[name]) for name in SECTIONS}, f, sort_keys=False)


def saved_config_beside(weights, model_name):
    """The config.yaml a training run of `model_name` left beside the checkpoint `weights`, or None."""
    path = os.path.join(os.path.dirname(os.path.abspath(weights)), SAVED_NAME) if weights else None
    if not path or not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            saved = yaml.safe_load(f)
        return path if saved["MODEL"]["name"] == model_name else None
    except (yaml.YAMLError, TypeError, KeyError):  # not ours: the model's own config then
        return None
