"""The one owner of child processes (testbed.processes) and the servers' readiness contract
(crossroads.readiness): port files, start, wait, stop, kill, the parent's death."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil
import pytest

from crossroads.pki import CORE, NetworkPki
from crossroads.readiness import read_port_file, write_port_file
from testbed import processes, proxy
from testbed.processes import ChildError

TIMEOUT_S = 60.0


def test_a_port_file_is_read_whole_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "x.port"
    assert read_port_file(path) is None
    path.write_text("")  # as a reader could see a file being written in place: never a port
    assert read_port_file(path) is None
    write_port_file(path, 43210)
    assert read_port_file(path) == 43210
    assert [p.name for p in tmp_path.iterdir()] == ["x.port"]  # no temporary file left behind


def test_child_env_puts_this_checkout_first() -> None:
    env = processes.child_env({"EXTRA": "1"})
    root = str(Path(processes.__file__).resolve().parents[1])
    assert env["PYTHONPATH"].split(os.pathsep)[0] == root
    assert env["EXTRA"] == "1" and env["PYTHONUNBUFFERED"] == "1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki") / "pki"
    NetworkPki.open(folder).issue_many([CORE])
    return folder


def test_a_server_is_started_waited_for_and_stopped_gracefully(pki: Path, tmp_path: Path) -> None:
    command = proxy.command(pki, "127.0.0.1:9", tmp_path / "proxy.port")  # upstream never dialled here
    child = processes.start_server(command, tmp_path / "proxy.log")
    processes.wait_serving([child], time.monotonic() + TIMEOUT_S)
    assert child.address == f"127.0.0.1:{read_port_file(tmp_path / 'proxy.port')}"
    processes.stop([child])
    assert child.exited() == 0  # SIGTERM: a graceful stop, not a kill


def test_a_server_that_dies_at_start_up_is_quoted(tmp_path: Path) -> None:
    command = proxy.command(tmp_path / "no-pki", "127.0.0.1:9", tmp_path / "proxy.port")
    child = processes.start_server(command, tmp_path / "proxy.log")
    with pytest.raises(ChildError, match=r"proxy exited with code [1-9]\d* before it could serve") as caught:
        processes.wait_serving([child], time.monotonic() + TIMEOUT_S)
    assert "bring the network up first" in str(caught.value)  # the tail of its log


def test_a_server_outlives_no_parent(pki: Path, tmp_path: Path) -> None:
    """A server started with --exit-with-parent stops by itself when its starter is SIGKILLed."""
    port_file = tmp_path / "proxy.port"
    starter = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from testbed import processes, proxy\n"
        "command = proxy.command(Path(sys.argv[1]), '127.0.0.1:9', Path(sys.argv[2]))\n"
        "child = processes.start_server(command, Path(sys.argv[3]))\n"
        "processes.wait_serving([child], time.monotonic() + 60)\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = processes.start("starter", ["-c", starter, str(pki), str(port_file), str(tmp_path / "proxy.log")],
                             log=tmp_path / "starter.log")  # fmt: skip
    try:
        server = _printed_pid(parent)
        processes.kill(parent)
        deadline = time.monotonic() + 30
        while psutil.pid_exists(server) and psutil.Process(server).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the server outlived its starter"
            time.sleep(0.1)
    finally:
        processes.kill(parent)


def _pid_in(log: Path) -> int:
    text = log.read_text().strip() if log.exists() else ""
    return int(text) if text.isdigit() else 0


def _printed_pid(child: processes.Child) -> int:
    """The pid the child prints first (to its log), once it has."""
    processes.wait_until([child], lambda c: bool(_pid_in(c.log)), deadline=time.monotonic() + TIMEOUT_S, what="start")
    return _pid_in(child.log)


def test_stop_reaches_the_whole_group_and_kills_what_ignores_it(tmp_path: Path) -> None:
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    child = processes.start("stubborn", ["-c", stubborn], log=tmp_path / "s.log", group=True)
    worker = _printed_pid(child)
    processes.stop([child], timeout_s=0.5)
    assert child.exited() == -signal.SIGKILL  # it ignored SIGTERM
    assert processes.kill_pid(worker, 10.0)  # gone already: the group's SIGTERM reached the worker


def test_run_returns_the_code_and_stdout_and_logs_stderr(tmp_path: Path) -> None:
    code, out = processes.run("echo", ["-c", "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"],
                              log=tmp_path / "run.log", timeout_s=TIMEOUT_S)  # fmt: skip
    assert (code, out.strip(), (tmp_path / "run.log").read_text().strip()) == (3, "out", "err")
    with pytest.raises(ChildError, match=r"did not end within 0\.5 s"):
        processes.run("sleeper", ["-c", "import time; time.sleep(60)"], log=tmp_path / "run.log", timeout_s=0.5)


def test_processes_known_by_pid_only_are_stopped(tmp_path: Path) -> None:
    graceful = processes.start("a", ["-c", "import time; time.sleep(600)"], log=tmp_path / "a.log")
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(600)"
    stubborn = processes.start("b", ["-c", ignore], log=tmp_path / "b.log")
    _printed_pid(stubborn)  # its SIGTERM handler is set
    assert processes.stop_pid(graceful.pid, 10.0) and graceful.popen.wait(5) == -signal.SIGTERM
    assert processes.stop_pid(stubborn.pid, 0.5) and stubborn.popen.wait(5) == -signal.SIGKILL
