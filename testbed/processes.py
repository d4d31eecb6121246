"""Every child process of the testbed, started, waited for and stopped in one place.

Servers (the core, the agency hosts, the raw proxy) say how they are started with a
`crossroads.readiness.ServerCommand`; `start_server` runs one and `wait_serving` waits until it
wrote its port file. Other children (Locust, the load generator, a fuzzer) are started with
`start` or run to their end with `run`. Every child:
- runs this very Python (`sys.executable`) and imports the very code this process runs,
  wherever it was started from (`child_env`);
- writes its stdout and stderr to a log file of its own (`Child.log`), whose last lines an
  error quotes (`log_tail`);
- starts in a session of its own, so that a Ctrl-C in the terminal reaches only this process,
  which stops its children in the order it chooses (`stop`: SIGTERM, then SIGKILL after a
  timeout; to the child's whole process group when it has workers of its own).
Processes known only by their pid (a network started by another `crossroads` process) are
stopped with `stop_pid` and `kill_pid`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from crossroads.readiness import ServerCommand, read_port_file

__all__ = [
    "LOG_TAIL_LINES",
    "POLL_S",
    "STOP_TIMEOUT_S",
    "Child",
    "ChildError",
    "child_env",
    "kill",
    "kill_pid",
    "log_tail",
    "run",
    "running_server",
    "start",
    "start_server",
    "stop",
    "stop_pid",
    "wait_serving",
    "wait_until",
]

STOP_TIMEOUT_S = 15.0  # a graceful stop's ceiling before SIGKILL
POLL_S = 0.02
LOG_TAIL_LINES = 20
_ROOT = Path(__file__).resolve().parents[1]  # the checkout this code runs from


class ChildError(RuntimeError):
    """A child did not start, or exited before it was ready (the message quotes its log)."""


@dataclass(eq=False)
class Child:
    """A started child: its name, process, log and (for a server) port file and address."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    port_file: Path | None = None
    group: bool = False  # stop the whole process group (a child with workers of its own)
    address: str | None = None  # 127.0.0.1:PORT once a server wrote its port file

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> int | None:
        """The exit code, or None while it runs."""
        return self.popen.poll()

    def log_tail(self) -> str:
        return log_tail(self.log)

    def wait(self, timeout_s: float) -> bool:
        """Wait at most `timeout_s` for the child to end: whether it has."""
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
        return True


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `extra`, for a child that imports the very code this process
    runs (the checkout first on PYTHONPATH) and writes its output unbuffered."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **(extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def log_tail(log: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of a child's log, for an error message."""
    try:
        text = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:]) or "(empty log)"


def start(
    name: str,
    python_args: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    append: bool = False,
    port_file: Path | None = None,
    group: bool = False,
) -> Child:
    """Start `python PYTHON_ARGS...` (e.g. `-m MODULE ARGS`) as child `name`, its output to `log`
    (appended to with `append`, else a new log); a stale `port_file` is removed first."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if port_file is not None:
        port_file.unlink(missing_ok=True)
    with open(log, "ab" if append else "wb") as out:  # the child keeps its own copy of the descriptor
        popen = subprocess.Popen(
            [sys.executable, *python_args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(env),
            start_new_session=True,
        )
    return Child(name, popen, log, port_file, group)


def start_server(command: ServerCommand, log: Path, *, append: bool = False) -> Child:
    """Start the server `command` describes; `wait_serving` waits until it serves."""
    return start(
        command.name,
        ["-m", command.module, *command.args],
        log=log,
        env=command.env,
        append=append,
        port_file=command.port_file,
    )


def wait_until(children: Sequence[Child], ready: Callable[[Child], bool], *, deadline: float, what: str) -> None:
    """Poll until `ready(child)` for every child (checked until it holds once).

    ChildError, quoting its log, when a child exits first; ChildError naming those still
    waiting when time.monotonic() passes `deadline`. `what` says what was awaited.
    """
    waiting = list(children)
    while True:
        waiting = [c for c in waiting if not ready(c)]
        if not waiting:
            return
        for c in children:
            if (code := c.exited()) is not None:
                said = f"last lines of {c.log}:\n{c.log_tail()}"
                raise ChildError(f"{c.name} exited with code {code} before it could {what}; {said}")
        if time.monotonic() > deadline:
            raise ChildError(f"{', '.join(c.name for c in waiting)} did not {what} in time; see {waiting[0].log}")
        time.sleep(POLL_S)


def _serving(child: Child) -> bool:
    if child.address is None and child.port_file is not None:
        port = read_port_file(child.port_file)
        child.address = None if port is None else f"127.0.0.1:{port}"
    return child.address is not None


def wait_serving(children: Sequence[Child], deadline: float) -> None:
    """Wait until every server child wrote its port file (it does once serving); sets `address`."""
    wait_until(children, _serving, deadline=deadline, what="serve")


@contextlib.contextmanager
def running_server(command: ServerCommand, log: Path, timeout_s: float) -> Iterator[Child]:
    """The server of `command`, started and serving within `timeout_s`; stopped on leaving."""
    child = start_server(command, log)
    try:
        wait_serving([child], time.monotonic() + timeout_s)
        yield child
    finally:
        stop([child])


def _signal(child: Child, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        if child.group:
            os.killpg(child.pid, sig)
        else:
            child.popen.send_signal(sig)


def stop(children: Iterable[Child], timeout_s: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to each running child at once, then wait; SIGKILL to any still there after
    `timeout_s` (it ignored a graceful stop: do not leave it behind). Idempotent."""
    children = list(children)
    for c in children:
        if c.exited() is None:
            _signal(c, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for c in children:
        try:
            c.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill(c)


def kill(child: Child) -> None:
    """SIGKILL: no goodbye, nothing flushed. Returns once it is gone."""
    if child.exited() is None:
        _signal(child, signal.SIGKILL)
    child.popen.wait()


def run(
    name: str,
    python_args: Sequence[str],
    *,
    log: Path,
    timeout_s: float | None,
    env: Mapping[str, str] | None = None,
) -> tuple[int, str]:
    """Run `python PYTHON_ARGS...` to its end (killed after `timeout_s`, if given): its exit code
    and its stdout; its stderr is appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as err:
        try:
            done = subprocess.run(
                [sys.executable, *python_args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                env=child_env(env),
                timeout=timeout_s,
                check=False,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise ChildError(f"{name} did not end within {exc.timeout:g} s; see {log}") from exc
    return done.returncode, done.stdout.decode(errors="replace")


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)  # dead, not yet reaped by its parent
    except psutil.NoSuchProcess:
        return True


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_S)
    return True


def kill_pid(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGKILL a process known only by its pid; whether it was gone within `timeout_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return _wait_gone(pid, timeout_s)


def stop_pid(pid: int, timeout_s: float = STOP_TIMEOUT_S) -> bool:
    """SIGTERM a process known only by its pid, SIGKILL if it is still there after `timeout_s`;
    whether it was gone in the end."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    return _wait_gone(pid, timeout_s) or kill_pid(pid, timeout_s)
