"""The `loadtest:` section of a scenario: what a live load test sends, how hard, and what breaks.

Validate-then-build, with the scenario's kit (`scenarios.documents`):
`LoadtestSpec.from_mapping(data, where)` validates the section with the `LoadtestSection` model
(every key, type and value; the defaults are the `DEFAULT_*` constants below), then builds a
frozen spec; a refusal is a `LoadtestSpecError` (a `ScenarioError`) naming the file, the YAML
path, what was expected and, for a file, the line and column, e.g.

    scenarios/loadtest_smoke.yaml: loadtest.stages[1].rate: expected a number > 0, got int -5 (line 40, column 39)

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
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import ConfigDict, Discriminator, Field, Tag, model_validator

from agencies.spec import WorldSpec
from loadtests.mix import Mix, mix_from_scenario
from scenarios.documents import Document, ScenarioError, read_yaml
from scenarios.schema import load_scenario
from scenarios.shipped import shipped_folder
from scenarios.values import (
    Amount,
    Count,
    Duration,
    PositiveDuration,
    PositiveNumber,
    Section,
    Share,
    Text,
    keys,
    length,
    matching,
    refused,
    whole,
)

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
    "LoadtestSection",
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
DEFAULT_ARRIVALS: Final = "poisson"
ARRIVALS = ("poisson", "uniform")
DEFAULT_CONNECT: Final = "first_use"
CONNECTS = ("first_use", "all")
ACTIONS = ("kill_host", "stop_core", "slow_host")
# which kinds of message each kind of user sends (names of crossroads.domain.Kind)
USER_KINDS: Mapping[str, tuple[str, ...]] = {
    "employer": ("DIMONA", "DMFA", "DRS"),
    "agency": ("CONSULTATION", "INTEGRATION", "DEINTEGRATION", "MUTATION"),
    "citizen": ("CONSULTATION",),
}


class LoadtestSpecError(ScenarioError):
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

    __pydantic_config__ = ConfigDict(extra="forbid")

    errors: Share = DEFAULT_ERROR_BUDGET
    p99_ms: PositiveNumber | None = None


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
    arrivals: Literal["poisson", "uniform"] = DEFAULT_ARRIVALS
    drain: float = DEFAULT_DRAIN_S
    # "all": each Locust process connects every agency before the users send (a connection is
    # ~80 kB at each end: with "first_use", memory grows while agencies make first contact)
    connect: Literal["first_use", "all"] = DEFAULT_CONNECT

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str, *, base_dir: Path | None = None) -> LoadtestSpec:
        """Validate the `loadtest:` mapping `data` found at `where` (e.g. "x.yaml: loadtest").

        `mix: {from: FILE}` is read relative to `base_dir`; without it, relative to the folder of
        the file named at the start of `where`, else to the shipped scenarios. Raises
        `LoadtestSpecError` naming the YAML path and what was expected.
        """
        doc = Document(data, where, LoadtestSpecError)
        return doc.validate(LoadtestSection).build(doc, base_dir or _folder_of(where))

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
    data = read_yaml(path, LoadtestSpecError)
    if not isinstance(data, Mapping) or "loadtest" not in data:
        raise LoadtestSpecError(str(path), "expected a mapping with a top-level 'loadtest:' key")
    return LoadtestSpec.from_mapping(data["loadtest"], f"{path}: loadtest", base_dir=Path(path).parent)


# ---------------------------------------------------------------- the section as written


class LoadStage(Section):
    """One step of the load shape: `users` users for `duration`."""

    duration: PositiveDuration
    users: Annotated[int, whole(1)]
    spawn_rate: PositiveNumber | None = None
    """Users started (or stopped) per second when the count changes (default: all at once)."""
    rate: PositiveNumber | None = None
    """Requests per second over all users (open loop); none: closed loop, no waiting."""

    def build(self) -> Stage:
        spawn_rate = float(self.users) if self.spawn_rate is None else self.spawn_rate
        return Stage(duration=self.duration, users=self.users, spawn_rate=spawn_rate, rate=self.rate)


class _Fault(Section):
    at: Duration
    """Seconds after the load starts."""
    duration: PositiveDuration


_Host = Annotated[str, matching(r"^host-\d+$", "an agency host name like host-0")]


class KillHost(_Fault):
    """SIGKILL the agency host `host`, restart it (same port, same agencies) after `duration`."""

    action: Literal["kill_host"]
    host: _Host


class StopCore(_Fault):
    """SIGSTOP the core, SIGCONT after `duration`."""

    action: Literal["stop_core"]


class SlowHost(_Fault):
    """Restart `host` with a mean service time of `service_time_ms`, and back to its own after `duration`."""

    action: Literal["slow_host"]
    host: _Host
    service_time_ms: PositiveNumber


def _kinds(user: str) -> Any:
    return keys(USER_KINDS[user])


class ExplicitMix(Section):
    """Relative weights of what the users send, per kind of user and kind of message."""

    employer: Annotated[Mapping[str, Amount], _kinds("employer")] = {}
    agency: Annotated[Mapping[str, Amount], _kinds("agency")] = {}
    citizen: Annotated[Mapping[str, Amount], _kinds("citizen")] = {}

    @model_validator(mode="after")
    def _positive(self) -> ExplicitMix:
        if sum(sum(w.values()) for w in (self.employer, self.agency, self.citizen)) <= 0:
            raise refused("at least one positive weight", got=str(self.model_dump(include=self.model_fields_set)))
        return self


class MixFrom(Section):
    """The traffic of a simulation scenario: year-average rate x multiplier of each source, times the
    surges active `at` that simulated time."""

    scenario: Text = Field(alias="from")
    """The scenario's file, relative to this one (else a shipped scenario)."""
    at: Duration | None = None


