"""What-ifs predicted by the calibrated model, then measured on the live testbed.

At one rate below the knee (half the predicted knee, by default), each change is applied to both
worlds, and measured just after a baseline level at that rate on the same network (the machine
drifts within minutes):
- host killed: an agency host SIGKILLed for a few seconds within the measured window (the
  consultations it should answer fail, the notices owed to it wait in the outbox);
- core stopped: the core SIGSTOPped for a second (every call waits, then the backlog drains);
- slow agencies: a fresh network whose hosts' agencies take `slow_ms` on average (exponential)
  to answer, against the first baseline (whose agencies answer at once).
Each fault is applied at its time after the measured window's start (testbed/calibration/measure.py
waits for the load generator to fix it), not during the warm-up.
The live fault windows, as they really happened (testbed/faults.py), are what the model is given
(in the measured window's time), so both worlds see the same outage. Compared per what-if: the
effect on mean latency (what-if minus baseline, in each world) and the FAILED and QUEUED
exchanges the change caused (the baseline's own, scaled to the same number of exchanges, taken
off the measured counts). With the plan's `repeats` > 1 the baseline and fault levels run that
many rounds (baseline, core stopped, baseline, host killed; again ...) and each measured effect
is the median of the rounds' effects (testbed/calibration/rounds.py says why); the slow agencies'
network is measured as many times, each against one round's first baseline.
The host killed and the core stopped are also read over time (testbed/calibration/phases.py):
each one's effect before, during, just after and after the fault, and its timeline, in both
worlds, from each request of the model's replications and of the live rounds. Each round lists the
generator's CPU a request in its baseline and its what-if (how fast the machine ran each:
testbed/calibration/speed.py). Each round's two baselines (the stop's and the kill's) give the noise
a measured effect on mean latency has, and each what-if says whether its effect stands out of it
(testbed/calibration/noise.py).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtests.spec import Fault
from scenarios.calibrated import Calibrated
from testbed.calibration.calibrate import Progress
from testbed.calibration.errors import signed
from testbed.calibration.measure import LiveBench
from testbed.calibration.noise import Noise, count_noise, noise_of, resolved
from testbed.calibration.phases import compare_phases, live_timed, model_timed
from testbed.calibration.predicted import Predicted, predicted

__all__ = ["WhatIfs", "run_whatifs"]


@dataclass(frozen=True, kw_only=True)
class WhatIfs:
    """Which what-ifs run, at what share of the predicted knee, and how long each change lasts."""

    enabled: bool = True
    rate: float | None = None  # default: share_of_knee of the model's knee
    share_of_knee: float = 0.5
    kill_at_s: float = 2.0
    kill_s: float = 3.0
    host: int = 1
    stop_at_s: float = 3.0
    stop_s: float = 1.0
    slow_ms: float = 10.0


def _counts(level: dict[str, Any], baseline: dict[str, Any]) -> dict[str, float]:
    """FAILED and QUEUED in `level` beyond the baseline's own (scaled to the level's exchanges)."""
    total, base_total = sum(level["outcomes"].values()), sum(baseline["outcomes"].values()) or 1
    return {k: level["outcomes"].get(k, 0) - baseline["outcomes"].get(k, 0) * total / base_total
            for k in ("FAILED", "QUEUED")}  # fmt: skip


def _measured(pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
              counts: Sequence[dict[str, float]]) -> dict[str, float]:  # fmt: skip
    """The what-if's measured figures: each the median over the rounds' (baseline, what-if) pairs
    and their `counts` (`_counts`)."""
    return {"mean_ms": statistics.median(level["mean_ms"] for _, level in pairs),
            "effect_mean_ms": statistics.median(level["mean_ms"] - base["mean_ms"] for base, level in pairs),
            "failed": statistics.median(c["FAILED"] for c in counts),
            "queued": statistics.median(c["QUEUED"] for c in counts)}  # fmt: skip


def _compare(name: str, what: str, rate: float, guesses: tuple[Predicted, Predicted],
             pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]],
             noise: Noise | None) -> dict[str, Any]:  # fmt: skip
    """A what-if's figures in both worlds and their errors, with the noise its measured effect
    on mean latency has and whether that effect stands out of it, and each judged count's own
    noise over the rounds (testbed/calibration/noise.py);
    with a fault window, its phases (testbed/calibration/phases.py) over the model's replications
    and the live rounds."""
    guess_base, guess = guesses
    effect = guess.figures["mean_ms"] - guess_base.figures["mean_ms"]
    pred = {"mean_ms": guess.figures["mean_ms"], "effect_mean_ms": effect,
            "failed": guess.outcomes["FAILED"] - guess_base.outcomes["FAILED"],
            "queued": guess.outcomes["QUEUED"] - guess_base.outcomes["QUEUED"]}  # fmt: skip
    counts = [_counts(level, base) for base, level in pairs]
    meas = _measured(pairs, counts)
    keys = ("effect_mean_ms", "failed", "queued") if name == "host killed" else ("effect_mean_ms",)
    out = {"name": name, "what": what, "rate": rate, "predicted": {k: round(v, 3) for k, v in pred.items()},
           "measured": {k: round(v, 3) for k, v in meas.items()},
           "error": {k: signed(pred[k], meas[k]) for k in keys}, "noise": noise,
           "count_noise": {k: count_noise([c[k.upper()] for c in counts]) for k in keys if k != "effect_mean_ms"},
           "resolved": resolved(meas["effect_mean_ms"], noise), "faults": pairs[0][1]["faults"],
           "rounds": [{"baseline_mean_ms": base["mean_ms"], "mean_ms": level["mean_ms"],
                       "baseline_generator_us": base.get("cpu_us_per_call"),
                       "generator_us": level.get("cpu_us_per_call"),
                       **{k.lower(): v for k, v in c.items()}, "faults": level["faults"]}
                      for (base, level), c in zip(pairs, counts, strict=True)]}  # fmt: skip
    if out["faults"]:  # a fault with a window: both its levels were measured by `_timed_level`
        window = _window(pairs[0][1], out["faults"][0]["action"])
        model = [(model_timed(b), model_timed(w)) for b, w in zip(guess_base.runs, guess.runs, strict=True)]
        live = [(base["timed"], level["timed"]) for base, level in pairs]
        out |= compare_phases(window, guess.runs[0].conditions.seconds, model, live)
    return out


def _timed_level(bench: LiveBench, rate: float, faults: Sequence[Fault] = ()) -> dict[str, Any]:
    """`bench`'s level at `rate` with `faults`, its records (not JSON) read into its answered
    requests' due times and latencies under "timed" (not JSON either: `_compare` reads them)."""
    level = bench.level(rate, faults=faults, records=True)
    level["timed"] = live_timed(level.pop("records"))
    return level


