"""`crossroads pki revoke|list-revoked`: the network's certificate revocation list, no server needed.

A running core takes a new list within about a second (crossroads.revocation), without a
restart: from then on every call made with a revoked certificate is refused UNAUTHENTICATED.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from crossroads.pki import NetworkPki, PkiError
from testbed.commands.state_commands import StateCommands

__all__ = ["register"]

_SUMMARY = "revoke certificates of the network PKI and list the revoked ones"
_DESCRIPTION = (
    "The network CA signs a certificate revocation list, DIR/pki/crl.pem; the core checks "
    "every caller's certificate against it and takes a new list without a restart."
)


def register(subparsers: Any) -> None:
    """Add `pki` and its sub-commands (revoke, list-revoked) to the CLI."""
    # a missing CA, identity or a bad CRL is a message and exit code 2
    pki = StateCommands(subparsers, "pki", _SUMMARY, _DESCRIPTION, holds="pki/ with the network CA", errors=(PkiError,))
    revoke = pki.add(
        "revoke",
        _revoke,
        "revoke the certificate of identity NAME (an agency id, host-K, admin, ...): rewrite the signed CRL "
        "with its serial added; prints the serial as JSON. Revoking twice changes nothing",
    )
    revoke.add_argument("name", metavar="NAME", help="the identity whose certificate is revoked")
    pki.add("list-revoked", _list_revoked, "print the revoked certificates (serial, date, identity) as JSON")


def _open(state: Path) -> NetworkPki:
    """The PKI of `state`; never creates a CA (PkiError if there is none)."""
    pki_dir = state / "pki"
    if not (pki_dir / "ca.pem").exists():
        raise PkiError(f"no network CA in {pki_dir} (expected {pki_dir / 'ca.pem'})")
    return NetworkPki.open(pki_dir)


def _revoke(args: argparse.Namespace) -> int:
    pki = _open(args.state)
    serial = pki.revoke(args.name)
    current = pki.revocation_list()
    number = current.number if current else 0
    print(json.dumps({"revoked": args.name, "serial": f"{serial:#x}", "crl": str(pki.crl_path), "crl_number": number}))
    return 0


def _list_revoked(args: argparse.Namespace) -> int:
    pki = _open(args.state)
    current = pki.revocation_list()
    report = {
        "crl_number": current.number if current else 0,
        "updated": current.updated.isoformat() if current else None,
        "revoked": [
            {"name": r.name, "serial": f"{r.serial:#x}", "revoked_at": r.revoked_at.isoformat()} for r in pki.revoked()
        ],
    }
    print(json.dumps(report, indent=2))
    return 0
