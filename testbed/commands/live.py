"""`crossroads up` and `crossroads status`: run the live network in the foreground, ask how it is."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from scenarios.shipped import default_scenario
from testbed.commands.arguments import add_command, add_hosts, add_state, failed
from testbed.live import DEFAULT_HOSTS, DEFAULT_SERVICE_TIME_MS, LiveNetwork, LiveNetworkError, bring_up, status

WATCH_S = 1.0  # how often a running network is checked for a process that died

_UP_HELP = """\
Build the world of SCENARIO (once: reused while the scenario is unchanged), issue the network's
certificates, start the agency hosts and the crossroads core on 127.0.0.1, and wait until all
answer health checks. Then it stays in the foreground until Ctrl-C or SIGTERM, and stops
everything (the core first, then the hosts). Clients find the addresses in STATE/endpoints.json
and their certificates in STATE/pki/identities/NAME.pem (network CA: STATE/pki/ca.pem).
"""

_STATUS_HELP = """\
Ask the core and every agency host of the network in STATE for their health (grpc.health.v1,
over mutual TLS as the "admin" identity) and print JSON: per process SERVING, NOT_SERVING or
UNREACHABLE, whether its pid is alive, its resident memory. Exit code 0 when all are SERVING.
"""


def register(sub: Any) -> None:
    """Add `up` and `status` to the `crossroads` sub-commands."""
    up = add_command(sub, "up", run_up, help_text="bring the live network up and keep it running", description=_UP_HELP)
    up.add_argument("scenario", nargs="?", type=Path, help="world scenario YAML (default: the shipped demo.yaml)")
    add_state(up, "state folder (world files, pki, logs, endpoints.json)")
    add_hosts(up, DEFAULT_HOSTS)
    up.add_argument(
        "--service-time-ms",
        type=float,
        default=DEFAULT_SERVICE_TIME_MS,
        help="mean time an agency takes to answer, exponential, seeded (default 0: at once)",
    )
    what = "health of a running live network, as JSON"
    status = add_command(sub, "status", run_status, help_text=what, description=_STATUS_HELP)
    add_state(status, "state folder given to `crossroads up`")


class _Signals:
    """SIGINT/SIGTERM while starting interrupt the start (which stops what it began); later they ask to stop."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.starting = True
        self._previous: dict[int, Any] = {}

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.asked.set()
        if self.starting:
            raise KeyboardInterrupt

    def __enter__(self) -> _Signals:
        self._previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _watch(network: LiveNetwork, asked: threading.Event) -> int:
    """Block until asked to stop (0) or until a process of the network dies (1)."""
    while not asked.wait(WATCH_S):
        dead = network.dead()
        if dead:
            print(f"crossroads up: {', '.join(dead)} exited; stopping the network", file=sys.stderr)
            return 1
    return 0


def run_up(args: argparse.Namespace) -> int:
    scenario = args.scenario or default_scenario()
    with _Signals() as signals:
        try:
            network = bring_up(scenario, args.state, hosts=args.hosts, service_time_ms=args.service_time_ms)
        except LiveNetworkError as exc:
            return failed("up", str(exc), 1)
        except KeyboardInterrupt:
            return failed("up", "interrupted while starting; nothing left running", 130)
        signals.starting = False
        print(f"crossroads up: serving; endpoints in {network.endpoints_path} (Ctrl-C to stop)", flush=True)
        code = _watch(network, signals.asked)
        network.stop()  # a second Ctrl-C only sets the event again: the stop runs to its end
    print(f"crossroads up: stopped; endpoints were in {network.endpoints_path}", flush=True)
    return code


def run_status(args: argparse.Namespace) -> int:
    report = status(args.state)
    print(json.dumps(report, indent=2))
    return 0 if report["serving"] else 1
