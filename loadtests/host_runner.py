"""An agency host restarted on the port it had: how a fault brings a killed host back.

The core reads the hosts' addresses once, at start (DIR/hosts.json), so a host that comes back
must listen where it did. `agencies.host` binds a free port; this runs the very same servicer
(`agencies.host.AgencyHost`, its inbox, health and identity) on a given port instead, retrying
while the old socket is still being released.

    python -m loadtests.host_runner --state DIR --name host-K --agencies-file F --seed S \\
        --port PORT --port-file FILE [--service-time-ms X] [--exit-with-parent]

Until `agencies.host.start_host` takes a port (a one-line change asked of its owner), this
module repeats its few lines of server set-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agencies.host import SERVER_OPTIONS, SERVICE_NAME, AgencyHost, RunningHost, ServiceTime
from agencies.inbox import Inbox, inbox_path
from crossroads.domain import AgencyId
from crossroads.pki import server_credentials
from protos import services_pb2_grpc

__all__ = ["BIND_TIMEOUT_S", "main", "start_host_on"]

BIND_TIMEOUT_S = 10.0  # a killed host's port is free again at once on Linux; this is a ceiling
_PARENT_POLL_S = 0.5


async def _bound_server(port: int, credentials: grpc.ServerCredentials, deadline: float) -> Any:
    while True:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        try:
            server.add_secure_port(f"127.0.0.1:{port}", credentials)
            return server
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def start_host_on(
    port: int, state: Path, name: str, agencies: Sequence[AgencyId], seed: int, service_time: ServiceTime
) -> RunningHost:
    """Start host `name` on 127.0.0.1:`port` (as `agencies.host.start_host` does on a free port)."""
    credentials = server_credentials(state / "pki", name)
    server = await _bound_server(port, credentials, time.monotonic() + BIND_TIMEOUT_S)
    inbox = Inbox(inbox_path(state, name))
    servicer = AgencyHost(agencies, seed, inbox, service_time=service_time)
    services_pb2_grpc.add_AgencyServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    await server.start()
    for service in ("", SERVICE_NAME):
        await checker.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningHost(server, port, checker, inbox)


async def _serve(args: argparse.Namespace) -> None:
    agencies = [AgencyId(a) for a in json.loads(Path(args.agencies_file).read_text())]
    service_time = ServiceTime.seeded(args.service_time_ms, args.seed, args.name)
    host = await start_host_on(args.port, Path(args.state), args.name, agencies, args.seed, service_time)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    tmp = Path(args.port_file).with_name(f".{Path(args.port_file).name}.tmp")
    tmp.write_text(f"{host.port}\n")
    os.replace(tmp, args.port_file)
    print(f"{args.name}: serving {len(agencies)} agencies on {host.address} again", file=sys.stderr, flush=True)
    while not stop.is_set():
        if args.exit_with_parent and os.getppid() != parent:
            break  # whoever restarted us is gone: do not outlive it
        try:
            await asyncio.wait_for(stop.wait(), timeout=_PARENT_POLL_S)
        except TimeoutError:
            continue
    await host.stop()
    print(f"{args.name}: stopped", file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtests.host_runner", description=__doc__.split("\n\n")[0])
    p.add_argument("--state", required=True, help="state folder of the live network")
    p.add_argument("--name", required=True, help="the host's identity, e.g. host-1")
    p.add_argument("--agencies-file", required=True, help="JSON list of the agency ids it answers for")
    p.add_argument("--seed", type=int, required=True, help="the world's seed")
    p.add_argument("--port", type=int, required=True, help="the port it listened on before")
    p.add_argument("--port-file", required=True, help="where to write the port once serving")
    p.add_argument("--service-time-ms", type=float, default=0.0, help="mean service time per message (0 = none)")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the starting process dies")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(_serve(_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
