"""The one logger of every command. Modules log to `log`; each entry point calls `setup()` once."""
import logging

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
