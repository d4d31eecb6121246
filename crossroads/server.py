"""The crossroads core as a grpc.aio server: every exchange between agencies passes here.

    python -m crossroads.server --state DIR [--port 0] --port-file FILE [--exit-with-parent]

reads DIR/knowledge.json, DIR/directory.sqlite, DIR/hosts.json and DIR/pki, keeps its audit
log (DIR/audit.sqlite, DIR/keys/) and outbox (DIR/outbox.sqlite) in DIR, binds 127.0.0.1
(mutual TLS required, identity "core"), writes the port to FILE once serving, and stops
gracefully on SIGTERM or SIGINT (health NOT_SERVING, calls in flight finish within the grace
period, the outbox and the audit log are flushed and closed).

Services: crossroads.v1.Crossroads (thin: the envelope arrives as raw bytes and goes to
`exchange.Exchange`, which forwards those very bytes), crossroads.v1.Audit, grpc.health.v1
(SERVING once ready) and server reflection.

Where the time of one routed consultation goes (`crossroads bench core`: one agency host, the
same load generator for the core and a raw mTLS proxy, 327 sending agencies; 2-core shared
machine, grpcio 1.75.0; CPU = user+sys of the process per call, all its threads, medians):
- the two gRPC hops dominate: the raw proxy (testbed/proxy.py) spends ~230-245 us per call,
  the core ~335-370 us; the core reduced to authenticate + forward (no validation, routing
  or audit) ~260-285 us;
- the exchange's own Python takes ~21 us per call in a tight loop (validation ~7, routing ~3,
  audit record ~5 of which `audit_time` ~3, reply ~3), two to three times that in the running
  core among gRPC's work;
- the durable audit append costs ~20-30 us per call: a commit costs ~135 us of CPU (fsync,
  WAL frames) plus ~10 us per record, so the writer lets appends gather for up to 8 ms under
  concurrent load (~20 per commit at ~2.7k/s; before, nearly every record had a commit of its
  own: ~100-150 us per call), and no longer re-hashes the partial tile on every commit;
- gRPC's aio server leaves a reference cycle per call; `_tune_gc` cut the collector from ~12
  to ~3 us per call. BDP probing is off on the core's own hops (~10-20 us per call per side,
  on loopback, for nothing); the proxy uses the same settings.
The core's Python runs under one GIL, so it saturates one CPU at ~2.8-3k consultations/s
(from ~128 in flight); throughput at 64 / 128 / 256 in flight, 5 alternating 10 s runs each:
core 2.77k / 2.93k / 2.63k vs proxy 3.46k / 3.51k / 3.35k req/s (0.80 / 0.83 / 0.79x). The
same benchmark on the code before this tuning (3 runs each): 0.67 / 0.72 / 0.58x, the core at
~425-490 us per call.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import os
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from crossroads.audit import AuditLog
from crossroads.audit_service import AuditServicer
from crossroads.directory import DirectoryStore
from crossroads.exchange import AUDIT_INDEX_KEY, Exchange, Refusal, redelivery_target
from crossroads.forwarder import LOOPBACK_HTTP2_OPTIONS, Forwarder, load_hosts
from crossroads.knowledge_io import load_knowledge
from crossroads.outbox import Outbox, Redelivery
from crossroads.pki import CORE, channel_credentials, peer_identity, server_credentials
from crossroads.request_guard import SayingHealthServicer, TolerantRegistration
from protos import services_pb2, services_pb2_grpc

__all__ = [
    "DEFAULT_DIRECTORY_CACHE",
    "DEFAULT_FORWARD_DEADLINE",
    "DEFAULT_GRACE",
    "DEFAULT_HOST",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_RETRY_INITIAL",
    "DEFAULT_RETRY_MAX",
    "CoreConfig",
    "CrossroadsServicer",
    "RunningCore",
    "main",
    "serve",
    "start_core",
]

# Every tunable of the core, in one place.
DEFAULT_HOST = "127.0.0.1"  # loopback only: the testbed never listens on another address
DEFAULT_FORWARD_DEADLINE = 2.0  # seconds an agency host has to answer one forward
DEFAULT_RETRY_INITIAL = 0.2  # seconds before the outbox retries an agency that is down
DEFAULT_RETRY_MAX = 5.0  # the retry delay doubles up to this
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # an envelope is at most 64 KiB of payload plus its keys
DEFAULT_DIRECTORY_CACHE = 65_536  # persons whose directory rows stay in memory
DEFAULT_GRACE = 5.0  # seconds calls in flight get to finish on stop
DEFAULT_PARENT_POLL = 0.5  # seconds between checks that the starting process is alive
CROSSROADS_SERVICE = "crossroads.v1.Crossroads"
GC_THRESHOLDS = (10_000, 20, 20)  # young-generation size and the two promotion counts (Python's: 700, 10, 10)


@dataclass(frozen=True, kw_only=True)
class CoreConfig:
    """How to run the core. Only `state` is required; paths inside it follow docs/CONTRACTS.md."""

    state: Path
    port: int = 0  # 0: any free port (read it from `RunningCore.port` or the port file)
    port_file: Path | None = None
    host: str = DEFAULT_HOST
    forward_deadline: float = DEFAULT_FORWARD_DEADLINE
    retry_initial: float = DEFAULT_RETRY_INITIAL
    retry_max: float = DEFAULT_RETRY_MAX
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    directory_cache: int = DEFAULT_DIRECTORY_CACHE
    grace: float = DEFAULT_GRACE
    exit_with_parent: bool = False

    @property
    def pki(self) -> Path:
        return self.state / "pki"


class CrossroadsServicer:
    """crossroads.v1.Crossroads/Exchange: raw envelope bytes in, serialized ExchangeReply out."""

    def __init__(self, exchange: Exchange) -> None:
        self._exchange = exchange

    async def Exchange(self, raw: bytes, context: Any) -> bytes:
        result = await self._exchange.handle(raw, peer_identity(context))
        if isinstance(result, Refusal):
            trailing = () if result.audit_index is None else ((AUDIT_INDEX_KEY, str(result.audit_index)),)
            await context.abort(result.code, result.message, trailing_metadata=trailing)
        return result.SerializeToString()  # type: ignore[union-attr]  # abort raised for a Refusal

    def add_to(self, server: Any) -> None:
        # no (de)serializers: the handler sees the bytes the sender sent, so they can be
        # forwarded without re-encoding
        handlers = {"Exchange": grpc.unary_unary_rpc_method_handler(self.Exchange)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(CROSSROADS_SERVICE, handlers),))
        server.add_registered_method_handlers(CROSSROADS_SERVICE, handlers)


@dataclass
class RunningCore:
    """A started core; `await stop()` shuts it down gracefully."""

    config: CoreConfig
    server: Any
    port: int
    exchange: Exchange
    health: Any
    redelivery: Redelivery
    forwarder: Forwarder
    outbox: Outbox
    audit: AuditLog
    directory: DirectoryStore
    _stopped: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let calls in flight finish, then flush and close the stores. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.config.grace if grace is None else grace)
        await self.redelivery.stop()
        await self.forwarder.close()
        await self.outbox.aclose()
        await self.audit.aclose()
        self.directory.close()


async def start_core(config: CoreConfig) -> RunningCore:
    """Open the state folder, start serving, and return once SERVING (port file written).

    If any step fails, what was already opened or started is closed again before it raises.
    """
    state = config.state
    knowledge = load_knowledge(state / "knowledge.json")
    hosts = load_hosts(state / "hosts.json")
    async with contextlib.AsyncExitStack() as undo:
        directory = DirectoryStore.open(state / "directory.sqlite", cache_size=config.directory_cache)
        undo.callback(directory.close)
        audit = AuditLog.open(state)
        undo.push_async_callback(audit.aclose)
        outbox = Outbox.open(state / "outbox.sqlite")
        undo.push_async_callback(outbox.aclose)
        forwarder = Forwarder(hosts, channel_credentials(config.pki, CORE))
        undo.push_async_callback(forwarder.close)
        exchange = Exchange(
            knowledge=knowledge,
            directory=directory,
            audit=audit,
            forwarder=forwarder,
            outbox=outbox,
            clock=lambda: dt.datetime.now(dt.UTC),
            forward_deadline=config.forward_deadline,
        )
        server, health_servicer = _server(config, exchange, audit)
        port = server.add_secure_port(f"{config.host}:{config.port}", server_credentials(config.pki, CORE))
        await server.start()
        undo.push_async_callback(server.stop, 0)
        redelivery = Redelivery(
            outbox,
            redelivery_target(forwarder, config.forward_deadline),
            initial=config.retry_initial,
            maximum=config.retry_max,
        )
        redelivery.start()
        undo.push_async_callback(redelivery.stop)
        for service in ("", CROSSROADS_SERVICE, "crossroads.v1.Audit"):
            await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
        core = RunningCore(
            config, server, port, exchange, health_servicer, redelivery, forwarder, outbox, audit, directory
        )
        if config.port_file is not None:
            _write_port_file(config.port_file, port)
        undo.pop_all()  # started: from now on `core.stop()` closes everything
    return core


def _server(config: CoreConfig, exchange: Exchange, audit: AuditLog) -> tuple[Any, Any]:
    options = [
        ("grpc.so_reuseport", 0),  # this process must own its port
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", 4 * config.max_message_bytes),
        *LOOPBACK_HTTP2_OPTIONS,
    ]
    server = grpc.aio.server(options=options)
    CrossroadsServicer(exchange).add_to(server)  # takes raw bytes: it says itself what does not parse
    # the others would have gRPC parse their requests and answer UNKNOWN to bytes that are none
    tolerant = TolerantRegistration(server)
    services_pb2_grpc.add_AuditServicer_to_server(AuditServicer(audit), tolerant)  # type: ignore[no-untyped-call]
    health_servicer = SayingHealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, tolerant)
    names = (
        services_pb2.DESCRIPTOR.services_by_name["Crossroads"].full_name,
        services_pb2.DESCRIPTOR.services_by_name["Audit"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    )
    # what reflection.enable_server_reflection does for an aio server, through `tolerant`
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(reflection.aio.ReflectionServicer(names), tolerant)
    return server, health_servicer


def _write_port_file(path: Path, port: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="ascii")
    tmp.replace(path)  # a reader sees no file or the whole port


async def serve(config: CoreConfig) -> None:
    """Run the core until SIGTERM or SIGINT (or the parent's death, if asked), then stop gracefully."""
    core = await start_core(config)
    _tune_gc()
    print(f"core: serving on {core.address}", file=sys.stderr, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    watchers: list[asyncio.Task[Any]] = [loop.create_task(stop.wait())]
    if config.exit_with_parent:
        watchers.append(loop.create_task(_parent_gone(os.getppid())))
    try:
        await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in watchers:
            task.cancel()
        await core.stop()
        print("core: stopped", file=sys.stderr, flush=True)


def _tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running server process.

    gRPC's aio server leaves a small reference cycle behind per call, so collections run all
    the time under load; each full one walked every object loaded at start (knowledge,
    caches) again. Freezing those, and collecting the young generation less often, took the
    collector from ~5% of the core's CPU to about 1%.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


async def _parent_gone(parent: int) -> None:
    while os.getppid() == parent:  # re-parented: whoever started us is gone
        await asyncio.sleep(DEFAULT_PARENT_POLL)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crossroads.server", description=__doc__.split("\n\n")[0])
    p.add_argument("--state", type=Path, required=True, help="the state folder of the live network")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--port-file", type=Path, help="write the port here once serving")
    p.add_argument("--forward-deadline", type=float, default=DEFAULT_FORWARD_DEADLINE, help="seconds per forward")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE, help="seconds calls in flight get on stop")
    p.add_argument("--exit-with-parent", action="store_true", help="stop when the starting process dies")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = CoreConfig(
        state=args.state,
        port=args.port,
        port_file=args.port_file,
        forward_deadline=args.forward_deadline,
        grace=args.grace,
        exit_with_parent=args.exit_with_parent,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
