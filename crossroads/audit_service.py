"""The gRPC face of the audit log: crossroads.v1.Audit (Head, InclusionProof, ConsistencyProof, WhoAccessed, Entry).

Thin on purpose: each method maps its request onto `AuditLog` methods and the answer onto
the wire messages. Bad indexes or sizes are INVALID_ARGUMENT. Proofs and who-accessed read
SQLite, so they run on a worker thread to keep the event loop serving exchanges.

Register with `services_pb2_grpc.add_AuditServicer_to_server(AuditServicer(log), server)`.
"""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import grpc

from crossroads.audit import AuditHead, AuditIndexError, AuditLog
from crossroads.identifiers import niss_problem
from protos import services_pb2

__all__ = ["AuditServicer"]


def _head_message(head: AuditHead) -> services_pb2.AuditHead:
    return services_pb2.AuditHead(size=head.size, root=head.root, checkpoint=head.checkpoint)


async def _invalid(context: Any, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("context.abort returned")  # grpc.aio's abort always raises


class AuditServicer:
    """crossroads.v1.Audit over one `AuditLog`. Sizes of 0 in requests mean "the current size"."""

    def __init__(self, log: AuditLog) -> None:
        self._log = log

    async def Head(self, request: services_pb2.AuditHeadRequest, context: Any) -> services_pb2.AuditHead:
        return _head_message(self._log.head())

    async def InclusionProof(self, request: services_pb2.InclusionProofRequest, context: Any) -> services_pb2.Proof:
        size = request.tree_size or self._log.size
        try:
            hashes = await asyncio.to_thread(self._log.inclusion_proof, request.index, size)
        except AuditIndexError as exc:
            await _invalid(context, str(exc))
        return services_pb2.Proof(index=request.index, tree_size=size, hashes=hashes)

    async def ConsistencyProof(self, request: services_pb2.ConsistencyProofRequest, context: Any) -> services_pb2.Proof:
        second = request.second or self._log.size
        try:
            hashes = await asyncio.to_thread(self._log.consistency_proof, request.first, second)
        except AuditIndexError as exc:
            await _invalid(context, str(exc))
        return services_pb2.Proof(index=request.first, tree_size=second, hashes=hashes)

    async def WhoAccessed(
        self, request: services_pb2.WhoAccessedRequest, context: Any
    ) -> services_pb2.WhoAccessedReply:
        problem = niss_problem(request.niss)
        if problem:
            await _invalid(context, problem)
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
        try:
            leaf, hashes = await asyncio.to_thread(self._entry, request.index, size)
        except AuditIndexError as exc:
            await _invalid(context, str(exc))
        return services_pb2.AuditEntry(
            index=request.index,
            leaf=leaf,
            inclusion=services_pb2.Proof(index=request.index, tree_size=size, hashes=hashes),
        )

    def _entry(self, index: int, size: int) -> tuple[bytes, list[bytes]]:
        # the proof first: it checks index < size <= current size, so the leaf read is in range
        hashes = self._log.inclusion_proof(index, size)
        return self._log.leaf(index), hashes
