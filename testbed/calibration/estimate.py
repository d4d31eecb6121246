"""From measured levels to a calibrated model of the live testbed (scenarios/calibrated.py).

Each number of the model comes from the levels measured by `LiveBench` (testbed/calibration/
measure.py), with the operational laws of network/calibration.py, and says where it came from:

- generator.cpu_ms: the slope of the generator processes' CPU (cores, over each level's run)
  against the offered rate; its intercept (start-up, idle polling) is left out, as it is not
  per request;
- core.cpu_ms: the slope of the core's Python threads on each call's path (the event loop's
  `main` and gRPC's completion-queue poller, both under the interpreter lock) against the
  throughput; core.io_cpu_ms: the slope of its other threads but the audit writer (gRPC's C
  threads); core.background: the core's lines' intercepts (cores used whatever the load);
- host.cpu_ms: the slope of the hosts' CPU together against the forwards per second (the
  throughput times the mix's mean destinations); host.forward_ms: a forward's round trip beyond
  it, from the core's telemetry at the lowest level (its time in forwards per destination, less
  the host's CPU): a wait that an exchange whose host is down does not make;
- commit.cpu_ms: the slope of the audit writer thread's CPU against the commits per second;
  commit.fixed_ms and per_record_ms: a commit's mean time against its mean batch, from the
  core's telemetry, a line across the levels;
- commit.handoffs: the value whose simulated commit times come closest to the telemetry's;
- load.curve: past the highest level that held (the lines are fitted up to it), at each level
  whose answers kept up with the offered rate, each line's CPU per request there over the line's
  ((U - U0) / (D X)): the CPU a process spends per request falls as the load grows;
- delay.curve: what the stations do not explain at each level that held, and past them at each
  that kept up (so the model's latency up to there is measured, not extrapolated), as its p50, p90 and
  p99 (measured less the model's own, simulated without the delay, then corrected by what the
  model with the curve still misses): a load-dependent delay, interpolated between the levels
  (network/path_delay.py);
- mix: the shares, kinds and destinations of the requests drawn (loadtests/prepared_mix.py);
- unroutable: the share of the requests sent that were answered FAILED_PRECONDITION (the core
  found nowhere to route them), over the levels that held;
- host.shares and host.notice_spread: counted in the calibration network's audit log
  (testbed/calibration/forwards.py); host.startup_cpu_ms: the median host's CPU when the network
  was up (what a restarted host spends again before it serves).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from loadtests.level_figures import could_not_offer
from loadtests.prepared_mix import Drawn
from network.calibration import Estimate, demand, levels_text
from network.testbed_model import Conditions, Prediction, predict
from scenarios.calibrated import Calibrated
from testbed.calibration.forwards import CONSULTATIONS, Forwards

__all__ = [
    "DELAY_FIT_REQUESTS",
    "FIT_SECONDS",
    "KNEE_P99_MS",
    "PAST_KNEE_STEPS",
    "Setup",
    "Sources",
    "below_knee",
    "estimate_model",
    "held",
    "p99_held",
    "until_past_knee",
]

KNEE_P99_MS = 50.0  # the knee: the highest rate whose p99 latency stays at or under this
# a climb (calibrate's levels, validate's staircase) stops after this many levels in a row past the
# knee: one level on this shared machine can land in another tenant's episode (a fresh network's
# first 100/s once measured p99 50.8 ms, then 12.9 and 11.6 ms)
PAST_KNEE_STEPS = 2
_HANDOFFS = (1, 2, 3, 4, 6, 8, 12)
_QUANTILES = ("p50", "p90", "p99")
FIT_SECONDS = 6.0  # simulated window per level when fitting the commit's handoffs and the delay
DELAY_ROUNDS = 2  # corrections of the delay curve by what the model with it still misses
# requests simulated per level, at least, when fitting the delay: a p99 read from ~60 of them. With
# FIT_SECONDS alone (600 requests at 100/s: a p99 from 6) each correction chased one short draw's
# tail, and the model came out 8-14 % over its own levels' p99 (run s20, 100-225/s; 1-2 % with 6,000)
DELAY_FIT_REQUESTS = 6000
Level = dict[str, Any]
UNROUTABLE = "FAILED_PRECONDITION"  # the core's answer to what it cannot route, as the generator names it
_LOCKED = ("main", "grpc-poller")  # the core's Python threads on each call's path: they hold its lock
Sources = dict[str, str]  # dotted key of the model -> where its number came from
Step = TypeVar("Step")  # a step of a climb: a level, or a level with what was predicted of it


@dataclass(frozen=True, kw_only=True)
class Setup:
    """What the measured network was: cores, hosts, generator processes, hosts' service time."""

    cpus: int
    hosts: int
    processes: int
    service_time_ms: float
    description: str = ""
    seed: int = 0
    forwards: Forwards | None = None  # where the calibration's forwards went (None: not counted)
    startup_cpu_s: Mapping[str, float] = field(default_factory=dict)  # each process's CPU when it was up


