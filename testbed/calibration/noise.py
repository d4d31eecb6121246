"""The noise floor of a what-if's measured effect: how far two baselines at one rate differ.

A what-if's measured effect on mean latency is a difference of two levels of the same network,
measured one after the other: the fault's, less the baseline's just before it. The machine drifts
between levels (testbed/calibration/speed.py; a commit stall now and then), so such a difference
also holds a draw of that drift. Each round of the what-ifs measures two baselines at the same
rate (one before the core is stopped, one before the host is killed, about forty seconds apart):
their difference is an effect of nothing, one draw of the noise an effect is measured with.
- `rms_ms`: the root mean square of those null effects, the noise of one round's effect;
- `standard_error_ms`: that of the median over the rounds (the what-ifs' measured effect), taken
  as a mean's times 1.2533, the median's large-sample loss (sqrt(pi / 2)): with three rounds a
  rough figure, stated as one;
- an effect is `resolved` when it is at least two standard errors from 0: only then is its
  error a judgement of the model rather than of the noise.
A count (the requests FAILED, the deliveries QUEUED by a host kill) is measured as the median of
its rounds too; its noise is their own spread (`count_noise`: the sample standard deviation,
times MEDIAN_LOSS over the square root of the rounds). It is shown beside the count, not used to
judge: a count stands far out of 0, and whether the model's count is within it says only how
finely three rounds can tell (run s19: QUEUED 82, 58 and 63, a standard error of 9.1 against a
median of 63, 15 %: the size of the goal itself).
Why (2026-12-08): in the three `bench model` runs of 2026-12-07, the two baselines of a round
differed by 1.66, 2.29, 1.91 ms (run 1), -0.50, -0.88, 1.59 (run 2) and 1.13, -0.99, -2.02
(run 3), while the host killed for 3 s moved the mean by +0.72, +0.82 and -0.13 ms (medians of
the rounds): the "84 %" error of its effect was an error against a draw of the noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MEDIAN_LOSS", "Noise", "count_noise", "noise_of", "resolved"]

MEDIAN_LOSS = math.sqrt(math.pi / 2)  # a median's standard error over a mean's, for many normal draws
RESOLVED_AT = 2.0  # standard errors from 0 an effect must be to be judged


Noise = dict[str, Any]


def noise_of(baselines: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> Noise | None:
    """The noise of a what-if's effect measured as the median over its rounds, from each round's
    two baselines (`baselines`: one (first, second) pair of levels a round, each with a
    "mean_ms"); None without any pair."""
    nulls = [float(second["mean_ms"]) - float(first["mean_ms"]) for first, second in baselines]
    if not nulls:
        return None
    rounds = len(nulls)
    rms = math.sqrt(sum(x * x for x in nulls) / rounds)
    return {"null_effects_ms": [round(x, 3) for x in nulls], "rms_ms": round(rms, 3),
            "standard_error_ms": round(_median_error(rms, rounds), 3), "rounds": rounds}  # fmt: skip


def count_noise(counts: Sequence[float]) -> Noise | None:
    """The noise of a count measured as the median over its rounds' `counts` (one a round): their
    sample standard deviation and the median's standard error; None with fewer than two rounds."""
    rounds = len(counts)
    if rounds < 2:
        return None
    sd = statistics.stdev(counts)
    return {"counts": [round(c, 1) for c in counts], "sd": round(sd, 2),
            "standard_error": round(_median_error(sd, rounds), 2), "rounds": rounds}  # fmt: skip


def _median_error(spread: float, rounds: int) -> float:
    """The standard error of a median over `rounds` draws of this spread (one draw's): a mean's
    times MEDIAN_LOSS."""
    return MEDIAN_LOSS * spread / math.sqrt(rounds)


def resolved(effect_ms: float | None, noise: Noise | None) -> bool | None:
    """Whether `effect_ms` stands out of `noise` (at least RESOLVED_AT standard errors from 0);
    None when either is unknown."""
    if effect_ms is None or noise is None:
        return None
    return abs(effect_ms) >= RESOLVED_AT * float(noise["standard_error_ms"])
