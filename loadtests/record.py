"""The request log of a load test: one JSON line per request, one file per Locust process.

Locust's own statistics are aggregates; the guarantee checks need each acknowledged message
(its id, sender, audit index, outcome and where it went) and the report needs every request's
time and latency to cut the run into fault windows. So every request is also written here, by
the process that sent it, into `<folder>/requests-<machine>-<pid>.jsonl` (per process, so that
local `--processes` workers and workers on other machines never share a file). Lines are
written as requests finish and flushed when the process stops.

A line: {"t": due time (UNIX s), "n": Locust name, "k": kind, "u": kind of user, "ms": latency
from the due time, "lag": ms late at sending, "e": error ("" = success), "m": message id,
"s": sender, "i": audit index or null, "o": outcome ("" when the core gave none),
"d": [[agency, outcome], ...] the deliveries of the reply}.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

__all__ = ["ACK_FILE_GLOB", "RequestLog", "RequestRecord", "iter_requests", "read_requests"]

ACK_FILE_GLOB = "requests-*.jsonl"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as a Locust user sent it and saw it answered (see the module doc)."""

    t: float
    name: str
    kind: str
    user: str
    ms: float
    lag_ms: float
    error: str
    message_id: str
    sender: str
    audit_index: int | None
    outcome: str
    deliveries: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        return not self.error

    @property
    def acknowledged(self) -> bool:
        """The core answered with an audit index: it holds a record of this message."""
        return self.audit_index is not None

    def as_json(self) -> dict[str, Any]:
        return {
            "t": round(self.t, 6),
            "n": self.name,
            "k": self.kind,
            "u": self.user,
            "ms": round(self.ms, 3),
            "lag": round(self.lag_ms, 3),
            "e": self.error,
            "m": self.message_id,
            "s": self.sender,
            "i": self.audit_index,
            "o": self.outcome,
            "d": [list(d) for d in self.deliveries],
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> RequestRecord:
        return cls(
            t=float(row["t"]),
            name=str(row["n"]),
            kind=str(row["k"]),
            user=str(row["u"]),
            ms=float(row["ms"]),
            lag_ms=float(row["lag"]),
            error=str(row["e"]),
            message_id=str(row["m"]),
            sender=str(row["s"]),
            audit_index=None if row["i"] is None else int(row["i"]),
            outcome=str(row["o"]),
            deliveries=tuple((str(a), str(o)) for a, o in row["d"]),
        )


class RequestLog:
    """The writer of one process. The file is opened on the first write, in the process that writes."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._file: IO[str] | None = None
        self._pid = -1

    @property
    def path(self) -> Path:
        return self.folder / f"requests-{socket.gethostname()}-{os.getpid()}.jsonl"

    def write(self, record: RequestRecord) -> None:
        if self._file is None or self._pid != os.getpid():  # a fork must not write into its parent's file
            self.folder.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            self._pid = os.getpid()
        self._file.write(json.dumps(record.as_json(), separators=(",", ":")) + "\n")

    def flush(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.flush()

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None


def iter_requests(folder: Path) -> Iterator[RequestRecord]:
    """Every request logged in `folder` (all processes), file by file.

    A last line cut short (a process killed while writing) is skipped: it was never complete.
    """
    for path in sorted(Path(folder).glob(ACK_FILE_GLOB)):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    yield RequestRecord.from_json(json.loads(line))
                except (ValueError, KeyError, TypeError):
                    continue


def read_requests(folder: Path) -> list[RequestRecord]:
    """Every request logged in `folder`, ordered by due time."""
    return sorted(iter_requests(folder), key=lambda r: r.t)
