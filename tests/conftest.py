import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("OMP_NUM_THREADS", "2")

import logging  # noqa: E402

import pytest  # noqa: E402


class Logged(list):
    """The messages logged on the project's logger during a test; `warnings`: those at WARNING and above.
    Our own handler on our logger: each call counted once, whatever other tests left on the root."""

    def __init__(self):
        super().__init__()
        self.warnings = []

    def add(self, record):
        self.append(record.getMessage())
        if record.levelno >= logging.WARNING:
            self.warnings.append(record.getMessage())


@pytest.fixture
def logs():
    logged = Logged()
    handler = logging.Handler()
    handler.emit = logged.add
    logging.getLogger("videotag").addHandler(handler)
    yield logged
    logging.getLogger("videotag").removeHandler(handler)
