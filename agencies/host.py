"""The agency host: one grpc.aio process answering `crossroads.v1.Agency/Deliver` for many agencies.

~3,000 agencies are served by a few hosts, each answering for the agency ids it was given
(`Forward.agency` says which). A host trusts one caller only, the core (identity "core" in its
client certificate, checked by mutual TLS against the network CA); it never reads identity
from a message field.

For a Forward:
- a caller other than the core: PERMISSION_DENIED;
- an agency this host does not serve: NOT_FOUND;
- a request that is no Forward, envelope bytes that do not parse, a kind it cannot take, a
  consultation whose subject is not ASCII digits, or an audit index beyond 2**63 - 1 (what its
  inbox can store): INVALID_ARGUMENT naming what is wrong;
- CONSULTATION: an AgencyReply whose payload is a ConsultationAnswer computed by
  `agencies.answers.answer(seed, agency, dataset, niss)` (deterministic per seed);
- declarations, (de-)integrations and mutation notices: stored in the host's durable inbox
  (agencies/inbox.py) before replying status "ok", or "duplicate" for a redelivery.

A service time (mean in ms; 0 = none) is slept before each answer, drawn from an exponential
distribution with a generator seeded from (seed, host name), or fixed. Deliveries sleep
concurrently, so it models a delay per message, not a queue.

Run: python -m agencies.host --state DIR --name host-K --agencies-file F --seed S
         [--service-time-ms X] [--service-time fixed|exponential] --port-file FILE
It binds 127.0.0.1 on a free port, writes the port to FILE once serving, and stops gracefully
on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import numpy as np
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from agencies.inbox import Inbox, inbox_path
from crossroads.domain import AgencyId, Dataset
from crossroads.identifiers import Niss
from crossroads.pki import CORE, peer_identity, server_credentials
from crossroads.readiness import EXIT_WITH_PARENT, ServerCommand, StopSignal, write_port_file
from protos import messages_pb2, services_pb2_grpc

__all__ = [
    "DEFAULT_GRACE_S",
    "AgencyHost",
    "AnswerFn",
    "RunningHost",
    "ServiceTime",
    "command",
    "main",
    "start_host",
]

_M = TypeVar("_M", bound=Message)
AnswerFn = Callable[[int, AgencyId, Dataset, Niss], Mapping[str, str]]

DEFAULT_GRACE_S = 2.0
BIND_TIMEOUT_S = 10.0  # a killed host's port is free again at once on Linux; this is a ceiling
SERVICE_NAME = "crossroads.v1.Agency"
SERVER_OPTIONS = (("grpc.so_reuseport", 0),)  # this process must own its port
MAX_AUDIT_INDEX = 2**63 - 1  # the largest audit index the inbox stores (SQLite INTEGER)
MAX_NAME_SHOWN = 64  # characters of an unknown agency id quoted back: a status message must stay small

_NOTICE_KINDS = frozenset(
    {
        messages_pb2.DIMONA,
        messages_pb2.DMFA,
        messages_pb2.DRS,
        messages_pb2.INTEGRATION,
        messages_pb2.DEINTEGRATION,
        messages_pb2.MUTATION,
    }
)


class ServiceTime:
    """How long an agency takes to answer: a fixed delay or exponential draws around a mean."""

    def __init__(self, mean_ms: float, rng: np.random.Generator | None = None) -> None:
        """`rng` None = every delay is exactly `mean_ms`; else exponential draws from `rng`."""
        if mean_ms < 0:
            raise ValueError(f"service time must be >= 0 ms, got {mean_ms}")
        self.mean_ms = mean_ms
        self._rng = rng

    @classmethod
    def seeded(cls, mean_ms: float, seed: int, host: str) -> ServiceTime:
        """Exponential, with a generator of its own derived from (seed, host name)."""
        sequence = np.random.SeedSequence(seed, spawn_key=(zlib.crc32(host.encode()),))
        return cls(mean_ms, np.random.default_rng(sequence))

    def draw_s(self) -> float:
        """The next delay, in seconds."""
        if self.mean_ms == 0:
            return 0.0
        ms = self.mean_ms if self._rng is None else float(self._rng.exponential(self.mean_ms))
        return ms / 1000.0


def _default_answer() -> AnswerFn:
    from agencies.answers import answer  # the world's answers; imported when a host is made

    return answer


class AgencyHost(services_pb2_grpc.AgencyServicer):
    """The Deliver servicer: maps a Forward onto an answer or an inbox row.

    Register it with `add_to(server)`: gRPC's generated registration parses the request
    before the servicer sees it, and answers bytes that are no Forward with UNKNOWN.
    """

    def __init__(
        self,
        agencies: Iterable[AgencyId],
        seed: int,
        inbox: Inbox,
        *,
        answer: AnswerFn | None = None,
        service_time: ServiceTime | None = None,
    ) -> None:
        self.agencies = frozenset(agencies)
        self.seed = seed
        self.inbox = inbox
        self._answer = answer or _default_answer()
        self._service_time = service_time or ServiceTime(0)

    def add_to(self, server: Any) -> None:
        """Serve crossroads.v1.Agency/Deliver on `server`, parsing requests here (INVALID_ARGUMENT if not a Forward)."""
        handlers = {
            "Deliver": grpc.unary_unary_rpc_method_handler(
                self._deliver_raw, response_serializer=messages_pb2.AgencyReply.SerializeToString
            )
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))
        server.add_registered_method_handlers(SERVICE_NAME, handlers)

    async def _deliver_raw(self, raw: bytes, context: Any) -> messages_pb2.AgencyReply:
        await _only_core(context)  # before parsing: nobody else learns anything, not even what parses
        return await self._deliver(await _parse(messages_pb2.Forward(), raw, context), context)

    async def Deliver(self, request: messages_pb2.Forward, context: Any) -> messages_pb2.AgencyReply:
        await _only_core(context)
        return await self._deliver(request, context)

    async def _deliver(self, request: messages_pb2.Forward, context: Any) -> messages_pb2.AgencyReply:
        agency = AgencyId(request.agency)
        if agency not in self.agencies:
            shown = agency[:MAX_NAME_SHOWN]
            await context.abort(grpc.StatusCode.NOT_FOUND, f"agency {shown!r} is not served by this host")
        if request.audit_index > MAX_AUDIT_INDEX:  # SQLite integers are signed 64-bit
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"audit_index {request.audit_index} is beyond {MAX_AUDIT_INDEX}"
            )
        envelope = await _parse(messages_pb2.Envelope(), request.envelope, context)
        delay = self._service_time.draw_s()
        if delay:
            await asyncio.sleep(delay)
        if envelope.kind == messages_pb2.CONSULTATION:
            if not envelope.subject_niss.isascii():  # the answers read digits with int(): "²" raised there
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "subject_niss must be ASCII digits")
            ask = await _parse(messages_pb2.ConsultationRequest(), envelope.payload, context)
            return self._consult(agency, envelope, ask)
        if envelope.kind in _NOTICE_KINDS:
            return await self._store(agency, request, envelope, context)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"agencies take no message of kind {envelope.kind}")
        raise AssertionError("abort returned")  # abort always raises; this keeps the types honest

    def _consult(
        self, agency: AgencyId, envelope: messages_pb2.Envelope, ask: messages_pb2.ConsultationRequest
    ) -> messages_pb2.AgencyReply:
        dataset = ask.dataset or envelope.dataset
        known = dict(self._answer(self.seed, agency, Dataset(dataset), Niss(envelope.subject_niss)))
        fields = {k: known[k] for k in ask.fields if k in known} if ask.fields else known
        found = messages_pb2.ConsultationAnswer(agency=agency, dataset=dataset, found=bool(known), fields=fields)
        return messages_pb2.AgencyReply(agency=agency, payload=found.SerializeToString(), status="ok")

    async def _store(
        self, agency: AgencyId, request: messages_pb2.Forward, envelope: messages_pb2.Envelope, context: Any
    ) -> messages_pb2.AgencyReply:
        if not envelope.message_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a notice needs a message_id (its idempotency key)")
        kind = messages_pb2.MessageKind.Name(envelope.kind)
        new = self.inbox.record(agency, envelope.message_id, kind, request.sender, request.audit_index)
        return messages_pb2.AgencyReply(agency=agency, status="ok" if new else "duplicate")


async def _only_core(context: Any) -> None:
    caller = peer_identity(context)
    if caller != CORE:
        await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"only {CORE!r} may deliver; caller is {caller!r}")


async def _parse(message: _M, data: bytes, context: Any) -> _M:
    """`message` filled from `data`; INVALID_ARGUMENT (naming the message type) if it does not parse."""
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{message.DESCRIPTOR.name} does not parse: {exc}")
    return message


@dataclass
class RunningHost:
    """A started host server; `stop` ends it gracefully."""

    server: Any  # grpc.aio.Server
    port: int
    health: Any  # grpc_health aio HealthServicer
    inbox: Inbox

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def stop(self, grace_s: float = DEFAULT_GRACE_S) -> None:
        """Say NOT_SERVING, let calls in flight finish (up to `grace_s`), close the inbox."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        self.inbox.close()


