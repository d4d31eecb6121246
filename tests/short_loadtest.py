"""The suite's one short live load test: a small world, Locust for 8 s at 40 requests/s, agency
host-1 killed at 2 s and restarted 3 s later. tests/conftest.py runs it once a session (the
`short_loadtest` fixture); its guarantees and its report in the browser are both checked on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agencies.spec import SMALL_WORLD
from testbed.loadtest import LoadtestResult, LoadtestRun, run_loadtest

KILLED = "host-1"
SCENARIO: dict[str, Any] = {
    "world": dict(SMALL_WORLD),
    "loadtest": {
        "seed": 3,
        "mix": {
            "agency": {"CONSULTATION": 4, "INTEGRATION": 1, "MUTATION": 4},
            "employer": {"DIMONA": 3, "DMFA": 1, "DRS": 1},
            "citizen": {"CONSULTATION": 1},
        },
        "stages": [{"duration": "8s", "users": 8, "spawn_rate": 8, "rate": 40}],
        "faults": [{"at": "2s", "action": "kill_host", "host": KILLED, "duration": "3s"}],
        "budget": {"errors": 0.5},  # consultations to the killed host's agencies fail while it is down
        "timeout": "5s",
        "drain": "20s",
    },
}


def run_short_loadtest(folder: Path) -> LoadtestResult:
    """Write the scenario as FOLDER/tiny.yaml and run it into FOLDER/run (two agency hosts)."""
    scenario = folder / "tiny.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    return run_loadtest(LoadtestRun(scenario=scenario, out=folder / "run", hosts=2, progress=False))
