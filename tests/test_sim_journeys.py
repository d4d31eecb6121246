"""Journeys: a route compiled into stops and draws, every draw of a message made when it is created.

A small explicit network (three stations, a lossy link) with one route fanning out into two
deliveries: its itinerary lays the stops out as courier.py walks them, and a batch's draws
have the distributions the scenario gives, from a stream that makes them the same every time.
"""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import numpy as np
import pytest
import simpy

from network.booked import BookedStation
from network.explicit import plan_explicit
from network.itineraries import Crossing, FanOut, Itineraries, Parts, Terminal
from network.journeys import LOST_BY_CHANCE, draw_journeys
from network.link import Link
from network.model import run_replication
from network.plan import NO_LINK, Plan, Route
from network.sampling import Distributions
from scenarios.schema import parse_scenario

NETWORK: dict[str, Any] = {
    "name": "journeys",
    "seed": 1,
    "replications": 1,
    "warmup": 10,
    "duration": 100,
    "network": {
        "model": "explicit",
        "stations": {
            "entry": {"servers": 2, "time": {"dist": "exponential", "mean": 2.0}},
            "core": {"servers": 4, "time": {"dist": "lognormal", "mean": 0.5, "cv": 0.5}},
            "fund": {"servers": 1, "time": {"dist": "uniform", "low": 1.0, "high": 3.0}},
        },
        "links": [
            {"from": "entry", "to": "core", "latency": {"dist": "deterministic", "value": 0.25}},
            {"from": "core", "to": "fund", "loss": 0.3, "latency": {"dist": "deterministic", "value": 0.5}},
        ],
    },
    "traffic": [{"name": "in", "kind": "DIMONA", "rate": 1.0, "path": ["entry", "core"]}],
}
ENTRY, CORE, FUND = 0, 1, 2
TO_CORE, TO_FUND = 0, 1


def _itineraries() -> tuple[Plan, Itineraries]:
    plan = plan_explicit(parse_scenario(NETWORK, "journeys.yaml"))
    # the decision is taken at the core: one delivery to the fund, one back to the entry
    route = Route(
        submit=((NO_LINK, ENTRY), (TO_CORE, CORE)),
        deliveries=(((NO_LINK, CORE), (TO_FUND, FUND)), ((NO_LINK, CORE), (TO_CORE, -1 - ENTRY))),
        groups=(FUND, ENTRY),
    )
    plan = dataclasses.replace(plan, sources=(dataclasses.replace(plan.sources[0], routes=(route,)),))
    env = simpy.Environment()
    stations = [BookedStation(env, sp) for sp in plan.stations]
    parts = Parts(
        stations=stations,
        times=[sp.times for sp in plan.stations],
        links=[Link(lp) for lp in plan.links],
        latencies=[lp.spec.latency for lp in plan.links],
        kinds=len(plan.kinds),
        distributions=Distributions(),
    )
    return plan, Itineraries(0, plan.sources[0], parts)


def test_an_itinerary_lays_out_gaps_and_stops_leg_by_leg() -> None:
    _, itineraries = _itineraries()
    (i,) = itineraries.ids(np.array([0]), np.array([0])).tolist()
    stops = itineraries.stops[i]
    entry, core, fund = itineraries.parts.stations
    fan = stops[5]
    assert isinstance(fan, FanOut) and fan.deliveries == 2 and fan.functional
    assert stops[:5] == (None, entry, None, core, None)
    first, second = fan.starts
    assert first == 6 and isinstance(stops[first + 1], Crossing)  # the lossy link is crossed as a stop
    assert stops[first + 3] is fund and isinstance(stops[first + 5], Terminal)
    assert stops[second] is None and isinstance(stops[second + 1], Terminal)  # back to the entry, unserved
    ends = stops[first + 5], stops[second + 1]
    assert [e.group for e in ends if isinstance(e, Terminal)] == [FUND, ENTRY]
    assert len(stops) == second + 3  # and the creation time's place
    assert all(s is None for s in stops[0::2][:-1])  # gaps at even positions


def test_a_batch_draws_each_message_its_own_times_from_the_scenarios_distributions() -> None:
    _, itineraries = _itineraries()
    n = 20_000
    ids = itineraries.ids(np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64))
    created = np.arange(n, dtype=float)
    draws, begins, ends = draw_journeys(itineraries, ids, created, np.random.default_rng(3))
    rows = np.array([draws[b:e] for b, e in zip(begins, ends, strict=True)])
    fan = itineraries.stops[int(ids[0])][5]
    assert isinstance(fan, FanOut)
    first, second = fan.starts
    assert rows[:, 0].tolist() == [0.0] * n  # no link before the entry
    assert rows[:, 1].mean() == pytest.approx(2.0, rel=0.03)  # entry: exponential
    assert rows[:, 2].tolist() == [0.25] * n  # the plain link, deterministic
    assert rows[:, 3].mean() == pytest.approx(0.5, rel=0.02)  # core: lognormal ...
    assert rows[:, 3].std() / rows[:, 3].mean() == pytest.approx(0.5, rel=0.05)
    crossing = rows[:, first + 1]
    assert np.mean(crossing == LOST_BY_CHANCE) == pytest.approx(0.3, abs=0.015)  # the lossy link
    assert set(crossing[crossing != LOST_BY_CHANCE].tolist()) == {0.5}
    assert rows[:, first + 3].min() >= 1.0 and rows[:, first + 3].max() <= 3.0  # fund: uniform
    assert rows[:, second].tolist() == [0.25] * n
    assert rows[:, -1].tolist() == created.tolist()
    again, _, _ = draw_journeys(itineraries, ids, created, np.random.default_rng(3))
    assert np.array_equal(again, draws)


def test_a_replication_leaves_the_garbage_collector_as_it_found_it() -> None:
    plan = plan_explicit(parse_scenario(NETWORK, "journeys.yaml"))
    assert gc.isenabled()
    run_replication(plan, 0)
    assert gc.isenabled()
    gc.disable()
    try:
        run_replication(plan, 0)
        assert not gc.isenabled()
    finally:
        gc.enable()
