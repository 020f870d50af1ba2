"""Kept for one release: `videotag.config` was documented before the config moved to `core.config`."""
from core.config import CONFIG_DIR, load_config  # noqa: F401

from .models import default_config_path  # noqa: F401
