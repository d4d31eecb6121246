"""What the users of one Locust process share: options, the spec, the world, channels, the request log.

Locust passes its options (with ours, below) to every process, also to workers on other
machines (with each spawn message). A `RunContext` is made from them once per process, by the
first user that starts (so after any fork, as gRPC requires), and kept on the Locust
environment. Nothing here runs at import.

Our options, each also read from an environment variable:
  --crossroads-state DIR       the live network's state folder (`crossroads up --state DIR`):
                               endpoints.json, pki/, world.json          [CROSSROADS_STATE]
  --crossroads-scenario FILE   the scenario with the `loadtest:` section (default: the shipped
                               loadtest_smoke.yaml)                       [CROSSROADS_SCENARIO]
  --crossroads-world FILE      the scenario the network was brought up with (its `world:`);
                               default: the load-test scenario            [CROSSROADS_WORLD]
  --crossroads-out DIR         where each process writes its request log (default:
                               DIR/loadtest)                              [CROSSROADS_OUT]
  --crossroads-run-id ID       prefix of every message id (default: random per process)
  --crossroads-users N, --crossroads-rate R, --crossroads-duration S
                               one stage of N users at R requests/s for S seconds instead of
                               the scenario's stages (what is not given comes from the scenario)
  --crossroads-target core|proxy:host-K
                               core (default): exchanges with the crossroads core; proxy:host-K:
                               consultations delivered straight to agencies of host-K through
                               the raw one-hop proxy at --host (the baseline of the benchmark)
--host is the core's address ("127.0.0.1:PORT", "grpcs://" allowed); default: endpoints.json.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.domain import AgencyId
from loadtests.client import Channels
from loadtests.record import RequestLog
from loadtests.spec import USER_KINDS, LoadtestSpec, load_loadtest_spec
from scenarios.shipped import default_loadtest

__all__ = [
    "RunContext",
    "RunOptions",
    "add_arguments",
    "connect_all",
    "context_of",
    "existing_context",
    "mark_started",
    "options_of",
]

CONNECT_CONCURRENCY = 32  # handshakes in flight when every agency connects up front
STARTED_FILE = "started.json"  # written by the master when the load starts: the faults' time zero
_ATTR = "crossroads_context"
_LOCK_ATTR = "crossroads_context_lock"
_STARTED_ATTR = "crossroads_started"
_USER_KINDS = tuple(USER_KINDS)


def add_arguments(parser: Any) -> None:
    """Add our options to Locust's parser (the `init_command_line_parser` event)."""
    group = parser.add_argument_group("crossroads", "the live crossroads network under test (loadtests/context.py)")
    group.add_argument("--crossroads-state", env_var="CROSSROADS_STATE", help="state folder of the live network")
    group.add_argument("--crossroads-scenario", env_var="CROSSROADS_SCENARIO", help="scenario with a loadtest: section")
    group.add_argument(
        "--crossroads-world", env_var="CROSSROADS_WORLD", help="scenario the network was brought up with"
    )
    group.add_argument("--crossroads-out", env_var="CROSSROADS_OUT", help="folder for the request logs")
    group.add_argument("--crossroads-run-id", env_var="CROSSROADS_RUN_ID", help="prefix of every message id")
    group.add_argument("--crossroads-users", type=int, help="users (one stage instead of the scenario's)")
    group.add_argument("--crossroads-rate", type=float, help="target requests per second over all users")
    group.add_argument("--crossroads-duration", type=float, help="seconds of load")
    group.add_argument("--crossroads-target", default="core", help="core, or proxy:host-K (the raw one-hop baseline)")


@dataclass(frozen=True, kw_only=True, slots=True)
class RunOptions:
    """Our options, resolved: paths made absolute, defaults filled in."""

    state: Path
    scenario: Path
    world: Path
    out: Path
    run_id: str | None
    users: int | None
    rate: float | None
    duration: float | None
    target: str

    def spec(self) -> LoadtestSpec:
        return load_loadtest_spec(self.scenario).with_overrides(
            users=self.users, rate=self.rate, duration=self.duration
        )


def options_of(parsed: Any) -> RunOptions:
    """Our options out of Locust's parsed options; ValueError naming the option if one is missing."""
    state = getattr(parsed, "crossroads_state", None)
    if not state:
        raise ValueError("--crossroads-state (or CROSSROADS_STATE) is required: the live network's state folder")
    scenario = Path(getattr(parsed, "crossroads_scenario", None) or default_loadtest()).resolve()
    return RunOptions(
        state=Path(state).resolve(),
        scenario=scenario,
        world=Path(getattr(parsed, "crossroads_world", None) or scenario).resolve(),
        out=Path(getattr(parsed, "crossroads_out", None) or Path(state) / "loadtest").resolve(),
        run_id=getattr(parsed, "crossroads_run_id", None),
        users=getattr(parsed, "crossroads_users", None),
        rate=getattr(parsed, "crossroads_rate", None),
        duration=getattr(parsed, "crossroads_duration", None),
        target=getattr(parsed, "crossroads_target", None) or "core",
    )


