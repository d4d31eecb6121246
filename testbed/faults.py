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

Hosts it started (through testbed.processes, as `agencies.host.command` says) are its to stop
(`close`), and they exit by themselves if this process dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from agencies import host
from crossroads.readiness import ServerCommand
from loadtests.faults import CORE, FaultWindow, schedule
from loadtests.spec import Fault
from testbed import processes
from testbed.processes import Child, ChildError

__all__ = ["FaultError", "FaultInjector"]

START_TIMEOUT_S = 30.0  # a ceiling for a loaded machine, not a target
STOP_TIMEOUT_S = 10.0


class FaultError(RuntimeError):
    """A fault could not be applied (the message says which process and why)."""


class FaultInjector:
    """Applies faults to the network in `state` whose processes have `pids` (name -> pid)."""

    def __init__(self, state: Path, pids: Mapping[str, int], *, service_time_ms: float = 0.0) -> None:
        """`service_time_ms`: the hosts' own mean service time, restored after a slow_host fault."""
        self.state = Path(state)
        self._pids = dict(pids)
        self._service_time_ms = service_time_ms
        self._started: list[Child] = []
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
            self.thaw()
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
        if not processes.kill_pid(pid, STOP_TIMEOUT_S):
            raise FaultError(f"{name} (pid {pid}) did not die after SIGKILL")

    def _stop_gracefully(self, name: str) -> None:
        pid = self._pid(name)
        if not processes.stop_pid(pid, STOP_TIMEOUT_S):
            raise FaultError(f"{name} (pid {pid}) did not stop")

    def _host_command(self, name: str, service_time_ms: float) -> ServerCommand:
        hosts = json.loads((self.state / "hosts.json").read_text())["hosts"]
        address = next((h["address"] for h in hosts if h["name"] == name), None)
        if address is None:
            raise FaultError(f"no host {name!r} in {self.state / 'hosts.json'}")
        seed = json.loads((self.state / "endpoints.json").read_text())["seed"]
        agencies = self.state / "hosts" / f"{name}.agencies.json"
        port = int(address.rsplit(":", 1)[1])
        return host.command(self.state, name, agencies, seed, port=port, service_time_ms=service_time_ms)

    def _restart(self, name: str, service_time_ms: float) -> float:
        """Start `name` again on its port; returns the UNIX time it serves."""
        log = self.state / "logs" / f"{name}.restarts.log"
        child = processes.start_server(self._host_command(name, service_time_ms), log, append=True)
        self._started.append(child)
        try:
            processes.wait_serving([child], time.monotonic() + START_TIMEOUT_S)
        except ChildError as exc:
            raise FaultError(f"{name} did not serve again on its port: {exc}") from exc
        with self._lock:
            self._pids[name] = child.pid
        return time.time()

    def thaw(self) -> None:
        """Let a core this injector froze run again (a run cut short leaves it frozen)."""
        if self._frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid(CORE), signal.SIGCONT)
            self._frozen = False

    def close(self) -> None:
        """Leave nothing frozen, and stop the hosts this injector started (SIGTERM, then SIGKILL)."""
        self.thaw()
        processes.stop(self._started, STOP_TIMEOUT_S)
