"""`crossroads outbox ...`: what the core still owes to agencies, and its dead letters.

Reads and changes DIR/audit.sqlite directly (the outbox lives in the audit store, see
crossroads/journal.py); safe while the core runs: a replay is picked up by the running core's
redelivery within a few seconds, without a restart.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from typing import Any

from crossroads.outbox import OutboxItem, outbox_path, read_counts, read_items, replay_dead
from testbed.commands.arguments import Run, failed
from testbed.commands.state_commands import StateCommands

__all__ = ["register"]

_STATES = ("pending", "dead", "delivered", "all")
_SUMMARY = "list what the core owes to agencies that are down, and replay dead letters"
_DESCRIPTION = (
    "Declarations and mutation notices owed to an agency that is down wait in the core's "
    "outbox and are redelivered in order when it is back. An item still undeliverable after "
    "the core's dead-letter time (--dead-after of the core; a day by default) becomes a dead "
    "letter: it no longer holds back the agency's later items, and waits for an operator to "
    "replay it."
)
_ERRORS = (sqlite3.DatabaseError,)


def register(subparsers: Any) -> None:
    """Add `outbox` and its sub-commands (stats, list, dead, replay) to the CLI."""
    outbox = StateCommands(subparsers, "outbox", _SUMMARY, _DESCRIPTION, holds="audit.sqlite", errors=_ERRORS)
    outbox.add("stats", _existing(_stats), "print the counts of pending, delivered and dead items as JSON")
    listing = outbox.add(
        "list", _existing(_list), "print one JSON line per item (pending ones by default), in delivery order"
    )
    listing.add_argument("--status", choices=_STATES, default="pending", help="which items (default: pending)")
    listing.add_argument("--agency", help="only the items owed to this agency")
    dead = outbox.add("dead", _existing(_dead), "print one JSON line per dead letter, in delivery order")
    dead.add_argument("--agency", help="only the dead letters of this agency")
    replay = outbox.add(
        "replay",
        _existing(_replay),
        "put dead letters back in line (all of them, one agency's, or the given sequence numbers); "
        "prints how many as JSON",
    )
    replay.add_argument("--agency", help="only the dead letters of this agency")
    replay.add_argument("--seq", type=int, action="append", default=[], help="a sequence number (repeatable)")


def _existing(run: Run) -> Run:
    """`run`, on a state folder that has a core store (exit 2 if it has none)."""

    def checked(args: argparse.Namespace) -> int:
        path = outbox_path(args.state)
        if not path.exists():
            return failed("outbox", f"no core store in {args.state} (expected {path})", 2)
        return run(args)

    return checked


def _item_json(item: OutboxItem) -> dict[str, Any]:
    return {
        "seq": item.seq,
        "agency": item.agency,
        "message_id": item.message_id,
        "audit_index": item.audit_index,
        "accepted": item.accepted,
        "attempts": item.attempts,
        "last_error": item.last_error,
        "delivered": item.delivered,
        "dead": item.dead,
    }


def _print_items(items: list[OutboxItem]) -> int:
    for item in items:
        sys.stdout.write(json.dumps(_item_json(item)) + "\n")
    return 0


def _stats(args: argparse.Namespace) -> int:
    counts = read_counts(outbox_path(args.state))
    print(json.dumps({"pending": counts.pending, "delivered": counts.delivered, "dead": counts.dead}))
    return 0


def _list(args: argparse.Namespace) -> int:
    return _print_items(read_items(outbox_path(args.state), state=args.status, agency=args.agency))


def _dead(args: argparse.Namespace) -> int:
    return _print_items(read_items(outbox_path(args.state), state="dead", agency=args.agency))


def _replay(args: argparse.Namespace) -> int:
    count = replay_dead(outbox_path(args.state), agency=args.agency, seqs=args.seq)
    print(json.dumps({"replayed": count}))
    return 0