async def start_host(
    state_dir: Path,
    name: str,
    agencies: Iterable[AgencyId],
    seed: int,
    *,
    service_time: ServiceTime | None = None,
    answer: AnswerFn | None = None,
    port: int = 0,
) -> RunningHost:
    """Start host `name` on 127.0.0.1:`port` (0 = a free port), identity `name` from `state_dir/pki`.

    A host restarted after a crash asks for its old port, since the core knows hosts by address:
    binding is retried for up to BIND_TIMEOUT_S while the port is still held. The inbox is
    `state_dir/hosts/<name>.sqlite`. Must run inside an asyncio loop.
    """
    credentials = server_credentials(Path(state_dir) / "pki", name)  # first: fail before touching the inbox
    server, bound = await _bound_server(port, credentials, time.monotonic() + BIND_TIMEOUT_S)
    inbox = Inbox(inbox_path(state_dir, name))
    servicer = AgencyHost(agencies, seed, inbox, answer=answer, service_time=service_time)
    servicer.add_to(server)
    checker = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(checker, server)
    await server.start()
    for service in ("", SERVICE_NAME):
        await checker.set(service, health_pb2.HealthCheckResponse.SERVING)
    return RunningHost(server, bound, checker, inbox)


async def _bound_server(port: int, credentials: grpc.ServerCredentials, deadline: float) -> tuple[Any, int]:
    while True:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        try:
            return server, server.add_secure_port(f"127.0.0.1:{port}", credentials)
        except RuntimeError:
            if port == 0 or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def _serve(args: argparse.Namespace) -> None:
    agencies = [AgencyId(a) for a in json.loads(Path(args.agencies_file).read_text())]
    rng_time = (
        ServiceTime(args.service_time_ms)
        if args.service_time == "fixed"
        else ServiceTime.seeded(args.service_time_ms, args.seed, args.name)
    )
    stopping = StopSignal(exit_with_parent=args.exit_with_parent)  # before the port file says "serving"
    host = await start_host(Path(args.state), args.name, agencies, args.seed, service_time=rng_time, port=args.port)
    write_port_file(Path(args.port_file), host.port)
    print(f"{args.name}: serving {len(agencies)} agencies on {host.address}", file=sys.stderr, flush=True)
    await stopping.wait()
    await host.stop(args.grace)
    print(f"{args.name}: stopped", file=sys.stderr, flush=True)


