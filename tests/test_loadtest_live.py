"""A short live load test end to end: a small world, Locust for a few seconds, an agency host killed
and restarted under load, then the guarantees checked on the state folder and the report written.
The run is tests/short_loadtest.py's, shared with the browser test of its report."""

from __future__ import annotations

import csv
import json
import os

import pytest

from loadtests.guarantees import owed, pending_in_outbox, received_by_agencies
from loadtests.record import read_requests
from testbed.loadtest import LoadtestResult
from tests.short_loadtest import KILLED

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(short_loadtest: LoadtestResult) -> LoadtestResult:
    return short_loadtest


def test_a_short_load_test_runs_end_to_end_and_every_guarantee_holds(run: LoadtestResult) -> None:
    s = run.summary
    assert run.ok, [c for c in s["guarantees"] if not c["ok"]]
    assert {c["name"] for c in s["guarantees"]} >= {
        "every acknowledged request has exactly one audit record",
        "audit verify passes",
        "no declaration or mutation owed to an agency is lost",
    }
    totals = s["overall"]
    assert totals["requests"] > 150  # ~40/s for 8 s
    assert set(totals["by_name"]) >= {"CONSULTATION", "CITIZEN_CONSULTATION", "DIMONA", "MUTATION"}
    assert totals["acknowledged"] >= 0.9 * totals["requests"]
    assert totals["outcomes"].get("DENIED", 0) == 0  # every kind of user is authorized, citizens included


def test_the_run_folder_holds_the_report_and_locusts_own_files(run: LoadtestResult) -> None:
    assert json.loads((run.out / "summary.json").read_text()) == json.loads(json.dumps(run.summary))
    assert "<h1>Load test: tiny.yaml</h1>" in (run.out / "report.html").read_text()
    assert (run.out / "locust.html").stat().st_size > 0
    with (run.out / "locust_stats.csv").open() as f:
        names = {row["Name"] for row in csv.DictReader(f)}
    assert {"CONSULTATION", "DIMONA", "Aggregated"} <= names
    assert len(read_requests(run.out / "requests")) == run.summary["overall"]["requests"]


def test_what_is_owed_to_a_killed_host_ends_up_delivered_or_held(run: LoadtestResult) -> None:
    state = run.out / "state"
    hosts = json.loads((state / "hosts.json").read_text())["hosts"]
    served = set(next(h["agencies"] for h in hosts if h["name"] == KILLED))
    requests = read_requests(run.out / "requests")
    held_back = [r for r in requests if any(a in served and o == "QUEUED" for a, o in r.deliveries)]
    assert held_back, "the kill held no delivery back: the fault did not bite"
    to_killed = [o for o in owed(requests) if o.agency in served]
    have = received_by_agencies(state) | pending_in_outbox(state)
    assert [o for o in to_killed if (o.agency, o.message_id) not in have] == []
    window = next(f for f in run.summary["faults"] if f["action"] == "kill_host")
    assert 1.5 <= window["from_s"] <= 3.0 and window["until_s"] >= 4.5
    during = next(w for w in run.summary["windows"] if w["what"] == f"kill_host {KILLED}")
    calm = next(w for w in run.summary["windows"] if w["what"] == "no fault")
    assert during["availability"] < calm["availability"]  # its consultations failed meanwhile


def test_cpu_figures_are_shares_of_a_core_over_each_sample(run: LoadtestResult) -> None:
    resources = json.loads((run.out / "series.json").read_text())["resources"]
    cpu, rss = resources["cpu_percent"], resources["rss_mb"]
    ceiling = 100.0 * (os.cpu_count() or 1)  # every core of the machine busy
    assert all(0 <= v <= ceiling for values in cpu.values() for v in values if v is not None), cpu
    assert all(v <= ceiling for v in run.summary["resources"]["peak_cpu_percent"].values())
    # the killed host, back under its name: its first sample has memory but no CPU (its count starts there)
    back = next(k for k in range(1, len(rss[KILLED])) if rss[KILLED][k] is not None and rss[KILLED][k - 1] is None)
    assert cpu[KILLED][back] is None and cpu[KILLED][back + 1] is not None
