"""Timed faults on a live network: kill and restart an agency host, freeze the core, slow a host.

A `FaultInjector` works from the state folder (hosts.json, endpoints.json, hosts/NAME.agencies.json)
and the pids of the running processes, so it serves `crossroads loadtest` and a network started
by `crossroads up` alike. It applies the spec's faults at their times (seconds after `t0`, the
load's start) and records when each really began and ended (`FaultWindow`, UNIX times), which
the report uses to cut the run into fault windows.

- kill_host: SIGKILL (no goodbye: calls in flight are lost to the core, which must queue what it
  owes), then after `duration` the host is started again on the same port (`agencies.host --port`: the
  core knows hosts by address) with the same agencies, inbox and identity; the window ends
  when it serves again.
- stop_core: SIGSTOP the core, SIGCONT after `duration`: a stall, with every call in flight.
- slow_host: the host is restarted (SIGTERM: a graceful stop, a brief outage) with a mean
  service time of `service_time_ms` per message, and after `duration` restarted with its own.

Hosts it started are its to stop (`close`), and they exit by themselves if this process dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from loadtests.spec import Fault

__all__ = ["FaultError", "FaultInjector", "FaultWindow", "schedule"]

CORE = "core"
START_TIMEOUT_S = 30.0  # a ceiling for a loaded machine, not a target
STOP_TIMEOUT_S = 10.0
_POLL_S = 0.05


class FaultError(RuntimeError):
    """A fault could not be applied (the message says which process and why)."""


@dataclass(slots=True)
class FaultWindow:
    """When a fault really began and ended (UNIX times); `ended` is None if it never ended."""

    fault: Fault
    started: float
    ended: float | None = None
    detail: str = ""

    def as_json(self, t0: float) -> dict[str, object]:
        """Seconds after `t0`, for summaries and figures."""
        return {
            "what": self.fault.describe(),
            "action": self.fault.action,
            "target": self.fault.host or CORE,
            "from_s": round(self.started - t0, 3),
            "until_s": None if self.ended is None else round(self.ended - t0, 3),
            "planned_from_s": self.fault.at,
            "planned_until_s": self.fault.until,
            "detail": self.detail,
        }


def schedule(faults: Sequence[Fault]) -> list[tuple[float, bool, int]]:
    """(seconds after t0, is the start, fault number) of every start and end, in time order."""
    steps = [(f.at, True, i) for i, f in enumerate(faults)] + [(f.until, False, i) for i, f in enumerate(faults)]
    return sorted(steps, key=lambda s: (s[0], s[1]))  # at one instant, ends first: a process is back before the next


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)  # dead, not yet reaped by its parent
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(_POLL_S)
    return True


class FaultInjector:
    """Applies faults to the network in `state` whose processes have `pids` (name -> pid)."""

    def __init__(self, state: Path, pids: Mapping[str, int], *, service_time_ms: float = 0.0) -> None:
        """`service_time_ms`: the hosts' own mean service time, restored after a slow_host fault."""
        self.state = Path(state)
        self._pids = dict(pids)
        self._service_time_ms = service_time_ms
        self._started: list[subprocess.Popen[bytes]] = []
        self._frozen = False
        self._lock = threading.Lock()
        self.windows: list[FaultWindow] = []
        self.errors: list[str] = []

    def pids(self) -> dict[str, int]:
        """The current pid of each process (hosts restarted by a fault have new ones)."""
        with self._lock:
            return dict(self._pids)

    # ------------------------------------------------------------------ the timeline
    def run(self, faults: Sequence[Fault], t0: float, stop: threading.Event) -> None:
        """Apply `faults` at their times after `t0` (UNIX time); blocks until the last one ended.

        `stop` cuts the wait short; whatever fault is under way is then ended at once (`close`
        also does it). A fault that fails is noted in `errors` and the others go on.
        """
        windows: dict[int, FaultWindow] = {}
        for at, starting, i in schedule(faults):
            if stop.wait(max(0.0, t0 + at - time.time())):
                return
            try:
                if starting:
                    windows[i] = self._begin(faults[i])
                    self.windows.append(windows[i])
                elif i in windows:
                    windows[i].ended = self._end(faults[i])
            except (FaultError, OSError) as exc:
                self.errors.append(f"{faults[i].describe()}: {exc}")

    def _begin(self, fault: Fault) -> FaultWindow:
        now = time.time()
        if fault.action == "stop_core":
            os.kill(self._pid(CORE), signal.SIGSTOP)
            self._frozen = True
            return FaultWindow(fault, now, detail="SIGSTOP")
        host = str(fault.host)
        if fault.action == "kill_host":
            self._kill(host)
            return FaultWindow(fault, now, detail="SIGKILL")
        self._stop_gracefully(host)
        self._restart(host, fault.service_time_ms)
        return FaultWindow(fault, now, detail=f"restarted with a mean service time of {fault.service_time_ms:g} ms")

    def _end(self, fault: Fault) -> float:
        if fault.action == "stop_core":
            self._thaw()
            return time.time()
        host = str(fault.host)
        if fault.action == "slow_host":
            self._stop_gracefully(host)
        return self._restart(host, self._service_time_ms)

    # ------------------------------------------------------------------ the processes
    def _pid(self, name: str) -> int:
        with self._lock:
            pid = self._pids.get(name)
        if pid is None:
            raise FaultError(f"no process {name!r} in this network (known: {', '.join(sorted(self._pids))})")
        return pid

    def _kill(self, name: str) -> None:
        pid = self._pid(name)
        os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, STOP_TIMEOUT_S):
            raise FaultError(f"{name} (pid {pid}) did not die after SIGKILL")

    def _stop_gracefully(self, name: str) -> None:
        pid = self._pid(name)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, STOP_TIMEOUT_S):
            self._kill(name)

    def _host_args(self, name: str, service_time_ms: float) -> list[str]:
        hosts = json.loads((self.state / "hosts.json").read_text())["hosts"]
        address = next((h["address"] for h in hosts if h["name"] == name), None)
        if address is None:
            raise FaultError(f"no host {name!r} in {self.state / 'hosts.json'}")
        seed = json.loads((self.state / "endpoints.json").read_text())["seed"]
        agencies = self.state / "hosts" / f"{name}.agencies.json"
        port_file = self.state / "hosts" / f"{name}.restarted.port"
        port_file.unlink(missing_ok=True)
        return [
            *("--state", str(self.state), "--name", name, "--agencies-file", str(agencies), "--seed", str(seed)),
            *("--port", address.rsplit(":", 1)[1], "--port-file", str(port_file)),
            *("--service-time-ms", str(service_time_ms), "--exit-with-parent"),
        ]

    def _restart(self, name: str, service_time_ms: float) -> float:
        """Start `name` again on its port; returns the UNIX time it serves."""
        args = self._host_args(name, service_time_ms)
        port_file = Path(args[args.index("--port-file") + 1])
        log = self.state / "logs" / f"{name}.restarts.log"
        with open(log, "ab") as out:
            popen = subprocess.Popen(
                [sys.executable, "-m", "agencies.host", *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches the orchestrator, which stops it in order
            )
        self._started.append(popen)
        deadline = time.monotonic() + START_TIMEOUT_S
        while not port_file.exists():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise FaultError(f"{name} did not serve again on its port; see {log}")
            time.sleep(_POLL_S)
        with self._lock:
            self._pids[name] = popen.pid
        return time.time()

    def _thaw(self) -> None:
        if self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid(CORE), signal.SIGCONT)
            self._frozen = False

    def close(self) -> None:
        """Leave nothing frozen, and stop the hosts this injector started (SIGTERM, then SIGKILL)."""
        self._thaw()
        for popen in self._started:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen in self._started:
            try:
                popen.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
