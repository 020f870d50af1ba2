"""Flags renamed for the one flag vocabulary: the old spelling keeps working for one release, with
a line that says the new one."""
import argparse
import sys


class _Renamed(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is now {self.new} in `{parser.prog}`; the old name goes in the next "
              "release", file=sys.stderr)
        setattr(namespace, self.dest, values)


def renamed(parser, old, new):
    """Accept `old` as a hidden synonym of the already added option `new`."""
    target = next(action for action in parser._actions if new in action.option_strings)
    action = parser.add_argument(old, dest=target.dest, choices=target.choices, help=argparse.SUPPRESS,
                                 action=_Renamed)
    action.new = new
