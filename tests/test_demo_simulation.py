"""The demo's later steps: a simulation written as a run folder with its report; a load test."""

from __future__ import annotations

from pathlib import Path

from network.run import Overrides, load
from testbed.demo import DEFAULT_STEPS, load_test, what_if
from testbed.simulation import simulate_to

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


def test_the_demo_simulates_and_load_tests_after_its_network_is_down() -> None:
    later = [s.run for s in DEFAULT_STEPS if not s.live]
    assert what_if in later and load_test in later


def test_simulate_to_writes_the_run_folder_and_a_self_contained_report(tmp_path: Path) -> None:
    scenario_file = SCENARIOS / "queue_mm1.yaml"
    scenario = Overrides(replications=2, duration=600.0, warmup=60.0).apply(load(scenario_file))
    said: list[str] = []
    report = simulate_to(tmp_path / "run", scenario_file, scenario, progress=False, say=said.append)
    assert report == tmp_path / "run" / "report.html"
    html = report.read_text(encoding="utf-8")
    assert "data:image/png;base64," in html and "<html" in html.lower()
    assert (tmp_path / "run" / "summary.json").exists()
    assert any(line.startswith("report: ") and line.endswith("report.html") for line in said)
