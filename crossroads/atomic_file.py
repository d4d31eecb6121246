"""Writing a file so that a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["write_atomic", "write_json_atomic"]


def write_atomic(path: Path, data: bytes, *, private: bool = False, durable: bool = False) -> None:
    """Write `data` to `path` through a temporary file renamed over it.

    `private`: the file is readable by its owner only (0600; keys). `durable`: fsynced before the
    rename, so that a crash of the machine cannot undo it (a revocation list).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: object, *, indent: int | None = 2) -> None:
    """`data` as JSON (UTF-8, a final newline) written with `write_atomic`."""
    write_atomic(path, (json.dumps(data, indent=indent, ensure_ascii=False) + "\n").encode("utf-8"))
