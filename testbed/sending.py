"""Sending exchanges to a live network as its agencies, and reporting what happened (JSON-ready):
one exchange with its answer, route and verified audit receipt (`send_one`), or many drawn at
random, counted by kind and outcome (`send_random`). `crossroads send` and the tests call it."""

from __future__ import annotations

import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.json_format import MessageToDict
from tqdm import tqdm

from agencies.exchanges import (
    Prepared,
    samples,
    with_fresh_id,
)
from agencies.world import World
from crossroads.citizen import CITIZEN_PURPOSE, Fas
from crossroads.client import DEFAULT_TIMEOUT_S, CoreClient, ExchangeRefused
from crossroads.domain import AgencyId, Kind
from crossroads.outcomes import ACCEPTED
from crossroads.receipts import Receipt
from protos import messages_pb2

__all__ = ["DEFAULT_CONCURRENCY", "count_outcomes", "refusal_report", "reply_report", "send_one", "send_random"]

DEFAULT_CONCURRENCY = 8  # senders served at once by --random (one channel each)


# ------------------------------------------------------------------ reports


_BODIES: dict[int, type[Any]] = {
    Kind.CONSULTATION: messages_pb2.ConsultationRequest,
    Kind.DIMONA: messages_pb2.DimonaDeclaration,
    Kind.DRS: messages_pb2.DrsDeclaration,
    Kind.INTEGRATION: messages_pb2.DirectoryIntegration,
    Kind.DEINTEGRATION: messages_pb2.DirectoryIntegration,
    Kind.MUTATION: messages_pb2.MutationNotice,
}


def _body(env: messages_pb2.Envelope) -> dict[str, Any]:
    if Kind(env.kind) is Kind.DMFA:  # hundreds of lines: their sums say enough
        dmfa = messages_pb2.DmfaDeclaration.FromString(env.payload)
        total = sum(x.gross_wage_cents for x in dmfa.lines)
        return {
            "employerKbo": dmfa.employer_kbo,
            "quarter": dmfa.quarter,
            "lines": len(dmfa.lines),
            "grossWageEurTotal": round(total / 100, 2),
        }
    body = _BODIES.get(env.kind)
    if body is None:
        return {}
    return MessageToDict(body.FromString(env.payload))


def _envelope_json(env: messages_pb2.Envelope) -> dict[str, Any]:
    return {
        "message_id": env.message_id,
        "kind": messages_pb2.MessageKind.Name(env.kind),
        "subject_niss": env.subject_niss,
        "subject_kbo": env.subject_kbo,
        "related_niss": len(env.related_niss),
        "dataset": env.dataset,
        "purpose": env.purpose,
        "deliberation": env.deliberation,
        "as_of": env.as_of,
        "body": _body(env),
        **({"citizen": _citizen_json(env.citizen)} if env.HasField("citizen") else {}),
    }


def _citizen_json(assertion: messages_pb2.CitizenAssertion) -> dict[str, Any]:
    fields = ("niss", "expires", "audience", "assertion_id", "means")
    return {name: getattr(assertion, name) for name in fields}


def _head(prepared: Prepared, seed: int | None) -> dict[str, Any]:
    report: dict[str, Any] = {
        "kind": messages_pb2.MessageKind.Name(prepared.envelope.kind),
        "sender": prepared.sender,
        "picked": prepared.picked,
    }
    if seed is not None:
        report["seed"] = seed
    if prepared.note:
        report["note"] = prepared.note
    report["envelope"] = _envelope_json(prepared.envelope)
    return report


def _answer(reply: messages_pb2.ExchangeReply) -> dict[str, Any] | None:
    if not reply.deliveries or not reply.deliveries[0].reply:
        return None
    found = messages_pb2.ConsultationAnswer.FromString(reply.deliveries[0].reply)
    return {"agency": found.agency, "dataset": found.dataset, "found": found.found, "fields": dict(found.fields)}


def reply_report(
    prepared: Prepared, reply: messages_pb2.ExchangeReply, receipt: Receipt | None, *, seed: int | None = None
) -> dict[str, Any]:
    """The JSON report of a routed exchange: outcome, answer or deliveries, route, deliberations, receipt."""
    route = [
        {"agency": d.agency, "via": d.via or None, "outcome": messages_pb2.Outcome.Name(d.outcome), "detail": d.detail}
        for d in reply.deliveries
    ]
    report = _head(prepared, seed)
    report |= {
        "outcome": messages_pb2.Outcome.Name(reply.outcome),
        "forwarded": reply.forwarded,
        "deliberations": [r for r in reply.deliberation.split(",") if r],
        "route": route,
    }
    if Kind(prepared.envelope.kind) is Kind.CONSULTATION:
        report["answer"] = _answer(reply)
    else:
        report["deliveries"] = dict(Counter(d["outcome"] for d in route))
    report["detail"] = reply.detail
    report["audit"] = receipt.as_json() if receipt else {"index": reply.audit_index}
    return report


