"""One level of an open-loop staircase: its rate, length and schedule, and the record of each request.

A `Level` says what to offer: `rate` requests per second in all, for `seconds` measured after
`warmup_s` of the same load, from `processes` sender processes, each sending rate/K on a seeded
sub-schedule of its own (`schedule(k)`: a Poisson process by default, or evenly spaced). The
schedule is drawn in advance, so that every send has an intended time before anything is sent.

What happened to each request is one `RECORD`: its intended send time (seconds from the start
of the measured window; the warm-up's are negative), its latency (from the intended time to the
answer), its send lag (how late it was handed to gRPC), its gRPC status code (0 = OK, NOT_SENT
when it was never sent) and its sender process. `write_records`/`read_records` keep them as one
.npy array (numpy.load reads it anywhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from loadtests.pacing import arrival_times

__all__ = [
    "ARRIVALS",
    "CALL_TIMEOUT_S",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_WARMUP_S",
    "NOT_SENT",
    "RECORD",
    "Arrivals",
    "Level",
    "read_records",
    "write_records",
]

Arrivals = Literal["poisson", "uniform"]
ARRIVALS: tuple[Arrivals, ...] = ("poisson", "uniform")
DEFAULT_WARMUP_S = 1.0
DEFAULT_MAX_IN_FLIGHT = 10_000  # per sender: beyond, a due send is not sent (its memory is finite)
CALL_TIMEOUT_S = 10.0
NOT_SENT = -1
RECORD = np.dtype([("intended_s", "<f8"), ("latency_s", "<f8"), ("lag_s", "<f8"), ("code", "<i2"), ("process", "<i2")])


@dataclass(frozen=True, kw_only=True)
class Level:
    """One level: `rate` requests per second in all, measured for `seconds` after `warmup_s` of
    the same load (sent, not counted), from `processes` sender processes."""

    rate: float
    seconds: float
    warmup_s: float = DEFAULT_WARMUP_S
    arrivals: Arrivals = "poisson"
    processes: int = 1
    seed: int = 0
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # per sender process
    timeout_s: float = CALL_TIMEOUT_S

    def __post_init__(self) -> None:
        if not (self.rate > 0 and self.seconds > 0 and self.warmup_s >= 0 and self.timeout_s > 0):
            raise ValueError(
                f"a level needs rate > 0, seconds > 0, warm-up >= 0 and a timeout > 0: got {self.rate}/s, "
                f"{self.seconds} s, {self.warmup_s} s, {self.timeout_s} s"
            )
        if self.processes < 1 or self.max_in_flight < 1:
            raise ValueError(f"processes and max_in_flight must be >= 1, got {self.processes}, {self.max_in_flight}")
        if self.arrivals not in ARRIVALS:
            raise ValueError(f"arrivals must be one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")

    def schedule(self, k: int) -> NDArray[np.float64]:
        """Sender k's intended send times, seconds from the start of the measured window (the
        warm-up's negative), ascending; the same for the same level on any machine.

        Sender k draws from the k-th child of SeedSequence(seed); evenly spaced senders are
        offset by k/rate, so that together they send every 1/rate seconds.
        """
        if not 0 <= k < self.processes:
            raise ValueError(f"sender {k} of a level of {self.processes} sender processes")
        rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(self.processes)[k])
        share, span = self.rate / self.processes, self.warmup_s + self.seconds
        times = arrival_times(share, span, poisson=self.arrivals == "poisson", rng=rng, phase=k / self.rate)
        return times - self.warmup_s

    def intended(self) -> NDArray[np.float64]:
        """Every sender's intended send times together (`schedule(k)` for each k), ascending:
        the level's whole offered load, e.g. for a model to be offered the same."""
        return np.sort(np.concatenate([self.schedule(k) for k in range(self.processes)]))

    def argv(self) -> list[str]:
        """This level as command-line options of `python -m loadtests.loadgen`."""
        return [
            *("--rate", repr(self.rate), "--seconds", repr(self.seconds), "--warmup", repr(self.warmup_s)),
            *("--arrivals", self.arrivals, "--processes", str(self.processes), "--seed", str(self.seed)),
            *("--max-in-flight", str(self.max_in_flight), "--timeout", repr(self.timeout_s)),
        ]


def write_records(path: Path, records: NDArray[np.void]) -> None:
    """Write `records` (RECORD) to `path` as one .npy array."""
    with path.open("wb") as out:
        np.save(out, records, allow_pickle=False)


def read_records(path: Path) -> NDArray[np.void]:
    """The records `write_records` wrote to `path`; ValueError if it holds something else."""
    records: NDArray[np.void] = np.load(path, allow_pickle=False)
    if records.dtype != RECORD:
        raise ValueError(f"{path} holds no load generator records: dtype {records.dtype}")
    return records
