"""What the commands that read a state folder share: sub-commands with `--state DIR`, errors as one line.

`crossroads audit`, `crossroads outbox` and `crossroads pki` each work on the files of a state
folder without a server; a missing or damaged file is a message on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["Run", "add_group", "add_state_command"]

Run = Callable[[argparse.Namespace], int]


def add_group(subparsers: Any, name: str, *, help_text: str, description: str) -> Any:
    """Add command `name`, which prints its help when called without a sub-command; return its sub-parsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text, description=description)
    parser.set_defaults(func=lambda _args: _usage(parser))
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND")


def add_state_command(
    sub: Any,
    name: str,
    run: Run,
    text: str,
    *,
    state_help: str,
    errors: tuple[type[Exception], ...],
    prefix: str,
) -> argparse.ArgumentParser:
    """Add sub-command `name` with `--state DIR`; `errors` raised by `run` become "`prefix`: message", exit 2."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
    parser.add_argument("--state", metavar="DIR", type=Path, required=True, help=state_help)
    parser.set_defaults(func=lambda args: _reporting(run, args, errors, prefix))
    return parser


def _reporting(run: Run, args: argparse.Namespace, errors: tuple[type[Exception], ...], prefix: str) -> int:
    try:
        return run(args)
    except errors as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 2


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
