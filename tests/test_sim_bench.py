"""The simulation benchmark runs and reports its figures (its speed is measured, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

from testbed.bench.sim import bare_simpy, bench_sim
from testbed.cli import main

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_bench_reports_messages_and_the_ratio_to_bare_simpy(tmp_path: Path) -> None:
    figures = bench_sim(SCENARIOS / "queue_tandem.yaml", duration=300.0)
    assert figures["scenario"] == "queue_tandem"
    assert figures["messages"] > 300 and figures["functional_messages_in_window"] > 300
    assert figures["ratio_to_bare_simpy"] > 0
    assert bare_simpy(customers=2_000) > 0
    out = tmp_path / "bench"
    assert (
        main(["bench", "sim", "--scenario", str(SCENARIOS / "queue_mm1.yaml"), "--duration", "5min", "--out", str(out)])
        == 0
    )
    assert json.loads((out / "bench_sim.json").read_text())["runs"][0]["scenario"] == "queue_mm1"
