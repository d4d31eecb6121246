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

__all__ = ["Snapshots", "utilisation"]


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
        self._rows.append((dq[t] / span, utilisation(dbusy[t], dcap[t]), cq / span, utilisation(cb, cc)))

    def _column(self, i: int, width: int) -> np.ndarray:
        return np.array([row[i] for row in self._rows]) if self._rows else np.zeros((0, width))

    def series(self) -> dict[str, np.ndarray]:
        """The series of the intervals closed so far, [interval, tracked station] and [interval,
        node class], named as ReplicationResult's fields."""
        tracked, classes = len(self.tracked), len(self.class_names)
        return {
            "series_queue": self._column(0, tracked),
            "series_utilisation": self._column(1, tracked),
            "series_class_queue": self._column(2, classes),
            "series_class_utilisation": self._column(3, classes),
        }


def utilisation(busy: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """busy / capacity element by element (server seconds used over server seconds available); 0
    where there was no capacity."""
    out: np.ndarray = np.divide(busy, capacity, out=np.zeros_like(busy), where=capacity > 0)
    return out
