"""The interpreter's switch interval of a server process, CPython's own unless the environment asks.

    CROSSROADS_SWITCH_INTERVAL_MS=X   sys.setswitchinterval(X / 1000) before the server starts

A thread that wants the interpreter lock while another runs Python waits up to the switch
interval (CPython: 5 ms) before the holder is asked to let go. The core's event loop, its audit
writer and gRPC's poller share that lock, so the interval bounds how long a finished commit
waits to hand its records back (docs/CALIBRATION.md). An experiment's knob, for the benchmarks:
the default stays CPython's until measurements say otherwise (issue 12).
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping

__all__ = ["SWITCH_ENV", "apply_from_env", "switch_interval_from_env"]

SWITCH_ENV = "CROSSROADS_SWITCH_INTERVAL_MS"


def switch_interval_from_env(env: Mapping[str, str]) -> float | None:
    """The switch interval `env` asks for, in seconds (None: not asked). ValueError naming the
    variable for a value that is not a number of milliseconds > 0."""
    text = env.get(SWITCH_ENV, "").strip()
    if not text:
        return None
    try:
        ms = float(text)
    except ValueError:
        raise ValueError(f"{SWITCH_ENV}: expected milliseconds > 0, got {text!r}") from None
    if not math.isfinite(ms) or ms <= 0:
        raise ValueError(f"{SWITCH_ENV}: expected milliseconds > 0, got {text!r}")
    return ms / 1000


def apply_from_env(env: Mapping[str, str] | None = None) -> float:
    """Set the switch interval `env` (default: this process's environment) asks for; the interval
    in force afterwards, in seconds."""
    seconds = switch_interval_from_env(os.environ if env is None else env)
    if seconds is not None:
        sys.setswitchinterval(seconds)
    return sys.getswitchinterval()
