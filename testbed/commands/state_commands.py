"""What the commands that read a state folder share: sub-commands with `--state DIR`, errors as one line.

`crossroads audit`, `crossroads outbox` and `crossroads pki` each work on the files of a state
folder without a server; a missing or damaged file is a message on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
from typing import Any

from testbed.commands.arguments import Run, add_state, failed

__all__ = ["StateCommands"]


class StateCommands:
    """Command `name` (`crossroads NAME SUB --state DIR`), which prints its help when called
    without a sub-command; `add` gives it its sub-commands.

    `summary` is its line in `crossroads --help`, `description` its own help; `holds` says what
    the state folder holds for it; `errors` raised by a sub-command become "crossroads NAME:
    message" on stderr and exit code 2.
    """

    def __init__(
        self,
        subparsers: Any,
        name: str,
        summary: str,
        description: str,
        *,
        holds: str,
        errors: tuple[type[Exception], ...],
    ) -> None:
        parser: argparse.ArgumentParser = subparsers.add_parser(name, help=summary, description=description)
        parser.set_defaults(func=lambda _args: _usage(parser))
        self._sub = parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")
        self._name = name
        self._state_help = f"the state folder of a network (holds {holds})"
        self._errors = errors

    def add(self, name: str, run: Run, text: str) -> argparse.ArgumentParser:
        """Add sub-command `name` (`text` is its help), with `--state DIR`, running `run`."""
        parser: argparse.ArgumentParser = self._sub.add_parser(name, help=text, description=text)
        add_state(parser, self._state_help)
        parser.set_defaults(func=lambda args: self._reporting(run, args))
        return parser

    def _reporting(self, run: Run, args: argparse.Namespace) -> int:
        try:
            return run(args)
        except self._errors as exc:
            return failed(self._name, str(exc), 2)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
