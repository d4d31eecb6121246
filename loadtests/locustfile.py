"""Locust against the live crossroads core: `locust -f loadtests/locustfile.py --crossroads-state DIR`.

Against a network started with `crossroads up [SCENARIO] --state DIR`:

    locust -f loadtests/locustfile.py --headless --crossroads-state DIR \\
        [--crossroads-scenario scenarios/loadtest_smoke.yaml] [--crossroads-world SCENARIO] \\
        [--host 127.0.0.1:PORT] [--processes K] [--csv PREFIX --html FILE]

The users (loadtests/users.py) speak gRPC with mutual TLS, as the agencies they send for; the
mix of users and kinds and the load shape (stages of users and target rates) come from the
scenario's `loadtest:` section (loadtests/spec.py); every request is also logged per process
for the audit checks (loadtests/record.py). Our options are listed in loadtests/context.py
(Locust prints its --help before it reads a locustfile, so they are not shown there).
Distributed runs use Locust's own flags: `--processes K` on one machine, or `--master` here and
`--worker --master-host H` on other machines (each worker needs a copy of DIR/pki,
DIR/world.json and the scenario files; its request log stays where its --crossroads-out points).
Timed faults are applied by `crossroads loadtest`, not by Locust alone.

This file is the one place that patches: gRPC is made gevent-cooperative here, at import,
before any channel exists (Locust's way for gRPC; channels are made in the users' on_start).
"""

from __future__ import annotations

import json
import time
from typing import Any

import grpc.experimental.gevent as grpc_gevent
from locust import events
from locust.runners import WorkerRunner

from loadtests.context import STARTED_FILE, add_arguments, existing_context, mark_started, options_of
from loadtests.shape import ScenarioShape
from loadtests.users import AgencyUser, CitizenUser, EmployerUser, RawHopUser

grpc_gevent.init_gevent()

__all__ = ["AgencyUser", "CitizenUser", "EmployerUser", "RawHopUser", "ScenarioShape"]


def _arguments(parser: Any, **_: Any) -> None:
    add_arguments(parser)


def _weights(environment: Any, runner: Any = None, **_: Any) -> None:
    """Spread the users over the classes by the mix (the master decides; workers get told whom to run)."""
    if isinstance(runner, WorkerRunner):
        return
    options = options_of(environment.parsed_options)
    shares = options.spec().mix.user_weights()
    raw_hop = options.target != "core"
    for cls in (EmployerUser, AgencyUser, CitizenUser):
        cls.weight = 0 if raw_hop else shares.get(cls.user_kind, 0.0)
    RawHopUser.weight = 1 if raw_hop else 0


def _started(environment: Any, **_: Any) -> None:
    """Time zero of the load: the users' stages count from here, and so do the orchestrator's faults."""
    mark_started(environment)
    if isinstance(environment.runner, WorkerRunner):
        return
    out = options_of(environment.parsed_options).out
    out.mkdir(parents=True, exist_ok=True)
    (out / STARTED_FILE).write_text(json.dumps({"wall": time.time()}) + "\n")


def _flush(environment: Any, **_: Any) -> None:
    context = existing_context(environment)
    if context is not None:
        context.log.flush()


def _close(environment: Any, **_: Any) -> None:
    context = existing_context(environment)
    if context is not None:
        context.log.close()
        context.channels.close()


events.init_command_line_parser.add_listener(_arguments)
events.init.add_listener(_weights)
events.test_start.add_listener(_started)
events.test_stop.add_listener(_flush)
events.quitting.add_listener(_close)
