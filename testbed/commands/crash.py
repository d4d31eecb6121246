"""`crossroads crash`: kill the core and agency hosts under load, and prove nothing acknowledged was lost."""

from __future__ import annotations

from typing import Any

from testbed.commands.arguments import add_command
from testbed.crash.options import DESCRIPTION, add_arguments, run_from_args

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add `crash` to the `crossroads` sub-commands."""
    what = "crash-consistency harness: SIGKILL the core and hosts under load, check nothing acknowledged is lost"
    add_arguments(add_command(sub, "crash", run_from_args, help_text=what, description=DESCRIPTION))