def _mix_kind(value: Any) -> str:
    return "a scenario's traffic" if isinstance(value, Mapping) and "from" in value else "weights"


class LoadtestSection(Section):
    """A live load test: what the users send, how hard, and what breaks (loadtests/spec.py)."""

    seed: Count = DEFAULT_SEED
    """Per-user random streams derive from it."""
    mix: Annotated[
        Annotated[ExplicitMix, Tag("weights")] | Annotated[MixFrom, Tag("a scenario's traffic")],
        Discriminator(_mix_kind),
    ]
    stages: Annotated[list[LoadStage], length(1, None, "at least one stage")]
    """The load shape, one stage after another."""
    faults: tuple[Annotated[KillHost | StopCore | SlowHost, Field(discriminator="action")], ...] = ()
    """Timed faults, seconds after the load starts; one at a time per process."""
    budget: Annotated[Budget, keys(("errors", "p99_ms"))] = Budget()
    """The run fails above these."""
    timeout: PositiveDuration = DEFAULT_TIMEOUT_S
    """The gRPC deadline of one exchange."""
    max_lag: PositiveDuration = DEFAULT_MAX_LAG_S
    """Open loop: a send this late is dropped and counted as an error."""
    arrivals: Literal["poisson", "uniform"] = DEFAULT_ARRIVALS
    """How the open-loop sends of a user are spaced."""
    drain: Duration = DEFAULT_DRAIN_S
    """How long the outbox may take to empty before the checks."""
    connect: Literal["first_use", "all"] = DEFAULT_CONNECT
    """"all": every agency connects before it sends (steady memory)."""

    def build(self, doc: Document, base_dir: Path) -> LoadtestSpec:
        """The spec of this validated section (`doc`: the section as read, for refusals)."""
        spec = LoadtestSpec(
            **self.model_dump(include={"seed", "timeout", "max_lag", "arrivals", "drain", "connect"}),
            mix=self._mix(doc, base_dir),
            stages=tuple(s.build() for s in self.stages),
            faults=tuple(Fault(**f.model_dump()) for f in self.faults),
            budget=self.budget,
        )
        _check_faults(doc, spec)
        return spec

    def _mix(self, doc: Document, base_dir: Path) -> Mix:
        if isinstance(self.mix, ExplicitMix):
            return Mix(weights=self.mix.model_dump(include=self.mix.model_fields_set))
        path = _scenario_path(doc, self.mix.scenario, base_dir)
        try:
            scenario = load_scenario(path, WorldSpec.from_mapping)
        except ValueError as exc:
            raise doc.refuse(("mix", "from"), f"the scenario {path} is not valid: {exc}") from None
        mix = mix_from_scenario(scenario, self.mix.at, path.name)
        if not mix.weights:
            raise doc.refuse(("mix", "from"), f"the scenario {path} has no traffic with a positive rate")
        return mix


def _check_faults(doc: Document, spec: LoadtestSpec) -> None:
    # two faults on one process at once would undo each other's restarts
    for i, a in enumerate(spec.faults):
        if a.at >= spec.duration:
            raise doc.expected(("faults", i, "at"), f"a time before the load ends ({spec.duration:g} s)", a.at)
        for j, b in enumerate(spec.faults[:i]):
            if a.host == b.host and a.at < b.until and b.at < a.until:
                target = a.host or "the core"
                raise doc.refuse(("faults", i), f"overlaps faults[{j}] on {target}; expected one at a time")


def _scenario_path(doc: Document, name: str, base_dir: Path) -> Path:
    if not name:
        raise doc.expected(("mix", "from"), "the file name of a simulation scenario", name)
    for folder in (base_dir, shipped_folder()):
        if (folder / name).is_file():
            return folder / name
    raise doc.expected(("mix", "from"), f"a scenario file relative to {base_dir} or {shipped_folder()}", name)


def _folder_of(where: str) -> Path:
    """The folder of the file `where` starts with ("dir/x.yaml: loadtest" -> dir), else the shipped scenarios."""
    name = where.split(": ", 1)[0].split(" (extends", 1)[0]
    path = Path(name)
    return path.parent if path.suffix in (".yaml", ".yml") and path.is_file() else shipped_folder()
