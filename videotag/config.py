"""Kept for one release: `videotag.config` was documented before the config moved to `core.config`."""
from core.config import CONFIG_DIR, default_config_path, load_config  # noqa: F401
