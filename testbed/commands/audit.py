"""`crossroads audit ...`: read and check the audit log of a state folder, no server needed."""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from crossroads.audit import AUDIT_DB, AuditHead, AuditLog, AuditLogError, verify_store
from crossroads.audit_record import AuditRecord, AuditRecordError
from crossroads.identifiers import niss_problem
from testbed.commands.state_commands import StateCommands

__all__ = ["register"]

_SUMMARY = "read and verify the tamper-evident audit log"
_DESCRIPTION = (
    "The audit log records every exchange the crossroads handled, as leaves of an RFC 6962 "
    "Merkle tree with signed C2SP checkpoints. These commands read DIR/audit.sqlite directly."
)
_ERRORS = (AuditLogError, sqlite3.DatabaseError)  # a damaged or unreadable store: a message, not a traceback


def register(subparsers: Any) -> None:
    """Add `audit` and its sub-commands (head, export, verify, who-accessed) to the CLI."""
    audit = StateCommands(subparsers, "audit", _SUMMARY, _DESCRIPTION, holds="audit.sqlite and keys/", errors=_ERRORS)
    audit.add("head", _head, "print the size, root (hex) and signed checkpoint of the log as JSON")
    audit.add(
        "export",
        _export,
        "print one JSON line per record, in order: {index, leaf}, leaf = hex of the exact hashed bytes",
    )
    verify = audit.add(
        "verify",
        _verify,
        "recompute every leaf hash, tile, root and checkpoint signature; exit 0 only if all hold, "
        "else 1 naming the first bad index (on a running network the newest records may not be "
        "covered by a checkpoint yet)",
    )
    verify.add_argument(
        "--index",
        action="store_true",
        help="also decode every record and check the who-accessed index against them (slower)",
    )
    who = audit.add(
        "who-accessed",
        _who_accessed,
        "list every exchange about a person, each with an inclusion proof against the current head, as JSON",
    )
    who.add_argument("niss", metavar="NISS", help="the person's national number (11 digits)")


def _open(state: Path) -> AuditLog:
    """The log of `state`, read-only (AuditLogError, reported as one line, if there is none)."""
    return AuditLog.open(state, read_only=True)


def _head_json(head: AuditHead) -> dict[str, Any]:
    return {"size": head.size, "root": head.root.hex(), "checkpoint": head.checkpoint}


def _head(args: argparse.Namespace) -> int:
    with _open(args.state) as log:
        print(json.dumps(_head_json(log.head())))
    return 0


def _export(args: argparse.Namespace) -> int:
    with _open(args.state) as log:
        out = sys.stdout
        for index, leaf in log.iter_leaves():
            out.write(f'{{"index":{index},"leaf":"{leaf.hex()}"}}\n')
    return 0


def _verify(args: argparse.Namespace) -> int:
    if not (args.state / AUDIT_DB).exists():
        raise AuditLogError(f"no audit log in {args.state} (expected {args.state / AUDIT_DB})")
    result = verify_store(args.state, check_index=args.index)
    print(
        json.dumps(
            {
                "ok": result.ok,
                "size": result.size,
                "first_bad_index": result.first_bad_index,
                "message": result.message,
            }
        )
    )
    if not result.ok:
        where = "" if result.first_bad_index is None else f" (first bad index {result.first_bad_index})"
        print(f"crossroads audit: verification FAILED{where}: {result.message}", file=sys.stderr)
        return 1
    return 0


def _decoded(leaf: bytes) -> dict[str, Any] | None:
    try:
        return AuditRecord.from_leaf(leaf).as_json()
    except AuditRecordError:
        return None  # the raw leaf is still shown: the proof is about the bytes


def _who_accessed(args: argparse.Namespace) -> int:
    problem = niss_problem(args.niss)
    if problem:
        print(f"crossroads audit: {problem}", file=sys.stderr)
        return 2
    with _open(args.state) as log:
        head, entries = log.who_accessed(args.niss)
        report = {
            "niss": args.niss,
            "head": _head_json(head),
            "entries": [
                {
                    "index": e.index,
                    "record": _decoded(e.leaf),
                    "leaf": e.leaf.hex(),
                    "inclusion": {"index": e.index, "tree_size": e.tree_size, "hashes": [h.hex() for h in e.proof]},
                }
                for e in entries
            ],
        }
    print(json.dumps(report, indent=2, ensure_ascii=False))
    return 0