def _window(level: dict[str, Any], action: str) -> tuple[float, float]:
    fault = next(f for f in level["faults"] if f["action"] == action)
    return float(fault["from_s"]), float(fault["until_s"] if fault["until_s"] is not None else fault["from_s"])


def run_whatifs(model: Calibrated, bench: LiveBench, plan: WhatIfs, knee: float,
                say: Progress, replications: int) -> list[dict[str, Any]]:  # fmt: skip
    """Run the what-ifs (see the module doc) on `bench`'s network and a fresh slow one."""
    if not plan.enabled:
        return []
    live = bench.plan
    rate = plan.rate or round(knee * plan.share_of_knee, 1)
    when = live.conditions(rate)
    guess_base = predicted(model, when, replications)
    host = f"host-{plan.host}"
    # each change just after a baseline of its own (the machine drifts within minutes); the stop
    # first: what a killed host leaves behind (redeliveries, reconnections) stays out of it
    stop = Fault(at=plan.stop_at_s, action="stop_core", duration=plan.stop_s)
    kill = Fault(at=plan.kill_at_s, action="kill_host", host=host, duration=plan.kill_s)
    stops, kills = [], []
    for round_ in range(live.repeats):
        stops.append((_timed_level(bench, rate), _timed_level(bench, rate, [stop])))
        kills.append((_timed_level(bench, rate), _timed_level(bench, rate, [kill])))
        if live.repeats > 1:
            say(f"what-ifs round {round_ + 1} of {live.repeats} at {rate:g}/s measured")
    stopped, killed = stops[0][1], kills[0][1]  # the model is given the first round's windows
    noise = noise_of([(stop[0], kill[0]) for stop, kill in zip(stops, kills, strict=True)])
    down = _window(killed, "kill_host")
    guess_kill = predicted(model, dataclasses.replace(when, hosts_down=((plan.host, *down),)), replications)
    guess_stop = predicted(
        model, dataclasses.replace(when, core_stopped=(_window(stopped, "stop_core"),)), replications
    )
    say(f"what-ifs at {rate:g}/s: {host} killed {down[1] - down[0]:.1f} s, the core stopped, then slow agencies")
    out = [_compare("host killed", f"{host} killed for {plan.kill_s:g} s at {rate:g}/s", rate, (guess_base, guess_kill),
                    kills, noise),
           _compare("core stopped", f"the core stopped for {plan.stop_s:g} s at {rate:g}/s", rate,
                    (guess_base, guess_stop), stops, noise)]  # fmt: skip
    slow_plan = dataclasses.replace(live, service_time_ms=plan.slow_ms)
    with LiveBench(bench.out.parent / "live_slow", slow_plan, say) as slow_bench:
        slow_bench.prepare(int(rate * (live.seconds + live.warmup_s)) + 1000)
        slows = [(base, slow_bench.level(rate)) for base, _ in stops]  # round r's against round r's baseline
    guess_slow = predicted(model, dataclasses.replace(when, service_time_ms=plan.slow_ms), replications)
    out.append(_compare("slow agencies", f"agencies answer in {plan.slow_ms:g} ms on average at {rate:g}/s", rate,
                        (guess_base, guess_slow), slows, noise))  # fmt: skip
    return out
