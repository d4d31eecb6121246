"""How a server of the testbed is started as a child, says that it serves, and stops.

Every server module that runs as a process of its own (`crossroads.server`, `agencies.host`,
`testbed.proxy`) follows one contract, and says how it is started with a `ServerCommand`
(its module, command line, environment and port file), which `testbed.processes` runs:
- it binds 127.0.0.1, starts serving, and only then writes its port to its port file
  (`write_port_file`): atomically, so a reader (`read_port_file`) sees no file or the whole
  port, never a part of it, and a port file that exists means "serving";
- it runs until SIGTERM or SIGINT, or, when started with `--exit-with-parent`, until the
  process that started it is gone (`StopSignal`), then stops gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from crossroads.atomic_file import write_atomic

__all__ = ["EXIT_WITH_PARENT", "PARENT_POLL_S", "ServerCommand", "StopSignal", "read_port_file", "write_port_file"]

PARENT_POLL_S = 0.5  # seconds between looks at whether the starting process is still there
EXIT_WITH_PARENT = "--exit-with-parent"


@dataclass(frozen=True, slots=True)
class ServerCommand:
    """How to start one server: `python -m MODULE ARGS...` with `env` added to the environment.

    `name` names the process (its log file, its error messages); the server writes its port to
    `port_file` once serving.
    """

    name: str
    module: str
    args: tuple[str, ...]
    port_file: Path
    env: Mapping[str, str] = field(default_factory=dict)


def write_port_file(path: Path, port: int) -> None:
    """Write `port` to `path` so that a reader sees no file or the whole port."""
    write_atomic(path, f"{port}\n".encode("ascii"))


def read_port_file(path: Path) -> int | None:
    """The port in `path`, or None while the server has not written it."""
    try:
        return int(path.read_text(encoding="ascii"))
    except (FileNotFoundError, ValueError):
        return None


class StopSignal:
    """SIGTERM or SIGINT, or (with `exit_with_parent`) the death of the process that started
    this one: whoever started a server is gone, and the server must not outlive it.

    Make it (inside the running event loop) before the server writes its port file, so that a
    stop asked at any moment after that is a graceful one; then `await wait()`. The signal
    handlers stay installed to the end: a second SIGTERM during the stop changes nothing.
    """

    def __init__(self, *, exit_with_parent: bool, poll_s: float = PARENT_POLL_S) -> None:
        self._asked = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._asked.set)
        self._parent = os.getppid() if exit_with_parent else None
        self._poll_s = poll_s

    async def wait(self) -> None:
        """Return once a stop was asked for, or the parent is gone."""
        if self._parent is None:
            await self._asked.wait()
            return
        while not self._asked.is_set() and os.getppid() == self._parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked.wait(), self._poll_s)
