"""CPU per process and per thread from /proc: a child with one busy and one idle thread reads as such.

Behaviour, not speed: the busy thread must show clearly more CPU than the idle one (which sleeps
and so shows none) over a window, however loaded the machine is.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from crossroads.thread_names import name_native_thread, name_native_threads, native_name
from loadtests.cpu import EXITED, MAIN_THREAD, cpu_seconds, snapshot, usage
from testbed import processes

CHILD = """
import threading, time
from crossroads.thread_names import name_native_thread

def spin():
    name_native_thread("spinner")
    while True:
        pass

def idle():
    name_native_thread("idler")
    time.sleep(600)

for target in (spin, idle):
    threading.Thread(target=target, daemon=True).start()
time.sleep(600)
"""
WINDOW_S = 1.0


def _threads_named(pid: int) -> set[str]:
    times = snapshot({"child": pid}).processes["child"]
    return set() if times is None else {t.name for t in times.threads}


def test_a_busy_thread_and_an_idle_one_read_as_such(tmp_path: Path) -> None:
    child = processes.start("cpu-child", ["-c", CHILD], log=tmp_path / "child.log")
    try:
        processes.wait_until(
            [child], lambda c: {"spinner", "idler"} <= _threads_named(c.pid), deadline=time.monotonic() + 30,
            what="name its threads",
        )  # fmt: skip
        before = snapshot({"child": child.pid, "me": os.getpid()})
        time.sleep(WINDOW_S)
        after = snapshot({"child": child.pid, "me": os.getpid()})
    finally:
        processes.stop([child])
    spent = usage(before, after)["child"]
    assert spent is not None
    print(f"\n{spent.as_dict()}")
    busy, idle, main = spent.threads["spinner"], spent.threads["idler"], spent.threads[MAIN_THREAD]
    assert busy.threads == idle.threads == main.threads == 1
    assert busy.cpu_s >= 0.1 and busy.utilisation > 0.1  # it ran, whatever else the machine was doing
    assert idle.cpu_s <= 0.02 and main.cpu_s <= 0.02  # asleep: at most a tick or two
    assert busy.cpu_s > 5 * (idle.cpu_s + 0.01)
    assert spent.cpu_s == pytest.approx(sum(t.cpu_s for t in spent.threads.values()), abs=0.05)
    assert spent.utilisation == pytest.approx(spent.cpu_s / (after.at - before.at))
    # once gone, a process has no usage, and a snapshot says so rather than failing
    assert snapshot({"child": child.pid}).processes["child"] is None
    assert usage(before, snapshot({"child": child.pid}))["child"] is None


def test_threads_that_ended_in_the_window_are_counted_apart() -> None:
    before = snapshot({"me": os.getpid()})

    def burn() -> None:
        end = time.process_time() + 0.3
        while time.process_time() < end:
            pass

    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
    gone = Path(f"/proc/self/task/{worker.native_id}")
    while gone.exists():  # join() returns a moment before the kernel thread is gone
        time.sleep(0.01)
    after = snapshot({"me": os.getpid()})
    spent = usage(before, after)["me"]
    assert spent is not None and spent.threads[EXITED].cpu_s >= 0.2


def test_a_process_total_is_read_from_proc() -> None:
    assert cpu_seconds(os.getpid()) > 0
    with pytest.raises(OSError):
        cpu_seconds(2**22 + 1)  # above pid_max


def test_python_threads_get_kernel_names() -> None:
    stop = threading.Event()
    workers = [threading.Thread(target=stop.wait, name=n) for n in ("audit-writer", "Thread-9 (_poll_wrapper)")]
    for w in workers:
        w.start()
    try:
        assert native_name(workers[1]) == "grpc-poller"
        named = name_native_threads()
        comms = {w.name: Path(f"/proc/self/task/{w.native_id}/comm").read_text().strip() for w in workers}
    finally:
        stop.set()
        for w in workers:
            w.join()
    assert comms == {"audit-writer": "audit-writer", "Thread-9 (_poll_wrapper)": "grpc-poller"}
    assert threading.get_native_id() not in named  # the main thread keeps the process's name
    assert native_name(threading.Thread(name="a-very-long-thread-name")) == "a-very-long-thr"
    done = []
    namer = threading.Thread(target=lambda: done.append(name_native_thread("x" * 40)))
    namer.start()
    namer.join()
    assert done == [True]