def p99_held(level: Level) -> bool:
    """Whether a measured level's p99 latency stayed at or under KNEE_P99_MS (no answer: it did not)."""
    return bool((level.get("p99_ms") or math.inf) <= KNEE_P99_MS)


def held(level: Level) -> bool:
    """Whether a level held: its p99 did, and its generator offered it (`could_not_offer`: sends
    that were late only are in the latency, and the generator's CPU is a station of the model)."""
    return p99_held(level) and not could_not_offer(level)


def _why_not(level: Level) -> str:
    """Why a level did not hold, in a few words."""
    if could_not_offer(level):
        return f"{level['rate']:g}/s: the generator could not offer it ({', '.join(level['limited_by'])})"
    p99 = level.get("p99_ms")
    return f"{level['rate']:g}/s: " + ("nothing answered" if p99 is None else f"p99 {p99:g} ms")


def until_past_knee(climb: Iterable[Step], holds: Callable[[Step], bool]) -> Iterator[Step]:
    """The steps of `climb` (each measured as it is asked for), until PAST_KNEE_STEPS in a row did not hold."""
    past = 0
    for step in climb:
        yield step
        past = 0 if holds(step) else past + 1
        if past >= PAST_KNEE_STEPS:
            return


def below_knee(levels: Sequence[Level]) -> list[Level]:
    """The levels that held (`held`)."""
    return [lv for lv in levels if held(lv)]


def _utilisation(level: Level, process: str, threads: Callable[[str], bool]) -> float:
    usage = level["cpu"].get(process)
    if usage is None:
        raise ValueError(f"no CPU was read for {process} at {level['rate']:g}/s (it was gone)")
    return float(sum(t["utilisation"] for name, t in usage["threads"].items() if threads(name)))


def _is_host(process: str) -> bool:
    """Whether a measured process is an agency host (crossroads.pki.host_identity names them)."""
    return process.startswith("host-")


def _hosts(level: Level) -> float:
    return float(sum(u["utilisation"] for name, u in level["cpu"].items() if _is_host(name) and u is not None))


def _mix(drawn: Sequence[Drawn]) -> tuple[dict[str, dict[str, Any]], float]:
    kinds: dict[str, Counter[int]] = defaultdict(Counter)
    for d in drawn:
        kinds[d.kind][d.destinations] += 1
    mix = {
        kind: {
            "share": sum(c.values()) / len(drawn),
            "consultation": kind in CONSULTATIONS,
            "destinations": {n: k / sum(c.values()) for n, k in sorted(c.items())},
        }
        for kind, c in sorted(kinds.items())
    }
    return mix, float(np.mean([d.destinations for d in drawn]))


def _unroutable(levels: Sequence[Level], sources: Sources) -> float:
    """The share of the requests sent at `levels` that the core could not route."""
    unroutable = sum(lv["errors_by_code"].get(UNROUTABLE, 0) for lv in levels)
    sent = sum(lv["sent"] for lv in levels)
    sources["unroutable"] = (f"{unroutable:,} of the {sent:,} requests sent at "
                             f"{levels_text([lv['rate'] for lv in levels])} answered {UNROUTABLE}")  # fmt: skip
    return unroutable / sent if sent else 0.0


def _demand(throughputs: Sequence[float], utilisations: Sequence[float], what: str) -> Estimate:
    """`network.calibration.demand`, or where the utilisation does not grow across the levels no
    demand per request: what the resource uses is background (its mean over the levels)."""
    try:
        return demand(throughputs, utilisations, what)
    except ValueError:
        background = float(np.mean(utilisations))
        return Estimate(0.0, f"{what}: it did not grow across the levels ({levels_text(throughputs)}): none per "
                        f"request, its mean ({background:.3f} of a core) a background", background)  # fmt: skip


