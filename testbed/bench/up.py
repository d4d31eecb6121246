"""Start-up of the live network: the demo world's ~3,000 agencies serving, cold and warm
(`crossroads bench up`)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from scenarios.shipped import default_scenario
from testbed.bench.goals import GOAL_UP_MB, GOAL_UP_S, goal, say
from testbed.live import bring_up

__all__ = ["up_figures"]


def _bring_up_once(scenario: Path, state: Path) -> tuple[float, float, int]:
    started = time.perf_counter()
    with bring_up(scenario, state, progress=True) as network:
        seconds = time.perf_counter() - started
        rss = sum(network.rss_bytes().values()) / 2**20
        agencies = int(network.endpoints["agencies"])
    return seconds, rss, agencies


def up_figures(out: Path) -> dict[str, Any]:
    """The demo network brought up cold (a fresh state folder under `out`), then warm (its files
    reused): seconds until every process serves, resident memory, against the goals of issue 2."""
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-up-", dir=out.resolve()) as tmp:
        say("up: bringing the demo network up on a fresh state folder")
        cold, cold_rss, agencies = _bring_up_once(default_scenario(), Path(tmp))
        say("up: and again, warm")
        warm, warm_rss, _ = _bring_up_once(default_scenario(), Path(tmp))
    rss = max(cold_rss, warm_rss)
    goals = {
        "up_cold_seconds": goal(round(cold, 2), "<=", GOAL_UP_S),
        "up_warm_seconds": goal(round(warm, 2), "<=", GOAL_UP_S),
        "up_rss_mb": goal(round(rss, 1), "<=", GOAL_UP_MB),
    }
    return {"agencies": agencies, "cold_seconds": cold, "warm_seconds": warm, "rss_mb": rss, "goals": goals}
