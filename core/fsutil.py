"""Atomic file writes: a reader (or a rerun after kill -9) sees the old file or the new, never half of one."""
import contextlib
import os
import secrets

import numpy as np


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    # Keep the extension: np.save and paddle.save look at it. Mode 0o666 less the umask, as any new
    # file gets (tempfile.mkstemp would make it 0600: a teammate or web server could not read it).
    tmp = os.path.join(folder, f".{base}.{secrets.token_hex(6)}.tmp{ext}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def save_npy(path, array):
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
