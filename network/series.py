"""Per-interval series of the stations: mean queue length and utilisation, interval by interval.

Taken from the stations' own time-integrals at each interval boundary, so they are exact
time-averages. Stations marked `tracked` in the plan keep their own series; every station also
adds to the totals of its node class (the thousands of agency sites are seen as a class).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from network.booked import BookedStation
from network.plan import Plan
from network.station import Station

__all__ = ["Snapshots"]


class Snapshots:
    def __init__(self, plan: Plan, stations: Sequence[BookedStation | Station]) -> None:
        self.stations = stations
        self.tracked = np.array([i for i, sp in enumerate(plan.stations) if sp.tracked], dtype=np.int64)
        self.class_names = tuple(dict.fromkeys(sp.node_class for sp in plan.stations))
        index = {name: i for i, name in enumerate(self.class_names)}
        self.class_of = np.array([index[sp.node_class] for sp in plan.stations], dtype=np.int64)
        self._prev = np.zeros((3, len(stations)))
        self._t_prev = 0.0
        self._rows: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def _areas(self) -> np.ndarray:
        for s in self.stations:
            s.account()
        return np.array(
            [
                [s.area_queue for s in self.stations],
                [s.busy_time for s in self.stations],
                [s.area_capacity for s in self.stations],
            ]
        )

    def start(self, now: float) -> None:
        self._prev = self._areas()
        self._t_prev = now

    def take(self, now: float) -> None:
        """Close the interval ending at `now`."""
        areas = self._areas()
        dq, dbusy, dcap = areas - self._prev
        span = max(now - self._t_prev, 1e-12)
        self._prev, self._t_prev = areas, now
        n = len(self.class_names)
        cq = np.bincount(self.class_of, weights=dq, minlength=n)
        cb = np.bincount(self.class_of, weights=dbusy, minlength=n)
        cc = np.bincount(self.class_of, weights=dcap, minlength=n)
        t = self.tracked
        self._rows.append((dq[t] / span, _ratio(dbusy[t], dcap[t]), cq / span, _ratio(cb, cc)))

    def _column(self, i: int, width: int) -> np.ndarray:
        return np.array([row[i] for row in self._rows]) if self._rows else np.zeros((0, width))

    def queue(self) -> np.ndarray:
        return self._column(0, len(self.tracked))

    def utilisation(self) -> np.ndarray:
        return self._column(1, len(self.tracked))

    def class_queue(self) -> np.ndarray:
        return self._column(2, len(self.class_names))

    def class_utilisation(self) -> np.ndarray:
        return self._column(3, len(self.class_names))


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.divide(a, b, out=np.zeros_like(a), where=b > 0)
    return out
