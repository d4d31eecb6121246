"""The crossroads core as a child process that the harness kills with SIGKILL and starts again.

`CoreProcess(state)` runs the core as `crossroads.server.command` says (through
testbed.processes, as `testbed.live` does). The first start takes any free port; every restart
asks for the same port, since a killed process frees its listening port at once on Linux.
Should the port still be held, the start is retried a few times and then falls back to a free
port: the caller reads the address `start` returns (the port file's), never assumes it. Every
start appends to DIR/logs/core.log, so the log of a run shows every life of the core.
"""

from __future__ import annotations

import time
from pathlib import Path

from crossroads import server
from testbed import processes
from testbed.processes import Child, ChildError

__all__ = ["CORE_LOG", "CoreProcess", "CoreProcessError"]

CORE_LOG = "core.log"
START_TIMEOUT_S = 60.0  # a ceiling for a loaded machine, not a target
STOP_TIMEOUT_S = 15.0
SAME_PORT_TRIES = 3  # starts on the old port before taking any free one
_RETRY_PAUSE_S = 0.2


class CoreProcessError(RuntimeError):
    """The core did not start (the message quotes the end of its log)."""


class CoreProcess:
    """One core at a time in `state`: `start`, `kill` (SIGKILL), `stop` (SIGTERM, graceful)."""

    def __init__(self, state: Path) -> None:
        self.state = Path(state)
        self.log = self.state / "logs" / CORE_LOG
        self.port = 0  # 0 until the first start: any free port
        self.starts = 0
        self._child: Child | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def running(self) -> bool:
        return self._child is not None and self._child.exited() is None

    def start(self, timeout_s: float = START_TIMEOUT_S) -> str:
        """Start the core and return its address once it serves (it writes its port file then).

        Tries the previous port first (`SAME_PORT_TRIES` times), then any free port.
        CoreProcessError, quoting its log, if no start succeeds within `timeout_s`.
        """
        if self.running():
            raise CoreProcessError(f"the core (pid {self.pid}) is still running")
        deadline = time.monotonic() + timeout_s
        tries = 0
        while True:
            port = self.port if tries < SAME_PORT_TRIES else 0
            started = self._start_once(port, deadline)
            if started is not None:
                self.port = started
                self.starts += 1
                return self.address
            tries += 1
            if time.monotonic() > deadline:
                tail = processes.log_tail(self.log)
                raise CoreProcessError(f"the core did not start; last lines of {self.log}:\n{tail}")
            time.sleep(_RETRY_PAUSE_S)  # e.g. the old port not yet free

    def _start_once(self, port: int, deadline: float) -> int | None:
        """The port the core serves on, or None if it exited first (or did not serve in time)."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            out.write(f"--- crash harness: start {self.starts + 1} on port {port or 'any'}\n".encode())
        self._child = processes.start_server(server.command(self.state, port=port), self.log, append=True)
        try:
            processes.wait_serving([self._child], deadline)
        except ChildError:
            self.kill()
            return None
        return int(str(self._child.address).rsplit(":", 1)[1])

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed, calls in flight cut. Returns once it is gone."""
        if self._child is not None:
            processes.kill(self._child)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM: the core stops gracefully (stores a final checkpoint); SIGKILL after `timeout_s`."""
        if self._child is not None:
            processes.stop([self._child], timeout_s)
