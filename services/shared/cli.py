"""The command line of a service: `python -m services.<name> <command>`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

Command = Callable[[argparse.Namespace], None]
Arguments = Callable[[argparse.ArgumentParser], None]


def run_cli(
    service: str,
    commands: dict[str, tuple[str, Command]],
    argv: list[str] | None = None,
    arguments: dict[str, Arguments] | None = None,
) -> None:
    """Dispatch to one of `commands` (name -> (help, function)); `arguments` adds the options
    of the commands that take some (name -> a function adding them to its parser)."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, _function) in commands.items():
        command_parser = sub.add_parser(name, help=help_text)
        if arguments and name in arguments:
            arguments[name](command_parser)
    args = parser.parse_args(argv if argv is not None else sys.argv[1:])
    commands[args.command][1](args)
