"""The progress bar of a run: simulated time done over every replication and slice, the simulated
clock of each one under way, and the messages simulated per wall-clock second."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

from tqdm import tqdm

from network.plan import Plan

__all__ = ["Meter"]


class Meter:
    """Tracks tasks (a replication, or one slice of it) that each simulate [begin, end) of `plan`'s time.

    `bar` counts simulated seconds, summed over the tasks; its postfix shows the clock (the
    calendar time) of each task under way and the messages per second of all of them together.
    """

    def __init__(self, plan: Plan, spans: Sequence[tuple[float, float]], bar: tqdm) -> None:  # type: ignore[type-arg]
        self.plan, self.spans, self.bar = plan, spans, bar
        self.done = [0.0] * len(spans)
        self.messages = [0] * len(spans)
        self.finished = [False] * len(spans)
        self.started = time.perf_counter()

    @staticmethod
    def total(spans: Sequence[tuple[float, float]]) -> float:
        return sum(end - begin for begin, end in spans)

    def update(self, task: int, done: float, messages: int) -> None:
        """Task `task` has simulated `done` seconds from its begin and `messages` messages."""
        begin, end = self.spans[task]
        self.done[task] = min(done, end - begin)
        self.messages[task] = messages
        self._show()

    def finish(self, task: int, messages: int) -> None:
        begin, end = self.spans[task]
        self.finished[task] = True
        self.update(task, end - begin, messages)

    def _clock(self, task: int) -> str:
        t = self.spans[task][0] + self.done[task] - self.plan.warmup
        return (self.plan.start + dt.timedelta(seconds=t)).strftime("%a %H:%M")

    def _show(self) -> None:
        running = [i for i, f in enumerate(self.finished) if not f and self.done[i] > 0]
        wall = max(time.perf_counter() - self.started, 1e-9)
        postfix = {"clock": " | ".join(self._clock(i) for i in running) or "-"}
        postfix["msg/s"] = f"{sum(self.messages) / wall:,.0f}"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(round(sum(self.done)) - self.bar.n)
