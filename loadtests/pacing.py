"""Open-loop pacing: each user sends on a schedule of its own, whether or not answers are back.

A closed loop (send, wait for the answer, send again) slows down with the system under test
and so hides overload: the rate drops instead of the latency rising. Here every send has a due
time drawn in advance at the target rate (a Poisson process, or evenly spaced); a user that is
still waiting for an answer when the next send is due sends it late, and the latency Locust
sees is counted from the due time, so the wait behind a slow answer is part of it (the
correction for "coordinated omission"). A send more than `max_lag` seconds late is not sent at
all and counts as an error: the users cannot keep the rate, which is what overload looks like.

`arrival_times` draws a whole schedule at once, for a generator that knows its rate and length
in advance (loadtests.openloop).

Pure timing arithmetic: the clock is passed in, the random stream is the user's own.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["OpenLoop", "Send", "arrival_times"]


@dataclass(frozen=True, slots=True)
class Send:
    """What to do for the next send: wait until `due` (if in the future), or drop it if `dropped`."""

    due: float
    dropped: bool


class OpenLoop:
    """The send schedule of one user. `next(now, rate)` gives the due time of its next send.

    `rate` is this user's share of the target (requests per second); None means closed loop:
    send now, and the schedule starts afresh when a rate is set again.
    """

    def __init__(self, rng: np.random.Generator, *, poisson: bool, max_lag: float) -> None:
        self._rng = rng
        self._poisson = poisson
        self._max_lag = max_lag
        self._due: float | None = None  # the due time of the previous send

    def _gap(self, rate: float) -> float:
        return float(self._rng.exponential(1.0 / rate)) if self._poisson else 1.0 / rate

    def next(self, now: float, rate: float | None) -> Send:
        """The next send: its due time, and whether it is already too late to send."""
        if rate is None or rate <= 0:
            self._due = None
            return Send(now, dropped=False)
        if self._due is None:
            # a random phase, so that users started together do not send together
            self._due = now + float(self._rng.uniform(0.0, 1.0 / rate)) if not self._poisson else now + self._gap(rate)
        else:
            self._due += self._gap(rate)
        return Send(self._due, dropped=now - self._due > self._max_lag)


def arrival_times(
    rate: float, seconds: float, *, poisson: bool, rng: np.random.Generator, phase: float = 0.0
) -> NDArray[np.float64]:
    """The send times (seconds from 0, ascending, all in [0, seconds)) of `rate` sends per second.

    Poisson (`rng` draws it): the count is Poisson(rate * seconds) and, given the count, the
    times are independent and uniform over the span, which is a Poisson process exactly; K
    such schedules of rate R/K together are a Poisson process of rate R. Evenly spaced: every
    1/rate seconds from `phase` (0 <= phase < 1/rate; `rng` is not used), so K schedules of
    rate R/K with phases k/R together are evenly spaced at rate R.
    ValueError for a rate or length <= 0, or a phase outside its interval.
    """
    if rate <= 0 or seconds <= 0:
        raise ValueError(f"a schedule needs a rate and a length > 0, got {rate}/s for {seconds} s")
    if poisson:
        return np.sort(rng.uniform(0.0, seconds, int(rng.poisson(rate * seconds))))
    if not 0 <= phase < 1 / rate:
        raise ValueError(f"the phase of an even schedule is in [0, 1/rate), got {phase} at {rate}/s")
    times: NDArray[np.float64] = phase + np.arange(int(np.ceil((seconds - phase) * rate))) / rate
    return times[times < seconds]
