"""The figures of one open-loop level, from its records: what was offered, sent and answered, and how fast.

Counted are the requests due in the measured window (intended time >= 0); the warm-up's are
sent and recorded, not counted. Rates are of what happened within the window, whenever it
was due (so in steady state the warm-up's late answers stand in for the window's own):
- offered_per_s: the requests the schedule asked for in the window, over its length;
- sent_per_s: the requests handed to gRPC within the window, over its length (a generator that
  falls behind sends less than was offered);
- achieved_per_s: the OK answers that came back within the window, over its length (the
  server's throughput).
Latency (p50/p90/p99/mean/max) is of the requests answered OK, from each one's intended send
time; the send lag (p50/p99/max) of every request sent; errors by gRPC status name, and
NOT_SENT ones (the sender's in-flight cap was reached) apart. Percentiles are the project's
(crossroads.statistics: nearest rank).

The generator could not keep its schedule (`generator_limited`, with the reasons in
`limited_by`) when the p99 send lag passes LAG_LIMIT_MS ("send_lag"), when it sent less than
SENT_SHARE_LIMIT of what was offered ("sent_rate"), or when a send found the in-flight cap full
("in_flight_cap"). Whether it could not offer the level at all (`could_not_offer`: it sent too
little, or its cap was full; late sends alone are not) is the one test the benchmarks and the
calibration apply: then the level measured the generator, not the server. Figures that do not
exist (no request answered) are None, so the figures are strict JSON.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

from crossroads.statistics import mean, percentiles
from loadtests.level import NOT_SENT, Level

__all__ = ["LAG_LIMIT_MS", "SENT_SHARE_LIMIT", "could_not_offer", "figures_of"]

LAG_LIMIT_MS = 5.0
SENT_SHARE_LIMIT = 0.98
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def _ms(seconds: float) -> float | None:
    return None if math.isnan(seconds) else round(seconds * 1000, 3)


def _per_s(at_s: NDArray[np.float64], seconds: float) -> float:
    """How many of the instants `at_s` (seconds from the window's start) fall in the window, per second."""
    return float(np.count_nonzero((at_s >= 0) & (at_s < seconds))) / seconds


def _latency(ok: NDArray[np.void]) -> dict[str, float | None]:
    seconds = ok["latency_s"]
    p50, p90, p99 = percentiles(seconds, (50, 90, 99))
    biggest = float(seconds.max()) if seconds.size else math.nan
    return {
        "p50_ms": _ms(p50),
        "p90_ms": _ms(p90),
        "p99_ms": _ms(p99),
        "mean_ms": _ms(mean(seconds)),
        "max_ms": _ms(biggest),
    }


def _lag(sent: NDArray[np.void]) -> dict[str, float | None]:
    p50, p99 = percentiles(sent["lag_s"], (50, 99))
    biggest = float(sent["lag_s"].max()) if sent.size else math.nan
    return {"lag_p50_ms": _ms(p50), "lag_p99_ms": _ms(p99), "lag_max_ms": _ms(biggest)}


def _limited_by(offered: float, sent_per_s: float, lag_p99_ms: float | None, not_sent: int) -> list[str]:
    reasons = []
    if lag_p99_ms is not None and lag_p99_ms > LAG_LIMIT_MS:
        reasons.append("send_lag")
    if sent_per_s < SENT_SHARE_LIMIT * offered:
        reasons.append("sent_rate")
    if not_sent:
        reasons.append("in_flight_cap")
    return reasons


def could_not_offer(figures: Mapping[str, Any]) -> bool:
    """Whether the generator could not offer a level (`figures_of`'s): it sent less than was
    offered, or its in-flight cap was full. Late sends alone are not: on two shared cores the
    generator lags when the machine is busy, whoever makes it busy, and that lag counts in the
    latency measured from the intended send time, as a real client's would."""
    return bool(set(figures["limited_by"]) - {"send_lag"})


def figures_of(records: NDArray[np.void], level: Level, cpu_s: Sequence[float]) -> dict[str, Any]:
    """The figures (see the module doc) of `level` from its `records`, with the CPU seconds each
    sender process spent (`cpu_s`, one per process)."""
    measured = records[records["intended_s"] >= 0]
    sent = measured[measured["code"] != NOT_SENT]
    ok = measured[measured["code"] == 0]
    failed = sent[sent["code"] != 0]
    answered = records[records["code"] == 0]  # warm-up included: answers within the window
    offered = measured.size / level.seconds
    sent_per_s = _per_s(records["intended_s"] + records["lag_s"], level.seconds)  # NaN lag: never sent
    lag = _lag(sent)
    limited_by = _limited_by(offered, sent_per_s, lag["lag_p99_ms"], measured.size - sent.size)
    all_sent = int(np.count_nonzero(records["code"] != NOT_SENT))  # warm-up included: CPU per call
    return {
        "mode": "open",
        "rate": level.rate,
        "arrivals": level.arrivals,
        "processes": level.processes,
        "seconds": level.seconds,
        "warmup_s": level.warmup_s,
        "seed": level.seed,
        "scheduled": int(measured.size),
        "sent": int(sent.size),
        "ok": int(ok.size),
        "errors": int(failed.size),
        "not_sent": int(measured.size - sent.size),
        "offered_per_s": round(offered, 3),
        "sent_per_s": round(sent_per_s, 3),
        "achieved_per_s": round(_per_s(answered["intended_s"] + answered["latency_s"], level.seconds), 3),
        **lag,
        **_latency(ok),
        "errors_by_code": dict(Counter(_CODE_NAMES.get(int(c), str(int(c))) for c in failed["code"]).most_common()),
        "cpu_s": round(sum(cpu_s), 3),
        "cpu_s_by_process": [round(c, 3) for c in cpu_s],
        "cpu_us_per_call": round(sum(cpu_s) / all_sent * 1e6, 1) if all_sent else None,
        "generator_limited": bool(limited_by),
        "limited_by": limited_by,
    }
