"""The crossroads core as a grpc.aio server: every exchange between agencies passes here.

    python -m crossroads.server --state DIR [--port 0] --port-file FILE [--exit-with-parent]

(a starter gets that command line from `command`) reads DIR/knowledge.json,
DIR/directory.sqlite, DIR/hosts.json and DIR/pki, keeps its audit log, answers and outbox
(DIR/audit.sqlite, DIR/keys/) in DIR, binds 127.0.0.1 (mutual TLS required, identity "core"),
writes the port to FILE once serving, and stops gracefully on SIGTERM or SIGINT (health
NOT_SERVING, calls in flight finish within the grace period, the outbox and the audit log are
flushed and closed).

Services: crossroads.v1.Crossroads (thin: the envelope arrives as raw bytes and goes to
`exchange.Exchange`, which forwards those very bytes), crossroads.v1.Audit, grpc.health.v1
(SERVING once ready) and server reflection.

Where a call's time goes, and the throughput against a raw proxy, are in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import gc
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from crossroads.admission import DEFAULT_MAX_IN_FLIGHT, LIMITS_FILE, RETRY_AFTER_KEY, Admission, AdmissionPolicy
from crossroads.audit import AuditLog
from crossroads.audit_service import AuditServicer
from crossroads.citizen import CitizenGate
from crossroads.diagnostics import install_from_env
from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId, Knowledge
from crossroads.exchange import AUDIT_INDEX_KEY, Exchange, Refusal, redelivery_target
from crossroads.forwarder import LOOPBACK_HTTP2_OPTIONS, Forwarder, load_hosts
from crossroads.knowledge_io import load_knowledge
from crossroads.outbox import (
    DEFAULT_DEAD_AFTER,
    DEFAULT_RETRY_INITIAL,
    DEFAULT_RETRY_MAX,
    Outbox,
    Redelivery,
    outbox_path,
)
from crossroads.pki import CORE, channel_credentials, peer_name, server_credentials
from crossroads.readiness import EXIT_WITH_PARENT, ServerCommand, StopSignal, write_port_file
from crossroads.request_guard import SayingHealthServicer, TolerantRegistration
from crossroads.revocation import DEFAULT_CHECK_EVERY, Revocation, guarded
from crossroads.switching import apply_from_env
from crossroads.telemetry import Telemetry, TimedAudit, TimedForwarder
from crossroads.thread_names import name_native_threads
from protos import messages_pb2, services_pb2, services_pb2_grpc

__all__ = [
    "DEFAULT_DIRECTORY_CACHE",
    "DEFAULT_FORWARD_DEADLINE",
    "DEFAULT_GRACE",
    "DEFAULT_HOST",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MAX_RPCS",
    "DEFAULT_MAX_STREAMS",
    "CoreConfig",
    "CrossroadsServicer",
    "RunningCore",
    "command",
    "main",
    "serve",
    "start_core",
]

# Every tunable of the core, in one place.
DEFAULT_HOST = "127.0.0.1"  # loopback only: the testbed never listens on another address
DEFAULT_FORWARD_DEADLINE = 2.0  # seconds an agency host has to answer one forward
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024  # an envelope is at most 64 KiB of payload plus its keys
DEFAULT_DIRECTORY_CACHE = 65_536  # persons whose directory rows stay in memory
DEFAULT_GRACE = 5.0  # seconds calls in flight get to finish on stop
# after the grace, calls still in flight are cancelled; a cancelled exchange still writes its
# audit record (crossroads.exchange), and the stores stay open this long more for it
DEFAULT_DRAIN_TAIL = 2.0
# gRPC's own bound on calls in its hands (Exchange, Audit, health): beyond it gRPC answers
# RESOURCE_EXHAUSTED "Concurrent RPC limit exceeded!" before the request is read, so that no
# flood makes the core hold unbounded requests and handler tasks. It is a backstop, far above
# `max_in_flight` (DEFAULT_MAX_IN_FLIGHT, from crossroads.admission): below it the core itself
# answers, audited, so the room between them is for the refusals being audited (THROTTLED,
# SHED: ~1-5 ms each while the audit commits) and the audit and health calls.
DEFAULT_MAX_RPCS = 4 * DEFAULT_MAX_IN_FLIGHT
# HTTP/2 streams one connection may have open. gRPC reads a stream's request into memory before
# the core takes the call, so without this bound an open-loop flood makes gRPC's C core buffer
# requests without limit (measured, 8 connections, 3,000 calls/s of 35 KB for 6 s: RSS +950 MB
# with no bound at all, +370-670 MB with only `max_rpcs`, a plateau at ~+180 MB with 256
# streams, ~+65 MB with 64). A client opening more gets UNAVAILABLE "RST_STREAM" (REFUSED_STREAM:
# never processed, safe to retry; not audited: the core never saw it). What one connection can
# make the core hold is then at most this many requests (each within its 64 KiB flow-control
# window); 1,024 is far above what one sender's channel carries in the load tests and
# benchmarks (a few to a few tens of calls at once), so only a flood meets it.
DEFAULT_MAX_STREAMS = 1024
CROSSROADS_SERVICE = "crossroads.v1.Crossroads"
PORT_FILE = "core.port"  # in the state folder, unless the starter names another
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
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT  # exchanges in flight in the core; beyond: UNAVAILABLE (SHED)
    max_rpcs: int = DEFAULT_MAX_RPCS  # calls in gRPC's hands; beyond: RESOURCE_EXHAUSTED, unaudited
    max_streams: int = DEFAULT_MAX_STREAMS  # HTTP/2 streams per connection; beyond: UNAVAILABLE, unaudited
    limits: AdmissionPolicy | None = None  # per-sender limits; None: DIR/limits.json if there is one, else defaults
    crl_check_every: float = DEFAULT_CHECK_EVERY  # seconds between looks at DIR/pki/crl.pem
    dead_after: float = DEFAULT_DEAD_AFTER  # seconds an undeliverable outbox item waits before it is a dead letter

    @property
    def pki(self) -> Path:
        return self.state / "pki"

    def admission_policy(self) -> AdmissionPolicy:
        """`limits`, else the policy in DIR/limits.json, else the defaults (crossroads.admission)."""
        if self.limits is not None:
            return self.limits
        path = self.state / LIMITS_FILE
        return AdmissionPolicy.load(path) if path.exists() else AdmissionPolicy()


Handle = Callable[[bytes, str | None], Awaitable[messages_pb2.ExchangeReply | Refusal]]


class CrossroadsServicer:
    """crossroads.v1.Crossroads/Exchange: raw envelope bytes in, serialized ExchangeReply out.

    Before an exchange is handled, in this order: a peer whose certificate is revoked is
    refused UNAUTHENTICATED (`revocation`); then `admission` may turn the call away
    (RESOURCE_EXHAUSTED over the sender's rate or quota, UNAVAILABLE when the core is full),
    with retry advice in trailing metadata "retry-after-ms". Every such refusal is audited
    (`Exchange.refuse`) and carries its audit index, like the exchange's own refusals.
    """

    def __init__(
        self, exchange: Exchange, admission: Admission, revocation: Revocation, telemetry: Telemetry | None = None
    ) -> None:
        self._exchange = exchange
        self._admission = admission
        self._revocation = revocation
        self._handle = exchange.handle if telemetry is None else _timed(exchange.handle, telemetry)

    async def Exchange(self, raw: bytes, context: Any) -> bytes:
        auth = context.auth_context()  # read once: ~1.5 us a time
        peer = peer_name(auth)
        revoked = self._revocation.refusal(auth)
        if revoked is not None:
            refusal = await self._exchange.refuse(raw, peer, _UNAUTHENTICATED, "UNAUTHENTICATED", revoked)
            return _refused(context, refusal)
        sender = peer or ""  # no certificate: admitted here, refused by the exchange
        turned = self._admission.enter(sender)
        if turned is not None:
            refusal = await self._exchange.refuse(raw, peer, turned.code, turned.outcome, turned.message)
            return _refused(context, refusal, turned.retry_after_ms)
        try:
            result = await self._handle(raw, peer)
        finally:
            self._admission.leave(sender)
        if isinstance(result, Refusal):
            return _refused(context, result)
        return result.SerializeToString()

    def add_to(self, server: Any) -> None:
        # no (de)serializers: the handler sees the bytes the sender sent, so they can be
        # forwarded without re-encoding
        handlers = {"Exchange": grpc.unary_unary_rpc_method_handler(self.Exchange)}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(CROSSROADS_SERVICE, handlers),))
        server.add_registered_method_handlers(CROSSROADS_SERVICE, handlers)


def _timed(handle: Handle, telemetry: Telemetry) -> Handle:
    """`handle`, timed by `telemetry` (crossroads.telemetry): the handler's time, and its stages'."""

    async def timed(raw: bytes, peer: str | None) -> messages_pb2.ExchangeReply | Refusal:
        started = telemetry.start_call()
        try:
            return await handle(raw, peer)
        finally:
            telemetry.end_call(started)

    return timed


def _refused(context: Any, refusal: Refusal, retry_after_ms: int | None = None) -> bytes:
    """Answer `refusal`, with its audit index and retry advice in trailing metadata; returns the (no) reply.

    The status is set on the context, not raised with `context.abort`: an aborted call keeps
    its HTTP/2 stream (through the exception's reference cycle) until the garbage collector
    runs, so a sender being refused by the hundred soon had hundreds of streams "open" and met
    the per-connection stream bound (UNAVAILABLE RST_STREAM instead of the refusal), and raising
    cost twice the CPU (measured: 7.7k vs 14.7k refusals in 3 s by one client, 200 in flight).
    """
    trailing: list[tuple[str, str]] = []
    if refusal.audit_index is not None:
        trailing.append((AUDIT_INDEX_KEY, str(refusal.audit_index)))
    if retry_after_ms is not None and refusal.audit_index is not None:  # else the audit failed: not a throttle
        trailing.append((RETRY_AFTER_KEY, str(retry_after_ms)))
    context.set_code(refusal.code)
    context.set_details(refusal.message)
    context.set_trailing_metadata(tuple(trailing))
    return b""


_UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED


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
    admission: Admission
    telemetry: Telemetry | None = None
    _stopped: bool = field(default=False, repr=False)

    @property
    def address(self) -> str:
        return f"{self.config.host}:{self.port}"

    async def stop(self, grace: float | None = None) -> None:
        """Refuse new calls, let calls in flight finish, then flush and close the stores. Idempotent.

        Health turns NOT_SERVING and gRPC takes no new call; calls in flight get `grace`
        seconds (default `config.grace`) to be answered, then are cancelled. The stores are
        closed only once every admitted exchange has left (a cancelled one still writes its
        audit record), waiting at most DEFAULT_DRAIN_TAIL more seconds for that.
        """
        if self._stopped:
            return
        self._stopped = True
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.config.grace if grace is None else grace)
        await self.admission.idle(DEFAULT_DRAIN_TAIL)
        await self.exchange.drain(DEFAULT_DRAIN_TAIL)  # declarations run on after their caller is gone
        if self.telemetry is not None:
            await self.telemetry.stop()
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
        outbox = Outbox.open(outbox_path(state), dead_after=config.dead_after)  # in the audit store: crossroads.journal
        undo.push_async_callback(outbox.aclose)
        forwarder = Forwarder(hosts, channel_credentials(config.pki, CORE))
        undo.push_async_callback(forwarder.close)
        telemetry = Telemetry.from_env(audit.commit_stats)  # None unless CROSSROADS_TELEMETRY asks
        exchange = _exchange(config, knowledge, directory, audit, forwarder, outbox, telemetry)
        server, health_servicer, admission = _server(config, exchange, audit, telemetry)
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
            config, server, port, exchange, health_servicer, redelivery, forwarder, outbox, audit, directory, admission,
            telemetry,
        )  # fmt: skip
        if telemetry is not None:
            telemetry.start()
        if config.port_file is not None:
            write_port_file(config.port_file, port)
        undo.pop_all()  # started: from now on `core.stop()` closes everything
    return core


def _exchange(
    config: CoreConfig,
    knowledge: Knowledge,
    directory: DirectoryStore,
    audit: AuditLog,
    forwarder: Forwarder,
    outbox: Outbox,
    telemetry: Telemetry | None,
) -> Exchange:
    """The exchange pipeline over the core's stores and forwarder (timed ones, with telemetry)."""
    return Exchange(
        knowledge=knowledge,
        directory=directory,
        audit=audit if telemetry is None else TimedAudit(audit),
        forwarder=forwarder if telemetry is None else TimedForwarder(forwarder),
        outbox=outbox,
        clock=lambda: dt.datetime.now(dt.UTC),
        forward_deadline=config.forward_deadline,
        citizen_gate=CitizenGate.load(config.pki, knowledge),  # no FAS key: citizen acts refused
    )


def _server(
    config: CoreConfig, exchange: Exchange, audit: AuditLog, telemetry: Telemetry | None
) -> tuple[Any, Any, Admission]:
    options = [
        ("grpc.so_reuseport", 0),  # this process must own its port
        ("grpc.max_concurrent_streams", config.max_streams),
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", 4 * config.max_message_bytes),
        *LOOPBACK_HTTP2_OPTIONS,
    ]
    server = grpc.aio.server(options=options, maximum_concurrent_rpcs=config.max_rpcs or None)
    agencies = exchange.knowledge.agencies

    def category_of(agency: str) -> str | None:
        known = agencies.get(AgencyId(agency))
        return None if known is None else known.category

    admission = Admission(config.admission_policy(), max_in_flight=config.max_in_flight, category_of=category_of)
    revocation = Revocation(config.pki, check_every=config.crl_check_every)
    # takes raw bytes: it says itself what does not parse
    CrossroadsServicer(exchange, admission, revocation, telemetry).add_to(server)
    # the others would have gRPC parse their requests and answer UNKNOWN to bytes that are none
    tolerant = TolerantRegistration(server)
    audit_servicer = guarded(AuditServicer(audit, exchange.citizen_gate), revocation)  # revoked peers refused
    services_pb2_grpc.add_AuditServicer_to_server(audit_servicer, tolerant)  # type: ignore[no-untyped-call]
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
    return server, health_servicer, admission


async def serve(config: CoreConfig) -> None:
    """Run the core until SIGTERM or SIGINT (or the parent's death, if asked), then stop gracefully."""
    stopping = StopSignal(exit_with_parent=config.exit_with_parent)  # before the port file says "serving"
    core = await start_core(config)
    _tune_gc()
    name_native_threads()  # per-thread CPU in /proc says which thread is the writer, which the poller
    install_from_env()  # memory snapshots when CROSSROADS_MEMORY_DUMP is set (crossroads bench soak --memory-dump)
    print(f"core: serving on {core.address}", file=sys.stderr, flush=True)
    try:
        await stopping.wait()
    finally:
        await core.stop()
        print("core: stopped", file=sys.stderr, flush=True)


def command(
    state: Path,
    *,
    port: int = 0,
    port_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    options: Sequence[str] = (),
) -> ServerCommand:
    """How a starter runs the core as a child process: `python -m crossroads.server` on `state`,
    on `port` (0: any free one), writing the port to `port_file` (default DIR/core.port) once
    serving, stopping by itself if its starter dies; `options` are more of its flags (`--help`),
    `env` is added to its environment (e.g. crossroads.diagnostics' variables)."""
    port_file = state / PORT_FILE if port_file is None else port_file
    args = ("--state", str(state), "--port", str(port), "--port-file", str(port_file), EXIT_WITH_PARENT, *options)
    return ServerCommand(CORE, "crossroads.server", args, port_file, dict(env or {}))


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


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m crossroads.server", description=__doc__.split("\n\n")[0])
    p.add_argument("--state", type=Path, required=True, help="the state folder of the live network")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    p.add_argument("--port-file", type=Path, help="write the port here once serving")
    p.add_argument("--forward-deadline", type=float, default=DEFAULT_FORWARD_DEADLINE, help="seconds per forward")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE, help="seconds calls in flight get on stop")
    p.add_argument(EXIT_WITH_PARENT, action="store_true", help="stop when the starting process dies")
    p.add_argument(
        "--limits",
        type=Path,
        help=f"per-sender rate limits and quotas, JSON (crossroads.admission); default: DIR/{LIMITS_FILE} if present",
    )
    p.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="exchanges in flight in the core; beyond, calls are shed (UNAVAILABLE, audited SHED)",
    )
    p.add_argument(
        "--max-rpcs",
        type=int,
        default=DEFAULT_MAX_RPCS,
        help="calls gRPC holds at once; beyond, it answers RESOURCE_EXHAUSTED before reading them",
    )
    p.add_argument(
        "--max-streams",
        type=int,
        default=DEFAULT_MAX_STREAMS,
        help="HTTP/2 streams one connection may have open; beyond, gRPC refuses them (UNAVAILABLE)",
    )
    p.add_argument(
        "--dead-after",
        type=float,
        default=DEFAULT_DEAD_AFTER,
        help="seconds an outbox item may stay undeliverable before it is a dead letter (crossroads outbox)",
    )
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
        limits=None if args.limits is None else AdmissionPolicy.load(args.limits),
        max_in_flight=args.max_in_flight,
        max_rpcs=args.max_rpcs,
        max_streams=args.max_streams,
        dead_after=args.dead_after,
    )
    apply_from_env()  # CPython's switch interval unless CROSSROADS_SWITCH_INTERVAL_MS asks
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
