"""The simulator agrees with queueing theory.

Each scenario is read from its YAML file in scenarios/, run for its replications (independent
streams from SeedSequence.spawn), and the formula's mean sojourn time must lie inside the 95%
confidence interval of the replications' means. The interval must also be narrow (a few % of
the value), so that agreement says something: a simulator off by more than that fails.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from crossroads.statistics import Estimate, estimate
from network.explicit import plan_explicit
from network.model import run_replication
from network.plan import Plan
from scenarios.schema import ExplicitNetwork, Scenario, load_scenario

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def erlang_c(servers: int, offered: float) -> float:
    """Probability that an arrival waits in an M/M/c queue with offered load `offered` (Erlang C)."""
    rho = offered / servers
    top = offered**servers / math.factorial(servers) / (1 - rho)
    return top / (sum(offered**k / math.factorial(k) for k in range(servers)) + top)


def mmc_sojourn(arrival_rate: float, mean_service: float, servers: int) -> float:
    mu = 1 / mean_service
    return erlang_c(servers, arrival_rate / mu) / (servers * mu - arrival_rate) + mean_service


def _sojourns(plan: Plan) -> Estimate:
    means = [float(run_replication(plan, i).latencies[0].mean()) for i in range(plan.replications)]
    return estimate(means)


def _agrees(measured: Estimate, theory: float) -> None:
    assert measured.n >= 10
    assert measured.half_width < 0.05 * theory, f"interval too wide to test anything: {measured}"
    assert measured.covers(theory), f"theory {theory:.4f} outside {measured.low:.4f} .. {measured.high:.4f}"


def _load(name: str) -> Scenario[None]:
    return load_scenario(SCENARIOS / f"{name}.yaml")


def _station(scenario: Scenario[None], name: str) -> tuple[int, float]:
    network = scenario.network
    assert isinstance(network, ExplicitNetwork)
    service = network.stations[name]
    return service.servers, service.time.mean


def test_mm1_mean_sojourn_matches_formula() -> None:
    scenario = _load("queue_mm1")
    servers, mean = _station(scenario, "server")
    lam = scenario.traffic[0].rate
    assert servers == 1
    _agrees(_sojourns(plan_explicit(scenario)), 1 / (1 / mean - lam))


def test_mmc_mean_sojourn_matches_erlang_c() -> None:
    scenario = _load("queue_mmc")
    servers, mean = _station(scenario, "counter")
    assert servers == 3
    _agrees(_sojourns(plan_explicit(scenario)), mmc_sojourn(scenario.traffic[0].rate, mean, servers))


def test_tandem_jackson_network_matches_sum_of_stations_and_links() -> None:
    scenario = _load("queue_tandem")
    network = scenario.network
    assert isinstance(network, ExplicitNetwork)
    lam = scenario.traffic[0].rate
    theory = sum(link.latency.mean for link in network.links.values())
    for name in scenario.traffic[0].path:
        servers, mean = _station(scenario, name)
        theory += mmc_sojourn(lam, mean, servers)
    _agrees(_sojourns(plan_explicit(scenario)), theory)


def test_utilisation_matches_offered_load() -> None:
    # a 95% interval misses the truth one time in twenty; this check is not the one the issue
    # asks for, so it allows three standard errors (misses about one time in 370)
    plan = plan_explicit(_load("queue_mmc"))
    measured = estimate([float(run_replication(plan, i).station_utilisation[0]) for i in range(plan.replications)])
    assert abs(measured.mean - 2.4 / 3) <= 3 * measured.sd / math.sqrt(measured.n)
    assert measured.sd < 0.01


def test_formula_helpers() -> None:
    # Erlang C reduces to rho for one server; textbook value for c=2, a=1 is 1/3
    assert erlang_c(1, 0.7) == pytest.approx(0.7)
    assert erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert mmc_sojourn(0.7, 1.0, 1) == pytest.approx(1 / 0.3)


def test_a_wrong_model_is_caught() -> None:
    """The check has teeth: the same queue with 10% slower service falls outside the interval."""
    scenario = _load("queue_mm1")
    plan = plan_explicit(scenario)
    measured = _sojourns(plan)
    assert not measured.covers(1 / (1 / 1.1 - scenario.traffic[0].rate))
