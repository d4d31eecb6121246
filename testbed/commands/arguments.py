"""What the commands share: adding a command, the options several of them take (--state, --out,
--seed, --hosts, --quiet), durations, a run's settings from its arguments, and a failure said in
one line. Not a command: `testbed.cli` registers only the modules it names.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from scenarios.schema import parse_duration

__all__ = [
    "Run",
    "add_command",
    "add_hosts",
    "add_out",
    "add_quiet",
    "add_seed",
    "add_state",
    "duration",
    "failed",
    "positive_number",
    "settings",
]

Run = Callable[[argparse.Namespace], int]  # what a command runs: its parsed arguments -> exit code
_T = TypeVar("_T")


def add_command(sub: Any, name: str, run: Run, *, help_text: str, description: str) -> argparse.ArgumentParser:
    """Add command `name` to the sub-commands `sub`: `run` runs it, `description` (its --help) is
    printed as written."""
    parser: argparse.ArgumentParser = sub.add_parser(
        name, help=help_text, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.set_defaults(func=run)
    return parser


def add_state(parser: argparse.ArgumentParser, help_text: str, *, required: bool = True, **options: Any) -> None:
    """`--state DIR`: the state folder of a network."""
    parser.add_argument("--state", metavar="DIR", type=Path, required=required, help=help_text, **options)


def add_out(parser: argparse.ArgumentParser, help_text: str, *, default: Path | None = None) -> None:
    """`--out DIR`: the folder a run writes; required unless it has a `default` (then named in the help)."""
    if default is None:
        parser.add_argument("--out", metavar="DIR", type=Path, required=True, help=help_text)
    else:
        parser.add_argument("--out", metavar="DIR", type=Path, default=default, help=f"{help_text} (default {default})")


def add_seed(parser: argparse.ArgumentParser, help_text: str, *, default: int | None = None) -> None:
    """`--seed N`: the seed of what a run draws at random."""
    parser.add_argument("--seed", type=int, default=default, help=help_text)


def add_hosts(parser: argparse.ArgumentParser, default: int) -> None:
    """`--hosts N`: how many agency host processes serve the agencies of the live network."""
    parser.add_argument("--hosts", type=int, default=default, help=f"agency host processes (default {default})")


def add_quiet(
    parser: argparse.ArgumentParser, help_text: str = "no progress messages", *, flag: str = "--quiet"
) -> None:
    """A flag that silences a run's progress on stderr (`--quiet`, or `flag`)."""
    parser.add_argument(flag, action="store_true", help=help_text)


def duration(where: str) -> Callable[[str], float]:
    """An argparse type: a duration ("90", "90s", "2min", "1h") in seconds; errors name `where`."""

    def seconds(text: str) -> float:
        try:
            return float(parse_duration(text, where))
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return seconds


def positive_number(text: str) -> float:
    """An argparse type: a number more than 0 (a rate, a share)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0:  # NaN too
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def settings(kind: type[_T], args: argparse.Namespace, **given: Any) -> _T:
    """The dataclass `kind` from parsed arguments: each field of it that `args` holds under the
    same name, and the fields `given` (which win); the other fields keep their defaults."""
    names = (f.name for f in dataclasses.fields(kind))  # type: ignore[arg-type]
    found = {name: getattr(args, name) for name in names if hasattr(args, name)}
    return kind(**(found | given))


def failed(command: str, message: str, code: int) -> int:
    """Say what went wrong on stderr, as "crossroads COMMAND: MESSAGE", and return the exit code `code`."""
    print(f"crossroads {command}: {message}", file=sys.stderr)
    return code