def command(
    state: Path,
    name: str,
    agencies_file: Path,
    seed: int,
    *,
    port: int = 0,
    service_time_ms: float = 0.0,
) -> ServerCommand:
    """How a starter runs host `name` as a child process: `python -m agencies.host`, answering for
    the agencies listed in `agencies_file` (JSON), on `port` (0: any free one; a restarted host
    asks for its old one, since the core knows hosts by address), writing its port to
    DIR/hosts/NAME.port once serving, stopping by itself if its starter dies."""
    port_file = state / "hosts" / f"{name}.port"
    args = (
        *("--state", str(state), "--name", name, "--agencies-file", str(agencies_file), "--seed", str(seed)),
        *("--port", str(port), "--port-file", str(port_file), "--service-time-ms", str(service_time_ms)),
        EXIT_WITH_PARENT,
    )
    return ServerCommand(name, "agencies.host", args, port_file)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agencies.host", description=__doc__.split("\n\n")[0])
    p.add_argument("--state", required=True, help="state folder of the live network (reads pki/, writes hosts/)")
    p.add_argument("--name", required=True, help="this host's identity, e.g. host-0")
    p.add_argument("--agencies-file", required=True, help="JSON list of the agency ids this host answers for")
    p.add_argument("--seed", type=int, required=True, help="the world's seed (answers, service times)")
    p.add_argument("--service-time-ms", type=float, default=0.0, help="mean service time per message (0 = none)")
    p.add_argument("--service-time", choices=("exponential", "fixed"), default="exponential")
    p.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (0 = a free one; a restarted host: its old one)"
    )
    p.add_argument("--port-file", required=True, help="where to write the port once serving")
    p.add_argument("--grace", type=float, default=DEFAULT_GRACE_S, help="seconds calls in flight get at stop")
    p.add_argument(EXIT_WITH_PARENT, action="store_true", help="stop when the starting process dies")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(_serve(_parser().parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
