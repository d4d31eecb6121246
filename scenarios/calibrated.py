"""A calibrated model of the live testbed: the file `crossroads calibrate` writes (CAL/calibrated.yaml).

Where the shipped scenarios describe the national network with assumed service times, this
document describes the testbed itself, as measured on one machine: the load generator's
processes, the core (its Python under one interpreter lock, its other threads, the group commit
of its audit log), the agency hosts, and the machine's cores, which all of them share. Each
number in the file is followed by a comment saying where it came from (which law, at which
levels); `network/testbed_model.py` simulates it, `crossroads validate` holds it against new
measurements.

    cpus: 2                      # the machine's cores, shared by every process below
    hosts: 4                     # agency host processes; agencies are spread over them evenly
    generator: {processes: 2, cpu_ms: 0.31}      # per request, send and answer halves
    core: {cpu_ms: 0.52, io_cpu_ms: 0.08, background: 0.02}
    host: {cpu_ms: 0.21, service_time_ms: 0}     # per forward; the service time is a wait
    commit: {fixed_ms: 0.45, per_record_ms: 0.02}
    delay: {mean_ms: 0.9, cv: 0.8}               # the rest: kernel, sockets, TLS, scheduling
    mix:
      CONSULTATION: {share: 0.74, consultation: true, destinations: {1: 1.0}}

Validated with the scenarios' kit (scenarios/documents.py): a refusal names the file, the key,
what was expected, and the line and column.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field, TypeAdapter, model_validator

from scenarios.documents import Document, ScenarioError, read_yaml
from scenarios.values import Amount, Count, Section, Share, Text, length, number, whole

__all__ = [
    "Calibrated",
    "CalibrationError",
    "Commit",
    "Core",
    "Delay",
    "Generator",
    "Host",
    "KindMix",
    "Load",
    "at_rate",
    "dump_calibrated",
    "load_calibrated",
]

Cpus = Annotated[int, whole(1, 256)]
Ms = Amount
Rate = Annotated[float, number(above=True)]


class CalibrationError(ScenarioError):
    """A calibrated model refused (see scenarios.documents.ScenarioError)."""


class Generator(Section):
    """The open-loop load generator: its processes (each one interpreter lock) and CPU per request."""

    processes: Annotated[int, whole(1, 64)]
    """Generator processes: each sends and reads answers one at a time, under its own lock."""
    cpu_ms: Ms
    """CPU milliseconds per request, half before the send and half after the answer."""


class Core(Section):
    """The crossroads core: its handler's Python (under the interpreter lock) and its other threads."""

    cpu_ms: Ms
    """CPU milliseconds per request under the core's interpreter lock (half before forwarding, half after)."""
    io_cpu_ms: Ms = 0.0
    """CPU milliseconds per request in threads that need no lock (gRPC's transport, TLS)."""
    background: Annotated[float, number(high=64.0, phrase="a number of cores >= 0")] = 0.0
    """Cores' worth of CPU the core uses whatever the load (polling, timers)."""
    switch_interval_ms: Annotated[float, number(above=True, high=1000.0)] = 5.0
    """The core interpreter's switch interval (sys.getswitchinterval()): the longest a thread
    waiting for the lock waits while the event loop holds it."""


class Host(Section):
    """An agency host process: CPU per forward under its lock, then its agencies' service time."""

    cpu_ms: Ms
    """CPU milliseconds per forward (per destination) under the host's interpreter lock."""
    service_time_ms: Ms = 0.0
    """Mean of the agencies' service time (exponential; a wait, not CPU: `--service-time-ms`)."""
    shares: list[Annotated[float, number()]] = Field(default_factory=list)
    """Each host's share of the forwards, by host index (empty: even); the hosts serve different
    agencies, and the mix's destinations are not spread evenly over them."""
    notice_spread: list[list[Annotated[float, number()]]] = Field(default_factory=list)
    """Per host (by index), the shares of its notices that go to each of its agencies, largest
    first: the outbox keeps each agency's order, so a notice to an agency with parcels waiting
    queues behind them (empty: each host's notices all to one agency, the strictest order)."""
    forward_ms: Ms = 0.0
    """The round trip of a forward beyond the host's CPU (the core's gRPC client, the kernel,
    sockets and TLS both ways): a wait, half before the host's CPU and half after. An exchange
    whose forward is not made (its host is down) does not wait it."""
    startup_cpu_ms: Ms = 0.0
    """CPU milliseconds a host spends starting (its agencies' certificates, its server) before it
    serves again after a restart."""