def _address(host: str | None, state: Path) -> str:
    if host:
        return host.split("://", 1)[-1].rstrip("/")
    endpoints = state / "endpoints.json"
    if not endpoints.exists():
        raise ValueError(f"no --host given and no {endpoints}: is the network up (`crossroads up --state {state}`)?")
    return str(json.loads(endpoints.read_text())["core"])


def _world(options: RunOptions) -> World:
    spec = load_world_spec(options.world)
    marker = options.state / "world.json"
    if marker.exists():
        seed = json.loads(marker.read_text()).get("seed")
        if seed != spec.seed:
            raise ValueError(
                f"{options.world} describes the world of seed {spec.seed}, but the network in {options.state} "
                f"runs the world of seed {seed}: give --crossroads-world the scenario it was brought up with"
            )
    return World.build(spec)


def _proxy_agencies(target: str, state: Path) -> tuple[AgencyId, ...]:
    if target == "core":
        return ()
    host = target.removeprefix("proxy:")
    if not target.startswith("proxy:") or not host:
        raise ValueError(f"--crossroads-target: expected core or proxy:host-K, got {target!r}")
    hosts = json.loads((state / "hosts.json").read_text())["hosts"]
    for h in hosts:
        if h["name"] == host:
            return tuple(AgencyId(a) for a in h["agencies"])
    raise ValueError(f"--crossroads-target: no host {host!r} in {state / 'hosts.json'}")


@dataclass(kw_only=True)
class RunContext:
    """The shared state of the users of one process (see the module doc)."""

    options: RunOptions
    spec: LoadtestSpec
    world: World
    channels: Channels
    log: RequestLog
    run_id: str
    worker_index: int
    proxy_agencies: tuple[AgencyId, ...]
    started: float = field(default_factory=time.monotonic)  # the load's time zero in this process
    _serials: itertools.count[int] = field(default_factory=itertools.count)
    _wall_offset: float = field(default_factory=lambda: time.time() - time.monotonic())

    def next_serial(self) -> int:
        """A number for the next user started in this process."""
        return next(self._serials)

    def user_rng(self, user: str, serial: int) -> np.random.Generator:
        """The random stream of one user: from the spec's seed, this process's index, the user."""
        key = (self.worker_index, _USER_KINDS.index(user), serial)
        return np.random.default_rng(np.random.SeedSequence(self.spec.seed, spawn_key=key))

    def wall(self, monotonic: float) -> float:
        """A monotonic time of this process as UNIX time (for logs compared across processes)."""
        return monotonic + self._wall_offset

    def elapsed(self) -> float:
        """Seconds since the load started."""
        return time.monotonic() - self.started


def context_of(environment: Any) -> RunContext:
    """The process's RunContext, made on first use from the environment's options.

    Users start concurrently (greenlets), and making the context yields (the world is built,
    files are read): a lock makes the first user build it and the others wait for that one.
    """
    found: RunContext | None = getattr(environment, _ATTR, None)
    if found is not None:
        return found
    # no yield between the look-up and the store: under gevent this setdefault is atomic
    lock: threading.Lock = vars(environment).setdefault(_LOCK_ATTR, threading.Lock())
    with lock:
        found = getattr(environment, _ATTR, None)
        if found is None:
            found = _make_context(environment)
            if found.spec.connect == "all":
                connect_all(found)
            setattr(environment, _ATTR, found)
    return found


def connect_all(context: RunContext) -> None:
    """Open a channel for every agency of the world, some at a time (spec `connect: all`).

    The users of the process wait meanwhile (they are starting); the load's clock runs on, so a
    warm-up stage should cover it (a few seconds for ~3,000 agencies).
    """
    import gevent.pool  # only under Locust: nothing else of ours imports gevent

    pool = gevent.pool.Pool(CONNECT_CONCURRENCY)
    timeout = context.spec.timeout
    pool.map(lambda agency: context.channels.connect(agency.id, timeout), context.world.agencies)


def mark_started(environment: Any) -> None:
    """Note that the load starts now (Locust's test_start): the stages of this process count from here."""
    setattr(environment, _STARTED_ATTR, time.monotonic())


def existing_context(environment: Any) -> RunContext | None:
    """The process's RunContext if a user has made it, else None."""
    found: RunContext | None = getattr(environment, _ATTR, None)
    return found


def _make_context(environment: Any) -> RunContext:
    options = options_of(environment.parsed_options)
    runner = environment.runner
    return RunContext(
        options=options,
        spec=options.spec(),
        world=_world(options),
        channels=Channels(_address(environment.host, options.state), options.state / "pki"),
        log=RequestLog(options.out),
        run_id=options.run_id or os.urandom(4).hex(),
        worker_index=int(getattr(runner, "worker_index", 0) or 0),
        proxy_agencies=_proxy_agencies(options.target, options.state),
        started=getattr(environment, _STARTED_ATTR, None) or time.monotonic(),
    )
