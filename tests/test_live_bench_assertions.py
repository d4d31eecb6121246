"""A live bench's citizens' consultations stay vouched for at every level: the FAS's assertions in
the drawn requests are drawn again, fresh, before a level they would not outlive (a validation
network outlived the portal's ten minutes, and its core refused every citizen from then on)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from agencies.spec import SMALL_WORLD
from testbed.calibration.measure import LiveBench, LivePlan

pytestmark = pytest.mark.slow

SCENARIO: dict[str, Any] = {
    "world": dict(SMALL_WORLD),
    "loadtest": {
        "seed": 5,
        "mix": {"citizen": {"CONSULTATION": 1}},
        "stages": [{"duration": "2s", "users": 2, "spawn_rate": 2, "rate": 10}],
    },
}
TTL_S = 4


def test_a_level_past_the_assertions_lifetime_is_sent_with_fresh_ones(tmp_path: Path) -> None:
    scenario = tmp_path / "citizens.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    plan = LivePlan(scenario=scenario, hosts=2, seconds=1.0, warmup_s=0.5, stolen_limit=1.0, warm_s=0.0,
                    assertion_ttl_s=TTL_S)  # fmt: skip
    said: list[str] = []
    with LiveBench(tmp_path / "live", plan, said.append) as bench:
        bench.prepare(500)
        vouched = time.time()
        first = bench.level(20.0)
        time.sleep(max(0.0, vouched + TTL_S + 0.5 - time.time()))  # the drawn assertions have expired
        later = bench.level(20.0)
    for level in (first, later):
        assert level["outcomes"].get("DENIED", 0) == 0, level["outcomes"]
        assert sum(level["outcomes"].values()) >= 20  # the citizens' consultations reached the core
    assert any("vouched for again" in line for line in said), said