def _ms(e: Estimate) -> float:
    return e.value * 1000


def _generator_u(level: Level) -> float:
    return float(level["cpu_s"] / (level["seconds"] + level["warmup_s"]))


def _locked_u(level: Level) -> float:
    return _utilisation(level, "core", lambda t: t in _LOCKED)


def _io_u(level: Level) -> float:
    return _utilisation(level, "core", lambda t: t not in (*_LOCKED, "audit-writer"))


def _offered(level: Level, _: float) -> float:
    return float(level["offered_per_s"])


def _answered(level: Level, _: float) -> float:
    return float(level["achieved_per_s"])


def _forwarded(level: Level, fan_out: float) -> float:
    return float(level["achieved_per_s"]) * fan_out


# the CPU lines per request, in the order of the load curve's factors: (name, the load a level puts
# on it given the mix's destinations per request, its utilisation there, what it is)
_LINES: tuple[tuple[str, Callable[[Level, float], float], Callable[[Level], float], str], ...] = (
    ("generator", _offered, _generator_u, "the generator's CPU against the offered rate"),
    ("core", _answered, _locked_u, "the core's Python threads (main, grpc-poller)"),
    ("core_io", _answered, _io_u, "the core's gRPC threads"),
    ("host", _forwarded, _hosts, "the hosts' CPU against forwards/s"),
)
_LOAD_CLIP = (0.25, 1.5)  # the factors a load curve may give a demand
_KEPT_UP = 0.97  # a level past the knee whose answers kept up with this share of its offered rate reads CPU


def _lines(levels: Sequence[Level], fan_out: float) -> dict[str, Estimate]:
    return {name: _demand([x(lv, fan_out) for lv in levels], [u(lv) for lv in levels], what)
            for name, x, u, what in _LINES}  # fmt: skip


def _kept_up_past(levels: Sequence[Level], top: float) -> list[Level]:
    """The levels past `top` (the highest that held) whose answers kept up with the offered rate
    (_KEPT_UP; their generator may have sent late), by rate: steady states past the knee."""
    return sorted((lv for lv in levels if lv["rate"] > top and lv["achieved_per_s"] >= _KEPT_UP * lv["offered_per_s"]),
                  key=lambda lv: lv["rate"])  # fmt: skip


def _load(top: float, past: Sequence[Level], fan_out: float, lines: Mapping[str, Estimate],
          sources: Sources) -> list[tuple[float, ...]]:  # fmt: skip
    """The load curve (scenarios/calibrated.py's Load): 1 at `top`, the highest level that held
    (the lines were fitted up to it), then at each level `past` it that kept up (`_kept_up_past`),
    each line's CPU per request there over the line's ((U - U0) / (D X)); none without such a level."""
    if not past:
        return []
    curve: list[tuple[float, ...]] = [(top, 1.0, 1.0, 1.0, 1.0)]
    for lv in past:
        curve.append((lv["rate"], *(_factor(lines[name], x(lv, fan_out), u(lv)) for name, x, u, _ in _LINES)))
    sources["load.curve"] = (f"[rate, generator, core, core_io, host]: 1 at {top:g}/s, the highest level that "
                             f"held (the lines' fit); at {levels_text([lv['rate'] for lv in past])}, past the knee "
                             "but kept up with, each line's CPU per request there over the line's")  # fmt: skip
    return curve


def _factor(line: Estimate, x: float, u: float) -> float:
    """A line's CPU per request measured at load `x` (utilisation `u`) over the line's, clipped."""
    if line.value <= 0 or x <= 0:
        return 1.0
    return round(float(np.clip((u - line.background) / (line.value * x), *_LOAD_CLIP)), 4)


