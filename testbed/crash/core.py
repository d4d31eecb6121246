"""The crossroads core as a child process that the harness kills with SIGKILL and starts again.

`CoreProcess(state)` runs `python -m crossroads.server --state DIR --port P --port-file F` (as
`testbed.live` does, in a session of its own, stopping by itself if the harness dies). The first
start takes any free port; every restart asks for the same port, since a killed process frees
its listening port at once on Linux. Should the port still be held, the start is retried a few
times and then falls back to a free port: the caller reads the address `start` returns (the
port file's), never assumes it. Every start appends to DIR/logs/core.log, so the log of a run
shows every life of the core.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from testbed.live import child_env, log_tail

__all__ = ["CORE_LOG", "CoreProcess", "CoreProcessError"]

CORE_LOG = "core.log"
START_TIMEOUT_S = 60.0  # a ceiling for a loaded machine, not a target
STOP_TIMEOUT_S = 15.0
SAME_PORT_TRIES = 3  # starts on the old port before taking any free one
_RETRY_PAUSE_S = 0.2
_POLL_S = 0.02


class CoreProcessError(RuntimeError):
    """The core did not start (the message quotes the end of its log)."""


class CoreProcess:
    """One core at a time in `state`: `start`, `kill` (SIGKILL), `stop` (SIGTERM, graceful)."""

    def __init__(self, state: Path) -> None:
        self.state = Path(state)
        self.port_file = self.state / "core.port"
        self.log = self.state / "logs" / CORE_LOG
        self.port = 0  # 0 until the first start: any free port
        self.starts = 0
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._popen.pid if self._popen is not None else None

    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

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
                raise CoreProcessError(f"the core did not start; last lines of {self.log}:\n{log_tail(self.log)}")
            time.sleep(_RETRY_PAUSE_S)  # e.g. the old port not yet free

    def _start_once(self, port: int, deadline: float) -> int | None:
        """The port the core serves on, or None if it exited first (or did not serve in time)."""
        self.port_file.unlink(missing_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            out.write(f"--- crash harness: start {self.starts + 1} on port {port or 'any'}\n".encode())
            out.flush()
            self._popen = subprocess.Popen(
                [sys.executable, "-m", "crossroads.server", *self._arguments(port)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child_env(),
                start_new_session=True,  # a Ctrl-C reaches the harness only; it stops the core itself
            )
        while time.monotonic() < deadline:
            try:
                return int(self.port_file.read_text())
            except (FileNotFoundError, ValueError):
                pass  # absent, or being written
            if self._popen.poll() is not None:
                return None
            time.sleep(_POLL_S)
        self.kill()
        return None

    def _arguments(self, port: int) -> list[str]:
        return [
            "--state",
            str(self.state),
            "--port",
            str(port),
            "--port-file",
            str(self.port_file),
            "--exit-with-parent",
        ]

    def kill(self) -> None:
        """SIGKILL: no goodbye, nothing flushed, calls in flight cut. Returns once it is gone."""
        if self._popen is None:
            return
        if self._popen.poll() is None:
            os.kill(self._popen.pid, signal.SIGKILL)
        self._popen.wait()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM: the core stops gracefully (stores a final checkpoint); SIGKILL after `timeout_s`."""
        if self._popen is None or self._popen.poll() is not None:
            return
        self._popen.send_signal(signal.SIGTERM)
        try:
            self._popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
