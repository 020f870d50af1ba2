"""Errors the command-line tools print as one line, each with its own exit status.

Exit statuses of every command: 0 all done, 1 some videos (or lines) failed and are listed,
2 bad input (InputError), 3 cannot write the outputs (a read-only, full or forbidden folder).
"""
import errno
import functools
import os
import sys

EXIT_FAILURES, EXIT_INPUT, EXIT_CANNOT_WRITE = 1, 2, 3

# OSErrors that mean "this folder cannot take our outputs", not a bug: a line, not a traceback.
FREE_SPACE = "free space (finished outputs are kept) or choose another --save_dir"
WRITE_ERRNOS = {
    errno.ENOSPC: "cannot write {}: the disk is full; " + FREE_SPACE,
    errno.EDQUOT: "cannot write {}: the disk quota is exceeded; " + FREE_SPACE,
    errno.EROFS: "cannot write {}: the file system is read-only; choose another --save_dir",
    errno.EACCES: "{}: permission denied; fix its permissions or choose another --save_dir",
    errno.EPERM: "{}: operation not permitted; fix its permissions or choose another --save_dir",
}


class InputError(Exception):
    """Bad input: a message that names the file (and line) at fault."""

    def __init__(self, message, path=None, line=None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


def cannot_write_message(err):
    """One line for an OSError of WRITE_ERRNOS: what, where, and what to do."""
    return WRITE_ERRNOS[err.errno].format(err.filename or "the outputs")


def check_writable(folder):
    """Create `folder` and a file in it now, before any compute is spent; OSError if we cannot."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError("is a file, not a folder: choose another --save_dir", folder)
    os.makedirs(folder, exist_ok=True)
    probe = os.path.join(folder, f".write-test.{os.getpid()}")
    with open(probe, "w") as f:
        f.write("ok")
    os.remove(probe)


def exit_on_input_error(main):
    """Run a command's main: an InputError becomes one line on stderr and exit status 2, an
    OSError of an unwritable output folder one line and exit status 3, without a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(EXIT_INPUT)
        except OSError as err:
            if err.errno not in WRITE_ERRNOS:
                raise
            print(f"error: {cannot_write_message(err)}", file=sys.stderr)
            sys.exit(EXIT_CANNOT_WRITE)

    return wrapper