class Commit(Section):
    """The audit log's group commit: one writer commits all records waiting, in one transaction,
    as soon as it is free (crossroads/audit_writer.py)."""

    cpu_ms: Ms = 0.0
    """CPU milliseconds of a commit in the writer thread, under the core's interpreter lock."""

    fixed_ms: Ms
    """Milliseconds a lone commit takes, uncontended (the fsync, the transaction, its CPU included)."""
    per_record_ms: Ms = 0.0
    """Milliseconds a commit takes per record in it, uncontended."""
    handoffs: Annotated[int, whole(1, 64)] = 1
    """Times a commit takes the core's interpreter lock back (after each SQLite call and the
    fsync, which release it): each time it waits for the handler's work queued before it."""


class Delay(Section):
    """What no station explains: the path's costs outside the processes' measured CPU (the
    kernel, sockets, TLS, scheduling): either the same at every load, a fixed part and a lognormal
    one (fixed_ms, mean_ms, cv), or through the quantiles measured at each rate (`curve`, see
    network/path_delay.py), which then takes their place."""

    fixed_ms: Ms = 0.0
    """Milliseconds every request spends whatever happens (no curve)."""
    mean_ms: Ms = 0.0
    """Mean milliseconds of the lognormal part (no curve)."""
    cv: Annotated[float, number(high=10.0, phrase="a coefficient of variation between 0 and 10")] = 0.0
    """Coefficient of variation of the lognormal part (0: always its mean; no curve)."""
    curve: list[tuple[Rate, Ms, Ms, Ms]] = Field(default_factory=list)
    """[rate, p50, p90, p99]: the delay's quantiles (ms) measured at each offered rate (requests/s),
    rates rising."""

    @model_validator(mode="after")
    def _one_delay(self) -> Delay:
        _rising(self.curve)
        if self.curve and (self.fixed_ms or self.mean_ms):
            raise ValueError("either a curve or fixed_ms/mean_ms, not both")
        return self


Factor = Annotated[float, number(above=True, high=100.0, phrase="a factor above 0")]


class Load(Section):
    """How each CPU demand per request changes with the load past the levels its line was fitted
    on: the CPU each process spends per request falls as the load grows (each wakeup, each poll,
    each turn of an event loop serves more requests at once), so a line fitted at low load
    overshoots at high load. `curve` gives, at each offered rate measured (requests/s, rising),
    the factor by which the generator's, the core's (its handler's, its transport's) and the
    hosts' demands are multiplied there; between rates they are interpolated, beyond the ends
    the ends' factors hold; empty: 1 at every load."""

    curve: list[tuple[Rate, Factor, Factor, Factor, Factor]] = Field(default_factory=list)
    """[rate, generator, core, core_io, host]: the factors at each rate, rates rising."""

    @model_validator(mode="after")
    def _rates_rise(self) -> Load:
        _rising(self.curve)
        return self

    def at(self, rate: float) -> tuple[float, float, float, float]:
        """The (generator, core, core_io, host) factors at the offered `rate`."""
        if not self.curve:
            return 1.0, 1.0, 1.0, 1.0
        gen, core, io, host = at_rate(self.curve, rate)
        return gen, core, io, host


def _rising(curve: Sequence[Sequence[float]]) -> None:
    """ValueError unless the curve's points' rates (their first values) rise, each once."""
    rates = [point[0] for point in curve]
    if rates != sorted(set(rates)):
        raise ValueError("the curve's rates must rise, each once")


def at_rate(curve: Sequence[Sequence[float]], rate: float) -> tuple[float, ...]:
    """The values of a curve's [rate, value, ...] points (rates rising, at least one point) at
    `rate`: each interpolated between points, the ends' values beyond them."""
    if not curve:
        raise ValueError("a curve needs at least one point")
    rates, *columns = (np.array(column, dtype=float) for column in zip(*curve, strict=True))
    return tuple(float(np.interp(rate, rates, column)) for column in columns)


class KindMix(Section):
    """One kind of message in the mix: its share, whether its sender waits for an answer from the
    agency (a consultation fails when its agency is down; a notice is queued for redelivery), and
    how many agencies it reaches (the share of requests with each count)."""

    share: Share
    consultation: bool = False
    destinations: Annotated[dict[int, Share], length(1, None, "at least one count of destinations", mapping=True)]


