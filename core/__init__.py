"""The base both stages and the application stand on: config files, the one trainer, checkpoints,
lists, process groups, atomic writes, input errors. It imports nothing of the project above it.

Importing this package before paddle matters: paddle pins OMP_NUM_THREADS to 1 when it is
unset, which leaves every core but one idle on CPU; and Paddle 2.6 bundles a zlib that breaks
h5py when paddle loads first. It also keeps the frameworks' import-time chatter off the
terminal: paddle's "No ccache found" warning (it only matters for compiling C++ extensions) and
its "OMP_NUM_THREADS ... WISELY" lines (about OpenBLAS builds; ours use MKL), and the FFmpeg
log lines of OpenCV (decoder messages of broken files: we report those ourselves, one line per
file). decord's FFmpeg log is set in extractor/video.py.
"""
import contextlib
import io
import os
import sys
import warnings

os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
warnings.filterwarnings("ignore", message="No ccache found", category=UserWarning)
# BatchNorm in training tells, every time, that it tracks global statistics: what it should do.
warnings.filterwarnings("ignore", message="When training, we now always track global mean and variance")

import h5py  # noqa: E402,F401  (before paddle: see above)


def cpu_threads():
    """The CPU threads Paddle's math runs on: OMP_NUM_THREADS (one per core unless the user set it)."""
    return int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)

PADDLE_OMP_NOTICE = ("WARNING: OMP_NUM_THREADS set to", "PLEASE USE OMP_NUM_THREADS WISELY.")


def _import_paddle_quietly():
    """Import paddle with its two OMP_NUM_THREADS lines dropped (it prints them on every import
    when the variable is above 1, which we set on purpose); anything else it prints passes."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            import paddle  # noqa: F401  (here, once: the import prints; see the docstring)
    finally:  # also when the import fails: its words are the clue
        for line in captured.getvalue().splitlines(keepends=True):
            if not line.startswith(PADDLE_OMP_NOTICE):
                sys.stderr.write(line)


if "paddle" not in sys.modules:
    _import_paddle_quietly()
