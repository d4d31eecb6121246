"""`crossroads crash`: kill the core and agency hosts under load, and prove nothing acknowledged was lost."""

from __future__ import annotations

import argparse
from typing import Any

from testbed.crash.options import DESCRIPTION, add_arguments, run_from_args

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add `crash` to the `crossroads` sub-commands."""
    parser = sub.add_parser(
        "crash",
        help="crash-consistency harness: SIGKILL the core and hosts under load, check nothing acknowledged is lost",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run_from_args)
