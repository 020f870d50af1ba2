"""The one logger of every command. Modules log to `log`; each entry point calls `setup()` once."""
import contextlib
import logging
import os
import sys
import tempfile

from . import dist

log = logging.getLogger("videotag")


class _Format(logging.Formatter):
    def format(self, record):
        text = super().format(record)
        return text if record.levelno < logging.WARNING else text.replace("] ", f"] {record.levelname.lower()}: ", 1)


def setup(every_rank=False):
    """Our own handler (paddle configures the root logger with its format on import): a time stamp,
    and the rank when several processes run. INFO on the first process; on the others only
    warnings, unless every process has its own story to tell (`every_rank`: the extractor's shares)."""
    where = "%(asctime)s" if dist.world_size() == 1 else f"%(asctime)s rank {dist.rank()}"
    handler = logging.StreamHandler()
    handler.setFormatter(_Format(f"[{where}] %(message)s", datefmt="%H:%M:%S"))
    # Replace only a handler of ours (a command run twice in one process keeps one), not a caller's.
    log.handlers[:] = [h for h in log.handlers if not isinstance(h.formatter, _Format)] + [handler]
    log.propagate = False
    log.setLevel(logging.INFO if dist.is_main() or every_rank else logging.WARNING)


@contextlib.contextmanager
def without_native_lines(pattern, active=True):
    """Hold back the lines matching `pattern` (bytes regex) that C++ code writes to stderr while the
    block runs: stderr (the file descriptor) goes to a file meanwhile, then every other line is
    written back, so warnings and errors stay (a crash that kills the process in the block would
    lose them). For framework noise no flag turns off."""
    if not active:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().splitlines(keepends=True)
            kept = b"".join(line for line in lines if not pattern.match(line.rstrip(b"\r\n")))
            if kept:
                os.write(2, kept)