def _stations(levels: Sequence[Level], fan_out: float, lines: Mapping[str, Estimate],
              sources: Sources) -> dict[str, Any]:  # fmt: skip
    gen, main, io, host = (lines[name] for name, *_ in _LINES)
    commits = [lv["telemetry"]["commits"] for lv in levels]
    lowest = min(levels, key=lambda lv: lv["rate"])
    fixed = Estimate(_measured_commit_ms(lowest) / 1000, f"the mean commit at {lowest['rate']:g}/s (telemetry), "
                     f"batches of {lowest['telemetry']['commits']['mean_batch']:.2f}: uncontended")  # fmt: skip
    writer = _demand([lv["achieved_per_s"] / c["mean_batch"] for lv, c in zip(levels, commits, strict=True)],
                    [_utilisation(lv, "core", lambda t: t == "audit-writer") for lv in levels],
                    "the core's audit writer thread against commits/s")  # fmt: skip
    forward = _forward(lowest, fan_out, _ms(host))
    for key, e in (("generator.cpu_ms", gen), ("commit.cpu_ms", writer), ("core.cpu_ms", main),
                   ("core.io_cpu_ms", io), ("host.cpu_ms", host), ("commit.fixed_ms", fixed),
                   ("host.forward_ms", forward)):  # fmt: skip
        sources[key] = e.source
    sources["core.background"] = "the intercepts of the core's three lines (main, gRPC, writer)"
    return {
        "generator": {"cpu_ms": _ms(gen)},
        "core": {
            "cpu_ms": _ms(main),
            "io_cpu_ms": _ms(io),
            "background": main.background + io.background + writer.background,
        },
        "host": {"cpu_ms": _ms(host), "forward_ms": _ms(forward)},
        "commit": {
            "cpu_ms": _ms(writer),
            "fixed_ms": _ms(fixed),
            "per_record_ms": 0.0,
        },
    }


def _forward(lowest: Level, fan_out: float, host_ms: float) -> Estimate:
    """A forward's round trip beyond the host's CPU: the core's time in its forwards at the lowest
    level (telemetry: the sum over an exchange's forwards) per destination, less the host's CPU
    per forward; none when the telemetry has no such figure."""
    measured = (lowest.get("telemetry", {}).get("mean") or {}).get("forward_ms")
    if measured is None or fan_out <= 0:
        return Estimate(0.0, "not measured (no forward time in the telemetry): none")
    per_forward = float(measured) / fan_out
    source = (f"the core's forward time at {lowest['rate']:g}/s (telemetry: {float(measured):.3f} ms an exchange "
              f"over {fan_out:.3f} destinations, {per_forward:.3f} ms each) less the host's CPU")  # fmt: skip
    return Estimate(max(0.0, per_forward - host_ms) / 1000, source)


def _simulated(model: Calibrated, level: Level, seed: int, seconds: float) -> Prediction:
    return predict(model, Conditions(rate=level["rate"], seconds=seconds, seed=seed))


def _measured_commit_ms(level: Level) -> float:
    return float(level["telemetry"]["commits"]["mean_commit_ms"])  # crossroads/telemetry.py's figure


def _fit_handoffs(
    model: Calibrated, levels: Sequence[Level], seed: int, seconds: float, sources: Sources
) -> Calibrated:
    """The lock handoffs per commit whose simulated commit times come closest (log error) to the
    telemetry's at the levels."""

    def error(k: int) -> float:
        trial = model.with_values("commit", handoffs=k)
        logs = [
            math.log(_simulated(trial, lv, seed, seconds).mean_commit_ms / _measured_commit_ms(lv)) for lv in levels
        ]
        return float(np.mean(np.square(logs)))

    best = min(_HANDOFFS, key=error)
    sources["commit.handoffs"] = (f"of {', '.join(map(str, _HANDOFFS))}, the one whose simulated commit times come "
                                  "closest to the telemetry's at " + _rates(levels))  # fmt: skip
    return model.with_values("commit", handoffs=best)


def _rates(levels: Sequence[Level]) -> str:
    return ", ".join(f"{lv['rate']:g}/s" for lv in levels)


def _fit_delay(
    model: Calibrated, levels: Sequence[Level], seed: int, seconds: float, requests: int, sources: Sources
) -> Calibrated:
    """The delay curve (network/path_delay.py): at each of `levels` (those that held, and past
    them those that kept up: the model's latency past the last level that held is measured,
    not extrapolated), the p50/p90/p99 latency the stations leave unexplained (measured less
    the model's own there, simulated without a delay), then corrected DELAY_ROUNDS times by
    what the model with the curve still misses there (a sum's quantiles are not the sums of
    its parts' quantiles); each level simulated for `seconds`, or long enough for `requests`."""
    bare = model.with_values("delay", fixed_ms=0.0, mean_ms=0.0, cv=0.0, curve=[])
    ordered = sorted(levels, key=lambda lv: lv["rate"])
    curve = [[lv["rate"], 0.0, 0.0, 0.0] for lv in ordered]
    trial = bare
    for _ in range(1 + DELAY_ROUNDS):
        for point, level in zip(curve, ordered, strict=True):
            figures = _simulated(trial, level, seed, max(seconds, requests / level["rate"])).figures()
            for k, q in enumerate(_QUANTILES, 1):  # each quantile at least the one below it: as drawn
                point[k] = max(point[k - 1] if k > 1 else 0.0, point[k] + level[f"{q}_ms"] - figures[f"{q}_ms"])
        trial = bare.with_values("delay", curve=[tuple(point) for point in curve])
    sources["delay.curve"] = (f"[rate, p50, p90, p99] the stations leave unexplained at {_rates(ordered)} (the "
                              "levels that held, and past them those that kept up; measured less the model's own "
                              f"there, corrected {DELAY_ROUNDS} times)")  # fmt: skip
    return trial


