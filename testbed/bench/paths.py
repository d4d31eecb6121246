"""The two paths a benchmark compares, doing the same work: routed consultations through the
crossroads core, and the very `Forward` the core would send, through a raw one-hop mTLS proxy
(testbed/proxy.py) in front of the same agency host.

`write_workload` draws the consultations from the world (each routed as the core will route it)
and writes them for the load generator, once per path; `running_proxy` starts the proxy;
`check_paths` proves, before anything is measured, that both paths deliver the same answers;
`fresh_state` empties the audit store so that every benchmark starts from the same log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np

from agencies.exchanges import Sample, consultation
from agencies.spec import load_world_spec
from agencies.world import World
from crossroads.audit import AUDIT_DB, AuditLog
from crossroads.directory import DirectoryStore
from crossroads.domain import Knowledge
from crossroads.knowledge_io import load_knowledge
from crossroads.methods import DELIVER, EXCHANGE
from crossroads.pki import channel_credentials
from crossroads.routing import Destination, Routed, route
from crossroads.validation import Invalid, check_envelope
from loadtests.prepared import Prepared, write_requests
from protos import messages_pb2
from testbed import processes, proxy
from testbed.bench.goals import BenchError

__all__ = [
    "CHECKED_REQUESTS",
    "Workload",
    "audit_outcomes",
    "audit_size",
    "check_paths",
    "fresh_state",
    "prepare_workload",
    "running_proxy",
    "write_workload",
]

CHECKED_REQUESTS = 5  # sent through both paths before measuring; their answers must agree
CALL_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Workload:
    """The same consultations twice: as Envelopes for the core, as the core's Forwards for the proxy."""

    core: tuple[Prepared, ...]
    proxy: tuple[Prepared, ...]
    senders: int


def _destination(sample: Sample, knowledge: Knowledge, directory: DirectoryStore, today: dt.date) -> Destination:
    """Where the core sends `sample`: the same pure validation and routing decision it runs."""
    checked = check_envelope(sample.envelope, sample.sender, today)
    if isinstance(checked, Invalid):
        raise BenchError(f"sample {sample.envelope.message_id} from {sample.sender} is invalid: {checked}")
    decision = route(checked, knowledge, directory.files_of_many(checked.subjects))
    if not isinstance(decision, Routed) or len(decision.destinations) != 1:
        raise BenchError(f"sample {sample.envelope.message_id} from {sample.sender} is not routed once: {decision}")
    return decision.destinations[0]


def prepare_workload(
    world: World, knowledge: Knowledge, directory: DirectoryStore, n: int, rng: np.random.Generator
) -> Workload:
    """`n` consultations drawn from `world` with `rng`, for both paths (deterministic per rng).

    Each is routed as the core will route it, with the `knowledge` and `directory` it reads:
    BenchError if one is not routed to exactly one agency.
    """
    core, proxy = [], []
    for _ in range(n):
        sample = consultation(world, rng)
        raw = sample.envelope.SerializeToString()
        to = _destination(sample, knowledge, directory, world.spec.as_of)
        forward = messages_pb2.Forward(agency=to.agency, sender=sample.sender, envelope=raw, via=to.via or "")
        core.append(Prepared(sample.sender, EXCHANGE, raw))
        proxy.append(Prepared(sample.sender, DELIVER, forward.SerializeToString()))
    return Workload(tuple(core), tuple(proxy), len({p.identity for p in core}))


def write_workload(scenario: Path, state: Path, out: Path, n: int, seed: int) -> tuple[Workload, dict[str, Path]]:
    """`n` consultations of the world of `scenario` (whose files are in `state`) for both paths,
    written as OUT/requests.core.jsonl and OUT/requests.proxy.jsonl (loadtests.prepared)."""
    world = World.build(load_world_spec(scenario))
    directory = DirectoryStore.open(state / "directory.sqlite")
    try:
        knowledge = load_knowledge(state / "knowledge.json")
        workload = prepare_workload(world, knowledge, directory, n, np.random.default_rng(seed))
    finally:
        directory.close()
    paths = {"core": out / "requests.core.jsonl", "proxy": out / "requests.proxy.jsonl"}
    write_requests(paths["core"], workload.core)
    write_requests(paths["proxy"], workload.proxy)
    return workload, paths


@contextmanager
def running_proxy(pki: Path, upstream: str, folder: Path) -> Iterator[tuple[str, int]]:
    """The raw proxy (testbed/proxy.py) in front of `upstream`: its address and pid; BenchError if it does not start."""
    try:
        with proxy.running(pki, upstream, folder) as (address, pid):
            yield address, pid
    except processes.ChildError as exc:
        raise BenchError(f"the raw proxy did not start: {exc}") from exc


def _call(address: str, pki: Path, request: Prepared) -> bytes:
    with grpc.secure_channel(address, channel_credentials(pki, request.identity)) as channel:
        reply: bytes = channel.unary_unary(request.method)(request.body, timeout=CALL_TIMEOUT_S)
    return reply


def check_paths(pki: Path, core: str, proxy: str, workload: Workload, k: int = CHECKED_REQUESTS) -> None:
    """Send the first `k` requests through both paths: the core must deliver each to the agency
    the proxy's Forward names, and the agency's answer must be the same bytes on both paths."""
    for via_core, via_proxy in zip(workload.core[:k], workload.proxy[:k], strict=True):
        exchange = messages_pb2.ExchangeReply.FromString(_call(core, pki, via_core))
        agency = messages_pb2.AgencyReply.FromString(_call(proxy, pki, via_proxy))
        forward = messages_pb2.Forward.FromString(via_proxy.body)
        delivered = exchange.outcome == messages_pb2.DELIVERED and len(exchange.deliveries) == 1
        if not delivered or exchange.deliveries[0].agency != forward.agency:
            raise BenchError(f"the core did not deliver {forward.agency}'s consultation: {exchange}")
        if agency.status != "ok" or agency.payload != exchange.deliveries[0].reply:
            raise BenchError(f"the proxy's answer differs from the core's for {forward.agency}: {agency}")


def fresh_state(state: Path) -> None:
    """Start from an empty audit store (log, answers, outbox), and rebuild the world files.

    The same log size every run; and world files reused from an older run could come from an
    older version of the world's code (the reuse test looks at the scenario, not the code),
    so that the core would refuse what this code's samples ask (a demo world builds in ~1 s).
    """
    for name in (AUDIT_DB,):  # the outbox and the answers live in the audit store
        for suffix in ("", "-wal", "-shm"):
            (state / f"{name}{suffix}").unlink(missing_ok=True)
    (state / "world.json").unlink(missing_ok=True)


def audit_outcomes(state: Path, start: int) -> dict[str, int]:
    """How many audit records from index `start` on carry each outcome."""
    counts: dict[str, int] = {}
    with AuditLog.open(state, read_only=True) as log:
        for _, leaf in log.iter_leaves(start):
            at = leaf.index(b'"outcome":"') + 11
            outcome = leaf[at : leaf.index(b'"', at)].decode()
            counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def audit_size(state: Path) -> int:
    """How many records the audit log of `state` holds."""
    with AuditLog.open(state, read_only=True) as log:
        return log.size
