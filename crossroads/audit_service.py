"""The gRPC face of the audit log: crossroads.v1.Audit (Head, InclusionProof, ConsistencyProof, WhoAccessed, Entry).

Thin on purpose: each method maps its request onto `AuditLog` methods and the answer onto
the wire messages. Bad indexes or sizes are INVALID_ARGUMENT. Proofs and who-accessed read
SQLite, so they run on a worker thread to keep the event loop serving exchanges.

WhoAccessed lists one person's exchanges: it answers only a citizen access point (the portal)
presenting the FAS's assertion for that very person (`citizen.CitizenGate.check_who_accessed`);
anyone else, and everyone on a servicer without a gate, is PERMISSION_DENIED naming the rule.

Register with `services_pb2_grpc.add_AuditServicer_to_server(AuditServicer(log, gate), server)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc

from crossroads.audit import AuditHead, AuditIndexError, AuditLog
from crossroads.citizen import CitizenGate
from crossroads.identifiers import niss_problem
from crossroads.pki import peer_identity
from crossroads.routing import Denied
from protos import services_pb2

__all__ = ["AuditServicer"]

_T = TypeVar("_T")


def _head_message(head: AuditHead) -> services_pb2.AuditHead:
    return services_pb2.AuditHead(size=head.size, root=head.root, checkpoint=head.checkpoint)


async def _invalid(context: Any, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("context.abort returned")  # grpc.aio's abort always raises


async def _denied(context: Any, denied: Denied) -> NoReturn:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, f"denied by rule {denied.rule}: {denied.reason}")
    raise AssertionError("context.abort returned")


async def _read(context: Any, read: Callable[[int, int], _T], index: int, size: int) -> _T:
    """`read(index, size)` on a worker thread (it reads SQLite); its AuditIndexError is INVALID_ARGUMENT."""
    try:
        return await asyncio.to_thread(read, index, size)
    except AuditIndexError as exc:
        await _invalid(context, str(exc))


_NO_GATE = Denied("citizen_no_gate", "this server checks no citizen assertions, so it lists nobody's accesses")


class AuditServicer:
    """crossroads.v1.Audit over one `AuditLog`. Sizes of 0 in requests mean "the current size".

    `gate` None closes WhoAccessed to everyone; `clock` gives UNIX seconds (assertion expiry).
    """

    def __init__(
        self, log: AuditLog, gate: CitizenGate | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._log = log
        self._gate = gate
        self._clock = clock

    async def Head(self, request: services_pb2.AuditHeadRequest, context: Any) -> services_pb2.AuditHead:
        return _head_message(self._log.head())

    async def InclusionProof(self, request: services_pb2.InclusionProofRequest, context: Any) -> services_pb2.Proof:
        size = request.tree_size or self._log.size
        hashes = await _read(context, self._log.inclusion_proof, request.index, size)
        return services_pb2.Proof(index=request.index, tree_size=size, hashes=hashes)

    async def ConsistencyProof(self, request: services_pb2.ConsistencyProofRequest, context: Any) -> services_pb2.Proof:
        second = request.second or self._log.size
        hashes = await _read(context, self._log.consistency_proof, request.first, second)
        return services_pb2.Proof(index=request.first, tree_size=second, hashes=hashes)

    async def WhoAccessed(
        self, request: services_pb2.WhoAccessedRequest, context: Any
    ) -> services_pb2.WhoAccessedReply:
        """The records about `request.niss`, with proofs; see the module doc for who may ask."""
        problem = niss_problem(request.niss)
        if problem:
            await _invalid(context, problem)
        citizen = request.citizen if request.HasField("citizen") else None
        denied = (
            _NO_GATE
            if self._gate is None
            else self._gate.check_who_accessed(peer_identity(context), request.niss, citizen, self._clock())
        )
        if denied is not None:
            await _denied(context, denied)
        head, entries = await asyncio.to_thread(self._log.who_accessed, request.niss)
        return services_pb2.WhoAccessedReply(
            head=_head_message(head),
            entries=[
                services_pb2.AuditEntry(
                    index=e.index,
                    leaf=e.leaf,
                    inclusion=services_pb2.Proof(index=e.index, tree_size=e.tree_size, hashes=e.proof),
                )
                for e in entries
            ],
        )

    async def Entry(self, request: services_pb2.EntryRequest, context: Any) -> services_pb2.AuditEntry:
        """Record `index` (its exact leaf bytes) and its inclusion proof in the tree of `tree_size`.

        `tree_size` 0 = the current size. A client pairs it with a checkpoint signed for that
        size (Head, or any later stored checkpoint with a consistency proof) to check that its
        exchange's record is in the log. INVALID_ARGUMENT unless 0 <= index < tree_size <= size.
        """
        size = request.tree_size or self._log.size
        leaf, hashes = await _read(context, self._entry, request.index, size)
        return services_pb2.AuditEntry(
            index=request.index,
            leaf=leaf,
            inclusion=services_pb2.Proof(index=request.index, tree_size=size, hashes=hashes),
        )

    def _entry(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        # the proof first: it checks index < size <= current size, so the leaf read is in range
        hashes = self._log.inclusion_proof(index, size)
        return self._log.leaf(index), hashes
