"""The `crossroads` command: one sub-command per module of `testbed/commands/`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Each module has `register(subparsers)`, which adds its sub-commands and sets `func` on them.
COMMAND_MODULES: tuple[str, ...] = (
    "live",
    "audit",
    "send",
    "demo",
    "simulate",
    "fuzz",
    "loadtest",
    "bench",
    "pki",
    "crash",
    "outbox",
    "schema",
    "calibrate",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crossroads",
        description=(
            "A testbed for national social-security data networks modelled on Belgium's "
            "Crossroads Bank for Social Security: a live gRPC crossroads core with ~3,000 "
            "synthetic agencies, a what-if simulation, load tests and reports."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"testbed.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