def refusal_report(
    prepared: Prepared, refused: ExchangeRefused, receipt: Receipt | None, *, seed: int | None = None
) -> dict[str, Any]:
    """The JSON report of a refused exchange: status code, message, audit index and receipt."""
    report = _head(prepared, seed)
    report |= {
        "outcome": "REFUSED",
        "status": refused.code.name,
        "message": refused.details,
        "audit_index": refused.audit_index,
        "audit": receipt.as_json() if receipt else None,
    }
    return report


# ------------------------------------------------------------------ sending


def _receipt(client: CoreClient, index: int | None, message_id: str) -> Receipt | None:
    return None if index is None else client.receipt(index, message_id=message_id)


def _for_citizen(state: Path, sender: str, envelope: messages_pb2.Envelope) -> None:
    """Attach the FAS's assertion to an exchange acting for a citizen (see the module doc); FasError without a FAS."""
    if envelope.purpose == CITIZEN_PURPOSE and not envelope.HasField("citizen"):  # other exchanges read no key
        Fas.open(state / "pki").vouch(envelope, sender, time.time())


def send_one(state: Path, prepared: Prepared, timeout_s: float, seed: int | None) -> tuple[int, dict[str, Any]]:
    env = prepared.envelope
    _for_citizen(state, prepared.sender, env)
    with CoreClient.connect(state, prepared.sender, timeout_s=timeout_s) as client:
        try:
            reply = client.exchange(env)
        except ExchangeRefused as refused:
            return 1, refusal_report(
                prepared, refused, _receipt(client, refused.audit_index, env.message_id), seed=seed
            )
        receipt = client.receipt(reply.audit_index, message_id=env.message_id)
    code = 0 if messages_pb2.Outcome.Name(reply.outcome) in ACCEPTED else 1
    return code, reply_report(prepared, reply, receipt, seed=seed)


def _outcome(client: CoreClient, envelope: messages_pb2.Envelope) -> str:
    try:
        return messages_pb2.Outcome.Name(client.exchange(envelope).outcome)
    except ExchangeRefused as refused:
        return str(refused.code.name)


def _send_batch(
    state: Path,
    sender: AgencyId,
    batch: Sequence[tuple[Kind, messages_pb2.Envelope]],
    timeout_s: float,
    tick: Callable[[], None],
) -> list[tuple[Kind, str]]:
    outcomes = []
    with CoreClient.connect(state, sender, timeout_s=timeout_s) as client:
        for kind, envelope in batch:
            _for_citizen(state, sender, envelope)
            outcomes.append((kind, _outcome(client, envelope)))
            tick()
    return outcomes


def count_outcomes(outcomes: Iterable[tuple[Kind, str]], per_kind: int, seed: int) -> dict[str, Any]:
    """{"CONSULTATION": {"DELIVERED": n, ...}, ..., "totals": {...}}: every kind, in kind order."""
    by_kind: dict[str, Counter[str]] = {kind.name: Counter() for kind in samples.KINDS}
    for kind, outcome in outcomes:
        by_kind[kind.name][outcome] += 1
    overall: Counter[str] = Counter()
    for counts in by_kind.values():
        overall.update(counts)
    report: dict[str, Any] = {name: dict(counts) for name, counts in by_kind.items()}
    report["totals"] = {"sent": sum(overall.values()), "by_outcome": dict(overall), "per_kind": per_kind, "seed": seed}
    return report


def send_random(
    state: Path,
    world: World,
    *,
    per_kind: int,
    seed: int,
    concurrency: int = DEFAULT_CONCURRENCY,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress: bool = True,
) -> dict[str, Any]:
    """Send `per_kind` exchanges of every kind drawn by `agencies.exchanges.samples` with `seed`; count the outcomes.

    The samples are drawn first (deterministic per world and seed), then sent sender by sender
    (one channel each, `concurrency` senders at once). Message ids get a prefix fresh for each
    run, so that agencies do not take a second run for redeliveries of the first.
    """
    rng = np.random.default_rng(seed)
    run = uuid.uuid4().hex[:8]
    batches: dict[AgencyId, list[tuple[Kind, messages_pb2.Envelope]]] = defaultdict(list)
    for _ in range(per_kind):
        for kind, sampler in samples.KINDS.items():
            sample = sampler(world, rng)
            batches[sample.sender].append((kind, with_fresh_id(sample.envelope, run)))
    total = per_kind * len(samples.KINDS)
    lock = threading.Lock()
    with tqdm(total=total, desc="send", unit="msg", file=sys.stderr, disable=not progress) as bar:

        def tick() -> None:
            with lock:
                bar.update()

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(_send_batch, state, s, b, timeout_s, tick) for s, b in batches.items()]
            outcomes = [o for f in as_completed(futures) for o in f.result()]
    return count_outcomes(outcomes, per_kind, seed)