class Calibrated(Section):
    """The live testbed as a queueing network (see the module doc)."""

    description: Text = ""
    """What was measured: the machine, the date, the load test whose mix it is."""
    cpus: Cpus
    """The machine's cores, shared by the generator, the core and the hosts."""
    hosts: Annotated[int, whole(1, 1024)]
    """Agency host processes; each destination is on one of them (`host.shares`)."""
    generator: Generator
    core: Core
    host: Host
    commit: Commit
    delay: Delay
    load: Load = Field(default_factory=Load)
    """The demands' factors by load (empty: the lines hold at every load)."""
    mix: Annotated[dict[str, KindMix], length(1, None, "at least one kind of message", mapping=True)]
    """The kinds of message offered, by name."""
    unroutable: Share = 0.0
    """The share of requests the core cannot route (the directory gives them nowhere to go: it
    answers FAILED_PRECONDITION and audits them FAILED): audited and answered without a forward,
    and counted by the generator in neither its throughput nor its latency."""
    levels: list[Rate] = Field(default_factory=list)
    """The offered rates (requests/s) the numbers were measured at: the validation holds others out."""
    seed: Count = 0

    def with_values(self, section: str, **values: Any) -> Calibrated:
        """A copy with `values` in place of those keys of `section` (e.g. "delay", curve=[...])."""
        return self.model_copy(update={section: getattr(self, section).model_copy(update=values)})

    @model_validator(mode="after")
    def _a_share_per_host(self) -> Calibrated:
        shares = self.host.shares
        if shares and (len(shares) != self.hosts or not math.isclose(sum(shares), 1.0, abs_tol=1e-3)):
            raise ValueError(f"host.shares must give each of the {self.hosts} hosts a share, adding up to 1")
        spread = self.host.notice_spread
        if spread and (len(spread) != self.hosts or any(not s or not math.isclose(sum(s), 1.0, abs_tol=1e-3)
                                                        for s in spread)):  # fmt: skip
            raise ValueError(f"host.notice_spread must give each of the {self.hosts} hosts shares adding up to 1")
        return self


@functools.cache
def _adapter() -> TypeAdapter[Calibrated]:
    return TypeAdapter(Calibrated)


def load_calibrated(path: str | Path) -> Calibrated:
    """The calibrated model in the YAML file `path` (CalibrationError naming where it is wrong)."""
    data = read_yaml(path, CalibrationError)
    doc = Document(data, str(path), CalibrationError)
    model = doc.validate(_adapter())
    total = sum(k.share for k in model.mix.values())
    if abs(total - 1.0) > 1e-6:
        raise doc.expected(("mix",), "shares that add up to 1", total)
    return model


def _number(value: float) -> str:
    """A number as YAML reads it back: a float in exponent form needs its dot ("1.0e-06")."""
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.6g}"
    mantissa, e, exponent = text.partition("e")
    return f"{mantissa if '.' in mantissa else mantissa + '.0'}e{exponent}" if e else text


def _flow(items: Iterable[str]) -> str:
    """A YAML flow sequence of texts already written: "[a, b]"."""
    return "[" + ", ".join(items) + "]"


def _line(key: str, value: object, source: str | None, indent: int = 0) -> str:
    shown = _number(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    text = f"{' ' * indent}{key}: {shown}"
    return f"{text:<40} # {source}" if source else text


def dump_calibrated(model: Calibrated, sources: dict[str, str], header: str = "") -> str:
    """The YAML text of `model`, each number followed by a comment saying where it came from
    (`sources`: dotted key -> text); `header`: comment lines at the top. `load_calibrated` reads it back."""
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"description: {json.dumps(model.description)}")
    for key in ("cpus", "hosts", "seed"):
        lines.append(_line(key, getattr(model, key), sources.get(key)))
    for section in ("generator", "core", "host", "commit", "delay", "load"):
        part = getattr(model, section)
        keys = []
        for key, value in part.model_dump().items():
            source = sources.get(f"{section}.{key}")
            if source is None and value == type(part).model_fields[key].get_default(call_default_factory=True):
                continue  # a default nobody set: left out
            if isinstance(value, list) and value and isinstance(value[0], (list, tuple)):
                value = _flow(_flow(_number(float(v)) for v in point) for point in value)
            elif isinstance(value, list):
                value = _flow(_number(float(v)) for v in value)
            keys.append(_line(key, value, source, 2))
        if keys:  # a section of defaults nobody set (e.g. no load curve) is left out
            lines += [f"{section}:", *keys]
    lines.append(_line("unroutable", _number(model.unroutable), sources.get("unroutable")))
    lines.append(f"mix:{'':<36} # {sources['mix']}" if "mix" in sources else "mix:")
    for kind, share in model.mix.items():
        destinations = ", ".join(f"{n}: {_number(s)}" for n, s in share.destinations.items())
        lines.append(f"  {kind}: {{share: {_number(share.share)}, consultation: {str(share.consultation).lower()}, "
                     f"destinations: {{{destinations}}}}}")  # fmt: skip
    lines.append(_line("levels", json.dumps(model.levels), sources.get("levels")))
    return "\n".join(lines) + "\n"
