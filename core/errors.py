"""Errors caused by the user's input; the command-line tools print them as one line."""
import functools
import sys


class InputError(Exception):
    """Bad input: a message that names the file (and line) at fault."""

    def __init__(self, message, path=None, line=None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


def exit_on_input_error(main):
    """Turn an InputError into one line on stderr and exit status 2, without a traceback."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)

    return wrapper
