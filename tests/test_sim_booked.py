"""A booked station (its timetable worked out on arrival) measures what the event-driven one does.

One M/M/2 station with nothing else in the network: the same arrivals and the same services in
the same order, so the two kinds of station must give the same latencies and the same figures
(up to the order deliveries are recorded in, and floating-point sums are taken in). The
station is made event-driven by a capacity change to the servers it has anyway (a station that
can change is event-driven).
"""

from __future__ import annotations

import copy
import io
from typing import Any

import numpy as np
import pytest
import simpy
from tqdm import tqdm

from network.booked import LOST, BookedStation
from network.explicit import plan_explicit
from network.meter import Meter
from network.model import run_replication
from network.plan import StationPlan
from scenarios.schema import Deterministic, parse_scenario

MM2: dict[str, Any] = {
    "name": "mm2",
    "seed": 3,
    "replications": 1,
    "warmup": 200,
    "duration": 3000,
    "interval": 500,
    "network": {
        "model": "explicit",
        "stations": {"s": {"servers": 2, "queue_limit": 40, "time": {"dist": "exponential", "mean": 1.0}}},
    },
    "traffic": [{"name": "in", "kind": "CONSULTATION", "rate": 1.9, "path": ["s"]}],
}


def test_booked_and_event_driven_stations_measure_the_same() -> None:
    booked = run_replication(plan_explicit(parse_scenario(MM2, "mm2.yaml")), 0)
    data = copy.deepcopy(MM2)
    data["events"] = [{"at": -200, "action": "capacity", "node": "s", "servers": 2}]
    driven = run_replication(plan_explicit(parse_scenario(data, "mm2.yaml")), 0)
    assert booked.lost_reasons["queue_full"] > 0  # the line was full at times: its limit is tested too
    # the booked station records a delivery when it works out its time: in arrival order
    assert np.array_equal(np.sort(booked.latencies[0]), np.sort(driven.latencies[0]))
    assert booked.lost_reasons == driven.lost_reasons
    for name in ("station_served", "station_lost", "station_max_queue", "series_done"):
        assert np.array_equal(getattr(booked, name), getattr(driven, name)), name
    for name in ("station_utilisation", "station_queue", "series_queue", "series_utilisation"):
        assert getattr(booked, name) == pytest.approx(getattr(driven, name), rel=1e-9, abs=1e-12), name


def test_a_booked_line_is_first_come_first_served() -> None:
    env = simpy.Environment()
    plan = StationPlan(name="s", node_class="x", servers=2, times=(Deterministic(value=3.0),), queue_limit=1)
    station = BookedStation(env, plan)
    ends = [station.book(0.0, 3.0) for _ in range(4)]
    assert ends == [3.0, 3.0, 6.0, LOST]  # two servers, a line of one, the fourth turned away
    env.run(until=4.0)
    station.account()
    assert station.served == 2 and station.max_queue == 1
    assert station.area_queue == pytest.approx(3.0)  # one waiting from 0 to 3
    assert station.busy_time == pytest.approx(9.0)  # credited as each service starts


def test_the_meter_shows_the_clock_and_the_messages_per_second() -> None:
    plan = plan_explicit(parse_scenario(MM2, "mm2.yaml"))
    out = io.StringIO()
    with tqdm(total=6400, file=out, mininterval=0) as bar:
        meter = Meter(plan, [(0.0, 3200.0), (1000.0, 4200.0)], bar)
        meter.update(0, 1800.0, 5000)
        meter.update(1, 200.0, 1000)
        bar.refresh()
        assert bar.n == 2000
        shown = out.getvalue()
        assert "clock=" in shown and "msg/s=" in shown and " | " in shown  # a clock per slice under way
        meter.finish(0, 6000)
        assert bar.n == 3400
