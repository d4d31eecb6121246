"""Prepared requests: what a load generator sends, as which identity, to which method, with which bytes.

Load generators (loadtests.loadgen, loadtests.flood) send prepared unary requests as raw bytes,
so that no message is encoded on the sending path. A benchmark writes them once to a requests
file (`write_requests`: one JSON line each, the body in base64) that a generator process reads.

Every call to Crossroads/Exchange must carry a message id of its own: the core answers a message
id it has seen from its journal without forwarding it again (exactly once), so cycling through
the same prepared envelopes would measure that instead. `with_message_id` appends the id to the
prepared bytes as a second `message_id` field (a protobuf parser keeps the last one), so the
envelope is not re-encoded per call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from crossroads.methods import EXCHANGE as EXCHANGE_METHOD

__all__ = ["EXCHANGE_METHOD", "Prepared", "fresh_body", "read_requests", "with_message_id", "write_requests"]

_MESSAGE_ID_TAG = b"\x0a"  # Envelope field 1 (message_id), length-delimited


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request to send: as which identity, to which method, with which bytes."""

    identity: str
    method: str
    body: bytes


def write_requests(path: Path, requests: Sequence[Prepared]) -> None:
    """Write `requests` to `path`, one JSON line each; `read_requests` reads them back."""
    with path.open("w") as out:
        for r in requests:
            out.write(
                json.dumps({"identity": r.identity, "method": r.method, "body": base64.b64encode(r.body).decode()})
            )
            out.write("\n")


def read_requests(path: Path) -> list[Prepared]:
    """The requests `write_requests` wrote to `path`, in order."""
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [Prepared(r["identity"], r["method"], base64.b64decode(r["body"])) for r in rows]


def with_message_id(envelope: bytes, message_id: str) -> bytes:
    """Serialized Envelope bytes with `message_id` (< 128 bytes) appended: a protobuf parser keeps the last."""
    data = message_id.encode()
    if len(data) > 127:
        raise ValueError(f"message id of {len(data)} bytes: at most 127 here (a one-byte length)")
    return envelope + _MESSAGE_ID_TAG + bytes([len(data)]) + data


def fresh_body(request: Prepared, message_id: str) -> bytes:
    """The bytes to send for `request`: an Exchange with `message_id` as its id, any other method as prepared."""
    return with_message_id(request.body, message_id) if request.method == EXCHANGE_METHOD else request.body
