"""The crash harness's command line, shared by `python -m testbed.crash` and `crossroads crash`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from loadtests.crash.load import DEFAULT_RATE, DEFAULT_WORKERS
from testbed.commands.arguments import add_hosts, add_out, add_quiet, add_seed, failed, settings
from testbed.crash.run import (
    CRASH_JSON,
    DEFAULT_DRAIN_S,
    DEFAULT_HOST_KILLS,
    DEFAULT_HOSTS,
    DEFAULT_KILLS,
    CrashError,
    CrashRun,
    run_crash,
)
from testbed.live import LiveNetworkError

__all__ = ["DESCRIPTION", "add_arguments", "main", "run_from_args"]

DESCRIPTION = f"""\
Prove that a crash costs nothing acknowledged. On a small live network (or SCENARIO's world)
under a seeded load of declarations (DIMONA, DmfA, DRS), mutations and consultations, kill the
crossroads core with SIGKILL --kills times and an agency host --host-kills times (each started
again on its port; the core also during every second host outage). Messages whose call the
kill cut are sent again with the same message id. Then check, on OUT/state:
  - every acknowledged declaration or mutation reached every destination's inbox, or is still
    held in the core's outbox (lost must be 0);
  - every acknowledged message id has exactly one audit record (duplicated records are counted);
  - `crossroads audit verify` passes;
  - every signed audit head after a restart is consistent with the last one before the kill;
  - every message sent was acknowledged in the end;
  - per agency, notices arrived in the order they were acknowledged.
Writes OUT/{CRASH_JSON} (counts, checks, restarts) and OUT/acks.jsonl. Progress on stderr.
Exit 0 when every guarantee held, 1 naming the broken ones, 2 when the run itself failed.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_out(parser, "run folder to write (state, logs, crash.json)")
    parser.add_argument("--kills", type=int, default=DEFAULT_KILLS, help=f"core kills (default {DEFAULT_KILLS})")
    parser.add_argument(
        "--host-kills", type=int, default=DEFAULT_HOST_KILLS, help=f"agency host kills (default {DEFAULT_HOST_KILLS})"
    )
    add_seed(parser, "seed of the load and of the kill moments (default 0)", default=0)
    parser.add_argument(
        "--scenario", type=Path, help="a scenario whose world: to use (default: a small built-in world)"
    )
    add_hosts(parser, DEFAULT_HOSTS)
    parser.add_argument(
        "--workers", type=int, default=DEFAULT_WORKERS, help=f"sending threads (default {DEFAULT_WORKERS})"
    )
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help=f"messages/s (default {DEFAULT_RATE:g})")
    parser.add_argument(
        "--drain",
        type=float,
        default=DEFAULT_DRAIN_S,
        help=f"seconds to let the outbox empty (default {DEFAULT_DRAIN_S:g})",
    )
    add_quiet(parser)


def run_from_args(args: argparse.Namespace) -> int:
    """Run the harness as the parsed arguments say; the exit code (see DESCRIPTION)."""
    if args.kills < 0 or args.host_kills < 0 or args.hosts < 1:
        return failed("crash", "--kills and --host-kills must be >= 0, --hosts >= 1", 2)
    try:
        result = run_crash(settings(CrashRun, args, drain_s=args.drain, progress=not args.quiet))
    except (CrashError, LiveNetworkError) as exc:
        return failed("crash", f"the run failed: {exc}", 2)
    counts = result.summary["counts"]
    print(f"crossroads crash: {result.path}: " + ", ".join(f"{k} {v}" for k, v in counts.items()), file=sys.stderr)
    if not result.ok:
        for name in result.summary["broken"]:
            print(f"crossroads crash: BROKEN: {name}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.crash", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))
