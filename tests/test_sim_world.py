"""The world network: built from the synthetic world, routed by the core's own decision, calibrated.

- every simulated message's destinations are route()'s, and route() on the inputs the live core
  loads (knowledge through its JSON file, the person part through its SQLite directory) decides
  exactly the same for the same world;
- the graph: every member of a secondary network hangs under its hub, every path passes the core;
- calibration: baseline_2023 gives ~1.81 billion functional messages a year and baseline_2007
  ~23 million employer declarations (both within 5%).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agencies.spec import WorldSpec
from agencies.world import World
from crossroads.directory import DirectoryStore
from crossroads.domain import Kind
from crossroads.knowledge_io import dump_knowledge, load_knowledge
from crossroads.routing import Decision, Routed, route
from network.graph import AUTHENTICATION, CORE
from network.plan import passing
from network.replications import run_replications
from network.run import load
from network.summary import summarise
from network.world_plan import WorldPlanner, plan_world
from scenarios.schema import Scenario, Seconds

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def _small(name: str, pool: int = 300) -> Scenario[WorldSpec]:
    scenario = load(SCENARIOS / f"{name}.yaml")
    assert scenario.world is not None
    return dataclasses.replace(
        scenario, world=dataclasses.replace(scenario.world, persons=20_000, employers=400), pool=pool
    )


@pytest.fixture(scope="module")
def planner() -> WorldPlanner:
    scenario = _small("baseline_2023")
    assert scenario.world is not None
    return WorldPlanner(scenario, World.build(scenario.world))


def _key(decision: Decision) -> Any:
    """A decision with its destinations as a set: their order carries no meaning."""
    if isinstance(decision, Routed):
        return (
            "routed",
            frozenset(decision.destinations),
            frozenset(decision.deliberations),
            decision.directory_change,
        )
    return (type(decision).__name__, decision.rule)


def test_routing_in_simulation_equals_the_live_cores(planner: WorldPlanner, tmp_path: Path) -> None:
    world = planner.world
    dump_knowledge(world.knowledge, tmp_path / "knowledge.json")
    knowledge = load_knowledge(tmp_path / "knowledge.json")
    store = DirectoryStore.create(tmp_path / "directory.sqlite")
    try:
        for rows in world.iter_directory_rows():
            store.bulk_load(rows)
        checked = 0
        for i in range(len(planner.scenario.traffic)):
            for drawn, decision in planner.decided(i):
                assert decision == route(drawn.request, world.knowledge, drawn.files)
                live_files = store.files_of_many(list(drawn.request.subjects))
                assert _key(route(drawn.request, knowledge, live_files)) == _key(decision), drawn.request
                checked += 1
    finally:
        store.close()
    assert checked == 300 * len(planner.scenario.traffic)


def test_routes_follow_the_decisions(planner: WorldPlanner) -> None:
    net = planner.net
    names = {i: n for n, i in planner.index.items()}

    def name(code: int) -> str:  # a station, served there or passed
        return names[code if code >= 0 else passing(code)]

    for i, src in enumerate(planner.scenario.traffic):
        for drawn, decision in planner.decided(i)[:100]:
            start = AUTHENTICATION if src.auth else drawn.request.sender
            r = planner.to_route(drawn, decision, start)
            assert name(r.submit[0][1]) == start and name(r.submit[-1][1]) == CORE
            # only access points and FAS serve what their own users send
            assert (r.submit[0][1] >= 0) == (
                net.node_class(start) in ("portal", "batch", "secretariat", "authentication")
            )
            if isinstance(decision, Routed) and decision.destinations:
                ends = [p[-1][1] for p in r.deliveries]
                wanted = [d.agency for d in decision.destinations]
                if drawn.request.kind is Kind.CONSULTATION:  # the answer travels back to the sender
                    assert [name(e) for e in ends] == [drawn.request.sender] * len(wanted)
                    assert [
                        name(p[len(net.from_core(a)) - 1][1]) for p, a in zip(r.deliveries, wanted, strict=True)
                    ] == wanted
                else:
                    assert [name(e) for e in ends] == wanted
                assert r.functional
            elif not isinstance(decision, Routed):
                assert not r.functional and name(r.deliveries[0][-1][1]) == drawn.request.sender


def test_every_source_is_mostly_routed_and_citizens_are_refused_until_a_deliberation_exists(
    planner: WorldPlanner,
) -> None:
    routed = total = 0
    for src, routes in zip(planner.scenario.traffic, planner.pools(), strict=True):
        ok = sum(r.functional for r in routes)
        if src.senders.get("portal") and src.kind == "CONSULTATION":
            continue  # depends on a deliberation for the portal (see the sim report)
        # in this small world many local bodies have nobody in their files: their requests are refused
        assert ok / len(routes) > 0.4, src.name
        routed, total = routed + ok, total + len(routes)
    assert routed / total > 0.8


def test_the_graph_is_a_star_of_stars(planner: WorldPlanner) -> None:
    net = planner.net
    for agency in planner.world.agencies:
        path = net.from_core(agency.id)
        if agency.hub is not None:
            assert path == (CORE, agency.hub, agency.id)
        else:
            assert path == (CORE, agency.id)
    assert net.to_core(AUTHENTICATION) == (AUTHENTICATION, "PORTAL", CORE)
    assert net.node_class("CIN") == "hub" and net.node_class("SSA-0001") == "secretariat"
    assert len(net.graph.edges) == len(net.graph.nodes) - 1


def test_plans_are_deterministic(planner: WorldPlanner) -> None:
    a = plan_world(planner.scenario, planner.world)
    b = plan_world(planner.scenario, planner.world)
    assert a == b


def _year_totals(name: str) -> dict[str, Any]:
    scenario = load(SCENARIOS / f"{name}.yaml")
    scenario = dataclasses.replace(scenario, duration=Seconds(600.0), warmup=Seconds(60.0), replications=2)
    assert scenario.world is not None
    plan = plan_world(scenario, World.build(scenario.world))
    return summarise(plan, run_replications(plan))


def test_baseline_2023_gives_the_functional_messages_of_2023() -> None:
    per_year = _year_totals("baseline_2023")["functional_messages_per_year"]["mean"]
    assert per_year == pytest.approx(1_810_191_749, rel=0.05)


def test_baseline_2007_gives_the_declarations_of_2007() -> None:
    per_year = _year_totals("baseline_2007")["employer_declarations_per_year"]["mean"]
    assert per_year == pytest.approx(23_000_000, rel=0.05)


def test_same_seed_same_summary_across_processes(tmp_path: Path) -> None:
    """Bit for bit, even with Python's string hashing salted differently in each process."""
    scenario = tmp_path / "small.yaml"
    scenario.write_text(
        f"extends: {SCENARIOS / 'baseline_2023.yaml'}\n"
        "name: small\nreplications: 2\nduration: 2min\nwarmup: 30s\npool: 100\n"
        "world: {persons: 20000, employers: 400}\n"
    )
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        command = [
            sys.executable,
            "-m",
            "testbed.cli",
            "simulate",
            str(scenario),
            "--out",
            str(tmp_path / salt),
            "--quiet",
        ]
        subprocess.run(command, check=True, env=env, cwd=SCENARIOS.parent, capture_output=True)
    assert (tmp_path / "1" / "summary.json").read_bytes() == (tmp_path / "2" / "summary.json").read_bytes()
    assert (tmp_path / "1" / "series.json").read_bytes() == (tmp_path / "2" / "series.json").read_bytes()
