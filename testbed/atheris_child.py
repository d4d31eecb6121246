"""The coverage-guided fuzz campaign (loadtests.fuzz.atheris_harness) in a process of its own.

atheris takes over the process it runs in, and only testbed/processes.py starts processes: this
is the `AtherisRunner` that `crossroads fuzz --atheris-runs N` hands to the campaign.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from loadtests.fuzz import FuzzWorld
from loadtests.fuzz.atheris_harness import LOG_FILE, child_args, outcome
from testbed import processes

__all__ = ["atheris_campaign"]


def atheris_campaign(world: FuzzWorld, runs: int, seed: int, folder: Path) -> dict[str, Any]:
    """`runs` coverage-guided inputs through the core's parse, `check_envelope` and `route`, in a
    child process, seeded with the world's corpus; work files and libFuzzer's log in `folder`.

    Returns {"runs", "exit_code", "seconds", "tail"}; exit_code 0 = no crash. Needs atheris.
    """
    started = time.perf_counter()
    args = child_args(world, runs, seed, folder)
    log = folder / LOG_FILE
    log.unlink(missing_ok=True)
    code, out = processes.run("atheris", args, log=log, timeout_s=None)
    with log.open("a", encoding="utf-8") as f:
        f.write(out)
    return outcome(runs, code, time.perf_counter() - started, processes.log_tail(log, 3))
