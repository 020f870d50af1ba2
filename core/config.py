"""VideoTag-style yaml configs: sections MODEL, TRAIN, VALID, TEST, INFER, overridden by
`-o SECTION.key=value` (the value parsed as YAML).

The yaml file is the schema: an override may only name a section and key the file has,
so a typo fails loudly instead of being ignored.
"""
import os

import yaml

from .errors import InputError
from .fsutil import atomic_open

SECTIONS = ("MODEL", "TRAIN", "VALID", "TEST", "INFER")
SAVED_NAME = "config.yaml"  # the resolved config a training run leaves beside its checkpoints
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


class Section(dict):
    """A config section whose keys read as attributes: cfg.TRAIN.epoch."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None


class Config(Section):
    def __init__(self, sections, path):
        super().__init__({name: Section(values) for name, values in sections.items()})
        self.path = path


def load_config(path, overrides=()):
    """Read `path`, apply the `SECTION.key=value` strings in `overrides` and return a Config."""
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
    sections = {name: dict(raw.get(name) or {}) for name in SECTIONS}
    for item in overrides:
        apply_override(sections, item, path)
    return Config(sections, path)


def apply_override(sections, item, path="-o"):
    key, sep, value = item.partition("=")
    section, dot, name = key.strip().partition(".")
    if not sep or not dot or not name:
        raise InputError(f"override '{item}' is not of the form SECTION.key=value", path)
    if section not in sections:
        raise InputError(f"override '{item}': unknown section '{section}'; valid: {', '.join(SECTIONS)}", path)
    if name not in sections[section]:
        valid = ", ".join(sorted(sections[section])) or "(none)"
        raise InputError(f"override '{item}': unknown key '{name}' in {section}; valid: {valid}", path)
    try:
        sections[section][name] = yaml.safe_load(value)
    except yaml.YAMLError:
        raise InputError(f"override '{item}': value is not valid YAML", path) from None


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
