"""The `loadtest:` section of a scenario: what a live load test sends, how hard, and what breaks.

Validate-then-build, like `agencies.spec` for `world:`: `LoadtestSpec.from_mapping(data, where)`
checks every key, type and value, fills the defaults (the `DEFAULT_*` constants below) and
returns a frozen spec; a refusal is a `LoadtestSpecError` naming the file, the YAML path and
what was expected, e.g.

    scenarios/loadtest_smoke.yaml: loadtest.stages[1].rate: expected a number > 0, got -5

The section:

    loadtest:
      seed: 7                       # per-user random streams derive from it
      mix:                          # relative weights of what the users send, per kind of user
        employer: {DIMONA: 10, DMFA: 1, DRS: 2}
        agency: {CONSULTATION: 60, INTEGRATION: 4, MUTATION: 8}
        citizen: {CONSULTATION: 3}
      # or: the traffic of a simulation scenario (year-average rate x multiplier of each source,
      # times the surges active `at` that simulated time):  mix: {from: dmfa_quarter_peak.yaml, at: 2h}
      stages:                       # the load shape, one stage after another
        - {duration: 10s, users: 20, spawn_rate: 20, rate: 100}   # rate: requests/s over all users
        - {duration: 30s, users: 40, rate: 300}                   # no rate: closed loop (no waiting)
      faults:                       # timed faults, seconds after the load starts
        - {at: 15s, action: kill_host, host: host-1, duration: 5s}         # SIGKILL, restart after 5 s
        - {at: 25s, action: stop_core, duration: 2s}                       # SIGSTOP, SIGCONT after 2 s
        - {at: 30s, action: slow_host, host: host-2, duration: 8s, service_time_ms: 50}
      budget: {errors: 0.05, p99_ms: 2000}   # the run fails above these
      timeout: 10s                  # gRPC deadline of one exchange
      max_lag: 5s                   # open loop: a send this late is dropped and counted as an error
      arrivals: poisson             # or uniform: how the open-loop sends of a user are spaced
      drain: 30s                    # how long the outbox may take to empty before the checks
      connect: first_use            # or all: every agency connects before it sends (steady memory)

User kinds and what they send: employer (DIMONA, DMFA, DRS: filed by the employer's social
secretariat, the portal or the batch channel), agency (CONSULTATION, INTEGRATION,
DEINTEGRATION, MUTATION), citizen (CONSULTATION: the portal consulting the citizen's own file).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

import yaml

from scenarios.schema import ScenarioError, parse_duration

__all__ = [
    "ACTIONS",
    "ARRIVALS",
    "CONNECTS",
    "DEFAULT_ARRIVALS",
    "DEFAULT_CONNECT",
    "DEFAULT_DRAIN_S",
    "DEFAULT_ERROR_BUDGET",
    "DEFAULT_MAX_LAG_S",
    "DEFAULT_SEED",
    "DEFAULT_TIMEOUT_S",
    "USER_KINDS",
    "Budget",
    "Fault",
    "LoadtestSpec",
    "LoadtestSpecError",
    "Mix",
    "Stage",
    "load_loadtest_spec",
]

# ---------------------------------------------------------------- defaults, in one place
DEFAULT_SEED = 0
DEFAULT_TIMEOUT_S = 10.0  # longer than the core's forward deadline (2 s) times a retry: a stall shows as latency
DEFAULT_MAX_LAG_S = 5.0
DEFAULT_DRAIN_S = 30.0
DEFAULT_ERROR_BUDGET = 0.01  # share of requests allowed to fail
DEFAULT_ARRIVALS = "poisson"
ARRIVALS = ("poisson", "uniform")
DEFAULT_CONNECT = "first_use"
CONNECTS = ("first_use", "all")
ACTIONS = ("kill_host", "stop_core", "slow_host")
# which kinds of message each kind of user sends (names of crossroads.domain.Kind)
USER_KINDS: Mapping[str, tuple[str, ...]] = {
    "employer": ("DIMONA", "DMFA", "DRS"),
    "agency": ("CONSULTATION", "INTEGRATION", "DEINTEGRATION", "MUTATION"),
    "citizen": ("CONSULTATION",),
}
_HOST = re.compile(r"host-\d+")


class LoadtestSpecError(ValueError):
    """A `loadtest:` section refused: the message names the file, the YAML path and what was expected."""


# ---------------------------------------------------------------- the validated section


@dataclass(frozen=True, kw_only=True, slots=True)
class Stage:
    """One step of the load shape: `users` users for `duration` seconds.

    `rate` (requests per second over all users) makes the users open-loop: each sends on its
    own schedule at rate / users, whether or not earlier answers are back. None: closed loop.
    """

    duration: float
    users: int
    spawn_rate: float  # users started (or stopped) per second when the count changes
    rate: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Fault:
    """A timed fault, `at` seconds after the load starts, lasting `duration` seconds.

    kill_host: SIGKILL the agency host `host`, restart it (same port, same agencies) after
    `duration`; stop_core: SIGSTOP the core, SIGCONT after `duration`; slow_host: restart
    `host` with a mean service time of `service_time_ms`, and back to its own after `duration`.
    """

    at: float
    action: Literal["kill_host", "stop_core", "slow_host"]
    duration: float
    host: str | None = None
    service_time_ms: float = 0.0

    @property
    def until(self) -> float:
        return self.at + self.duration

    def describe(self) -> str:
        """A short label for figures and tables, e.g. "kill_host host-1"."""
        extra = f" {self.service_time_ms:g} ms" if self.action == "slow_host" else ""
        return f"{self.action} {self.host or 'core'}{extra}"


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """Limits the run must keep: failed share of requests, and (if set) the overall p99 latency."""

    errors: float = DEFAULT_ERROR_BUDGET
    p99_ms: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Mix:
    """Relative weights per kind of user ("employer", "agency", "citizen") and kind of message.

    `origin` says where the weights came from (the section itself, or a simulation's traffic).
    """

    weights: Mapping[str, Mapping[str, float]]
    origin: str = "explicit"

    def user_weights(self) -> dict[str, float]:
        """Each kind of user's share of the traffic (sums to 1); kinds of user with none are left out."""
        totals = {user: sum(kinds.values()) for user, kinds in self.weights.items()}
        whole = sum(totals.values())
        return {user: w / whole for user, w in totals.items() if w > 0}

    def kind_weights(self, user: str) -> dict[str, float]:
        """The kinds of message a user of kind `user` sends, with their weights (positive only)."""
        return {kind: w for kind, w in self.weights.get(user, {}).items() if w > 0}


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadtestSpec:
    """A validated `loadtest:` section (see the module doc). Same spec and seed -> same requests."""

    seed: int = DEFAULT_SEED
    mix: Mix
    stages: tuple[Stage, ...]
    faults: tuple[Fault, ...] = ()
    budget: Budget = field(default_factory=Budget)
    timeout: float = DEFAULT_TIMEOUT_S
    max_lag: float = DEFAULT_MAX_LAG_S
    arrivals: Literal["poisson", "uniform"] = "poisson"
    drain: float = DEFAULT_DRAIN_S
    # "all": each Locust process connects every agency before the users send (a connection is
    # ~80 kB at each end: with "first_use", memory grows while agencies make first contact)
    connect: Literal["first_use", "all"] = "first_use"

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str, *, base_dir: Path | None = None) -> LoadtestSpec:
        """Validate the `loadtest:` mapping `data` found at `where` (e.g. "x.yaml: loadtest").

        `mix: {from: FILE}` is read relative to `base_dir`; without it, relative to the folder of
        the file named at the start of `where`, else to the shipped scenarios. Raises
        `LoadtestSpecError` naming the YAML path and what was expected.
        """
        m = _mapping(data, where, ("mix", "stages"), _OPTIONAL)
        stages = tuple(_stage(s, f"{where}.stages[{i}]") for i, s in enumerate(_list(m["stages"], f"{where}.stages")))
        if not stages:
            raise LoadtestSpecError(f"{where}.stages: expected at least one stage, got none")
        spec = cls(
            seed=_integer(m.get("seed", DEFAULT_SEED), f"{where}.seed", low=0),
            mix=_mix(m["mix"], f"{where}.mix", base_dir or _folder_of(where)),
            stages=stages,
            faults=tuple(
                _fault(f, f"{where}.faults[{i}]") for i, f in enumerate(_list(m.get("faults", []), f"{where}.faults"))
            ),
            budget=_budget(m.get("budget", {}), f"{where}.budget"),
            timeout=_seconds(m.get("timeout", DEFAULT_TIMEOUT_S), f"{where}.timeout", strict=True),
            max_lag=_seconds(m.get("max_lag", DEFAULT_MAX_LAG_S), f"{where}.max_lag", strict=True),
            arrivals=_choice(m.get("arrivals", DEFAULT_ARRIVALS), f"{where}.arrivals", ARRIVALS),  # type: ignore[arg-type]
            drain=_seconds(m.get("drain", DEFAULT_DRAIN_S), f"{where}.drain"),
            connect=_choice(m.get("connect", DEFAULT_CONNECT), f"{where}.connect", CONNECTS),  # type: ignore[arg-type]
        )
        _check_faults(spec, where)
        return spec

    @property
    def duration(self) -> float:
        """The whole load shape, in seconds."""
        return sum(s.duration for s in self.stages)

    def stage_at(self, t: float) -> Stage | None:
        """The stage running `t` seconds after the load started; None once the shape is over."""
        end = 0.0
        for stage in self.stages:
            end += stage.duration
            if t < end:
                return stage
        return None

    def shape_at(self, t: float) -> tuple[int, float] | None:
        """(users, spawn rate) of the stage running at `t` s, for Locust's shape; None when it is over."""
        stage = self.stage_at(t)
        return None if stage is None else (stage.users, stage.spawn_rate)

    def with_overrides(
        self, *, users: int | None = None, rate: float | None = None, duration: float | None = None
    ) -> LoadtestSpec:
        """One stage instead of the scenario's shape, when any of the three is given.

        What is not given comes from the scenario: the most users of any stage, the highest
        rate, the whole duration. Faults that would start after the new end are dropped.
        """
        if users is None and rate is None and duration is None:
            return self
        top = max(self.stages, key=lambda s: s.users)
        rates = [s.rate for s in self.stages if s.rate is not None]
        stage = Stage(
            duration=duration if duration is not None else self.duration,
            users=users if users is not None else top.users,
            spawn_rate=top.spawn_rate if users is None else float(max(users, 1)),
            rate=rate if rate is not None else (max(rates) if rates else None),
        )
        faults = tuple(f for f in self.faults if f.at < stage.duration)
        return dataclasses.replace(self, stages=(stage,), faults=faults)


