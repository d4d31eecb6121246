"""The machine's speed of the moment, read by timing a fixed piece of work on a thread's own CPU clock.

Why: this machine is a VM on a shared host, and how fast its cores run our code moves by tens of
percent within minutes, with no stolen time to show for it (the hypervisor did not take the core:
a neighbour shares its caches, memory bandwidth or hyper-threaded sibling). Measured 2026-12-07,
16 levels on one live network alternating 350/s and 210/s: the probe's median
work took 0.71-1.23 ms over the levels, and the levels' mean latency followed it (at 350/s: 6.7 ms
where the probe took 0.75 ms, 8.6-10.7 ms where it took 1.05-1.22 ms; at 210/s 4.9 ms against
6.5-8.4 ms), as did the core's CPU per request (1,760 us at 210/s where the probe was fastest,
1,942-2,172 us elsewhere). The testbed's own CPU per request is no index of the machine (it moves
with the load), the probe's work is: the same work every time.

What it is not: a speed index of the testbed's own CPU. A model whose every CPU demand was scaled by
the probe's time now over its time while calibrating (the validation's "model at the machine's
speed", 2026-12-07) predicted far worse than the model as calibrated (one `bench model` run: worst
mean error 236 % against 57 %, core CPU 28.9 points against 6.1): over that run's 39 rounds the
core's CPU per request moved by 0.12 of the probe's change (log against log, r = 0.53) and the
mean latency by 0.55 (r = 0.60). So the probe is read and shown beside each level's rounds (with
what the hypervisor took), not fed to the model.

A `SpeedProbe` (a context manager, a thread of the process that runs it) does `WORK` every
`every_s` and records the CPU time it took, by `time.thread_time`: time the thread waited for a
core is not counted, only how fast the core ran it once it had it. It costs ~1 ms of one core a
tenth of a second (~1 % of one core). `between(start, end)` gives the median over a window (None
with fewer than MIN_SAMPLES in it): a load level's, as machine.Sampler gives its shares.
"""

from __future__ import annotations

import bisect
import hashlib
import statistics
import threading
import time

__all__ = ["MIN_SAMPLES", "SpeedProbe", "work"]

MIN_SAMPLES = 10  # fewer samples in a window than this: no speed for it
_KEYS = [str(i) * 3 for i in range(400)]


def work() -> int:
    """The fixed piece of work: hash, map and sort 400 short strings, three times (~1 ms here)."""
    size = 0
    for _ in range(3):
        digests = {key: hashlib.sha256(key.encode()).hexdigest() for key in _KEYS}
        size += len("".join(sorted(digests.values())))
    return size


class SpeedProbe:
    """`work()` timed every `every_s` by a thread of its own, from entering to leaving (a context
    manager); `between(start, end)` afterwards."""

    def __init__(self, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self._at: list[float] = []  # UNIX time each work ended
        self._ms: list[float] = []  # its thread CPU time, ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="speed-probe", daemon=True)

    def __enter__(self) -> SpeedProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            before = time.thread_time()
            work()
            took = time.thread_time() - before
            self._ms.append(took * 1000)
            self._at.append(time.time())

    def between(self, start: float, end: float) -> float | None:
        """The median CPU time of the work, ms, over the samples ended within [`start`, `end`]
        (UNIX times); None when fewer than MIN_SAMPLES."""
        at, ms = list(self._at), list(self._ms)
        window = ms[bisect.bisect_left(at, start) : bisect.bisect_right(at, end)]
        return round(statistics.median(window), 4) if len(window) >= MIN_SAMPLES else None