def _hosts_traffic(host: dict[str, Any], setup: Setup, sources: Sources) -> None:
    """host.shares, host.notice_spread and host.startup_cpu_ms, where the setup measured them."""
    f = setup.forwards
    if f is not None and f.shares:
        host["shares"] = [round(x, 4) for x in f.shares]
        sources["host.shares"] = f"each host's share of the {f.total:,} forwards in the calibration's audit log"
        host["notice_spread"] = [[round(x, 5) for x in spread] for spread in f.notice_spread]
        sources["host.notice_spread"] = (f"per host, its agencies' shares of its notices, largest first, of the "
                                         f"{f.notices:,} notices in the calibration's audit log")  # fmt: skip
    hosts = sorted(cpu for name, cpu in setup.startup_cpu_s.items() if _is_host(name))
    if hosts:
        host["startup_cpu_ms"] = statistics.median(hosts) * 1000
        low, high = hosts[0] * 1000, hosts[-1] * 1000
        sources["host.startup_cpu_ms"] = (f"the median host's CPU when the network was up "
                                          f"({low:.0f}-{high:.0f} ms over {len(hosts)} hosts)")  # fmt: skip


def estimate_model(
    levels: Sequence[Level],
    drawn: Sequence[Drawn],
    setup: Setup,
    *,
    fit_seconds: float = FIT_SECONDS,
    delay_requests: int = DELAY_FIT_REQUESTS,
) -> tuple[Calibrated, Sources]:
    """The calibrated model of the measured `levels` (see the module doc) and where each number came from,
    each fit simulating `fit_seconds` a level (the delay's at least `delay_requests` requests).
    ValueError when fewer than one level held below the knee."""
    held = below_knee(levels)
    if not held:
        raise ValueError(
            f"no level held p99 <= {KNEE_P99_MS:g} ms (its generator offering it): nothing to calibrate "
            f"from ({'; '.join(_why_not(lv) for lv in levels)}); lower the rates"
        )
    sources: Sources = {}
    mix, fan_out = _mix(drawn)
    sources["mix"] = f"{len(drawn):,} requests drawn from the load test's mix, {fan_out:.3f} destinations on average"
    top = max(lv["rate"] for lv in held)
    lines, past = _lines(held, fan_out), _kept_up_past(levels, top)
    data = {
        "description": setup.description, "cpus": setup.cpus, "hosts": setup.hosts, "seed": setup.seed,
        **_stations(held, fan_out, lines, sources),
        "delay": {"mean_ms": 0.0, "cv": 0.0}, "load": {"curve": _load(top, past, fan_out, lines, sources)},
        "mix": mix, "levels": [lv["rate"] for lv in levels],
    }  # fmt: skip
    data["unroutable"] = _unroutable(held, sources)
    data["generator"]["processes"] = setup.processes
    data["host"]["service_time_ms"] = setup.service_time_ms
    _hosts_traffic(data["host"], setup, sources)
    sources["cpus"] = "os.cpu_count() of the machine measured"
    sources["seed"] = "the seed of the drawn requests; the model's runs add their own"
    sources["core.switch_interval_ms"] = "CPython's default switch interval, which the core keeps"
    sources["commit.per_record_ms"] = "none told apart at batches near 1 (a record's CPU is in cpu_ms)"
    sources["hosts"] = sources["generator.processes"] = sources["host.service_time_ms"] = "as the network was run"
    model = _fit_handoffs(Calibrated.model_validate(data), held, setup.seed, fit_seconds, sources)
    return _fit_delay(model, [*held, *past], setup.seed, fit_seconds, delay_requests, sources), sources