def load_loadtest_spec(path: Path) -> LoadtestSpec:
    """The `LoadtestSpec` under the top-level `loadtest:` key of the YAML file at `path`."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LoadtestSpecError(f"{path}: cannot read a YAML scenario: {exc}") from exc
    if not isinstance(data, Mapping) or "loadtest" not in data:
        raise LoadtestSpecError(f"{path}: expected a mapping with a top-level 'loadtest:' key")
    return LoadtestSpec.from_mapping(data["loadtest"], f"{path}: loadtest", base_dir=Path(path).parent)


# ---------------------------------------------------------------- readers, field by field
_OPTIONAL = ("seed", "faults", "budget", "timeout", "max_lag", "arrivals", "drain", "connect")


def _mapping(value: Any, where: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise LoadtestSpecError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
    allowed = (*required, *optional)
    for key in value:
        if key not in allowed:
            raise LoadtestSpecError(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(allowed))}")
    for key in required:
        if key not in value:
            raise LoadtestSpecError(f"{where}.{key}: missing; this key is required")
    return dict(value)


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise LoadtestSpecError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
    return value


def _number(value: Any, where: str, *, low: float = 0.0, strict: bool = False) -> float:
    # bool is an int in Python, but `rate: true` is a mistake, not a rate
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (value > low if strict else value >= low):
        return float(value)
    raise LoadtestSpecError(f"{where}: expected a number {'>' if strict else '>='} {low:g}, got {value!r}")


def _integer(value: Any, where: str, *, low: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= low:
        return value
    raise LoadtestSpecError(f"{where}: expected a whole number >= {low}, got {value!r}")


def _seconds(value: Any, where: str, *, strict: bool = False) -> float:
    """A duration: seconds, or a string with a unit ("90s", "2min"), as the scenario schema reads them."""
    try:
        seconds = float(parse_duration(value, where))
    except ScenarioError:
        expected = "a duration: seconds, or a number with a unit s, min, h or d"
        raise LoadtestSpecError(f"{where}: expected {expected}, got {value!r}") from None
    if strict and seconds <= 0:
        raise LoadtestSpecError(f"{where}: expected a duration > 0 s, got {value!r}")
    return seconds


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, str) and value in choices:
        return value
    raise LoadtestSpecError(f"{where}: expected one of {', '.join(choices)}, got {value!r}")


def _stage(value: Any, where: str) -> Stage:
    m = _mapping(value, where, ("duration", "users"), ("spawn_rate", "rate"))
    users = _integer(m["users"], f"{where}.users", low=1)
    rate = m.get("rate")
    return Stage(
        duration=_seconds(m["duration"], f"{where}.duration", strict=True),
        users=users,
        spawn_rate=_number(m.get("spawn_rate", users), f"{where}.spawn_rate", strict=True),
        rate=None if rate is None else _number(rate, f"{where}.rate", strict=True),
    )


def _fault(value: Any, where: str) -> Fault:
    if not isinstance(value, Mapping) or "action" not in value:
        raise LoadtestSpecError(f"{where}: expected a mapping with action: {', '.join(ACTIONS)}, got {value!r}")
    action = _choice(value["action"], f"{where}.action", ACTIONS)
    needs_host = action != "stop_core"
    optional = ("host", "service_time_ms") if action == "slow_host" else ("host",) if needs_host else ()
    m = _mapping(value, where, ("at", "action", "duration", *(("host",) if needs_host else ())), optional)
    host = m.get("host")
    if needs_host and not (isinstance(host, str) and _HOST.fullmatch(host)):
        raise LoadtestSpecError(f"{where}.host: expected an agency host name like host-0, got {host!r}")
    service = m.get("service_time_ms")
    if action == "slow_host" and service is None:
        raise LoadtestSpecError(f"{where}.service_time_ms: missing; a slow host needs its mean service time")
    return Fault(
        at=_seconds(m["at"], f"{where}.at"),
        action=action,  # type: ignore[arg-type]
        duration=_seconds(m["duration"], f"{where}.duration", strict=True),
        host=host,
        service_time_ms=0.0 if service is None else _number(service, f"{where}.service_time_ms", strict=True),
    )


def _budget(value: Any, where: str) -> Budget:
    m = _mapping(value, where, (), ("errors", "p99_ms"))
    errors = _number(m.get("errors", DEFAULT_ERROR_BUDGET), f"{where}.errors")
    if errors > 1:
        raise LoadtestSpecError(f"{where}.errors: expected a share between 0 and 1, got {errors!r}")
    p99 = m.get("p99_ms")
    return Budget(errors=errors, p99_ms=None if p99 is None else _number(p99, f"{where}.p99_ms", strict=True))


def _check_faults(spec: LoadtestSpec, where: str) -> None:
    # two faults on one process at once would undo each other's restarts
    for i, a in enumerate(spec.faults):
        if a.at >= spec.duration:
            raise LoadtestSpecError(
                f"{where}.faults[{i}].at: expected a time before the load ends ({spec.duration:g} s)"
            )
        for j, b in enumerate(spec.faults[:i]):
            if a.host == b.host and a.at < b.until and b.at < a.until:
                target = a.host or "the core"
                raise LoadtestSpecError(
                    f"{where}.faults[{i}]: overlaps faults[{j}] on {target}; expected one at a time"
                )


# ---------------------------------------------------------------- the mix
def _mix(value: Any, where: str, base_dir: Path) -> Mix:
    if isinstance(value, Mapping) and "from" in value:
        from loadtests.mix import mix_from_scenario  # reads a whole simulation scenario: only when asked

        m = _mapping(value, where, ("from",), ("at",))
        at = _seconds(m["at"], f"{where}.at") if "at" in m else None
        return mix_from_scenario(_scenario_path(m["from"], f"{where}.from", base_dir), at, where)
    m = _mapping(value, where, (), tuple(USER_KINDS))
    weights = {user: _kind_weights(m[user], f"{where}.{user}", USER_KINDS[user]) for user in m}
    if sum(sum(k.values()) for k in weights.values()) <= 0:
        raise LoadtestSpecError(f"{where}: expected at least one positive weight, got {value!r}")
    return Mix(weights=weights)


def _kind_weights(value: Any, where: str, kinds: tuple[str, ...]) -> dict[str, float]:
    m = _mapping(value, where, (), kinds)
    return {kind: _number(w, f"{where}.{kind}") for kind, w in m.items()}


def _scenario_path(value: Any, where: str, base_dir: Path) -> Path:
    if not isinstance(value, str) or not value:
        raise LoadtestSpecError(f"{where}: expected the file name of a simulation scenario, got {value!r}")
    for folder in (base_dir, _shipped()):
        if (folder / value).is_file():
            return folder / value
    raise LoadtestSpecError(f"{where}: expected a scenario file relative to {base_dir} or {_shipped()}, got {value!r}")


def _shipped() -> Path:
    """The folder of the scenarios shipped with the package."""
    return Path(str(files("scenarios")))


def _folder_of(where: str) -> Path:
    """The folder of the file `where` starts with ("dir/x.yaml: loadtest" -> dir), else the shipped scenarios."""
    name = where.split(": ", 1)[0].split(" (extends", 1)[0]
    path = Path(name)
    return path.parent if path.suffix in (".yaml", ".yml") and path.is_file() else _shipped()
