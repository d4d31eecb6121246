"""The demo's live steps that tell: what happened to each exchange, the signed audit head, a receipt."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from crossroads.client import CoreClient
from protos import messages_pb2, services_pb2
from testbed.demo.session import _ROUTE_SHOWN, Demo, Sent

__all__ = ["account", "audit_head"]


def _route(sent: Sent, limit: int = _ROUTE_SHOWN) -> str:
    if sent.reply is None:
        return "-"
    hops = [f"{d.agency} via {d.via}" if d.via else d.agency for d in sent.reply.deliveries]
    if not hops:
        return "(directory only)"
    more = f", +{len(hops) - limit} more" if len(hops) > limit else ""
    return ", ".join(hops[:limit]) + more


def _table(rows: Sequence[Sequence[str]]) -> Iterator[str]:
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for row in rows:
        yield "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()


def _first(demo: Demo, kind: str) -> Sent | None:
    return next((s for s in demo.sent if s.kind == kind and s.reply is not None and s.reply.deliveries), None)


def _answer_lines(sent: Sent) -> Iterator[str]:
    assert sent.reply is not None
    found = messages_pb2.ConsultationAnswer.FromString(sent.reply.deliveries[0].reply)
    yield (
        f"#{sent.number}: {sent.sender} asked for the {sent.envelope.dataset} data of {sent.envelope.subject_niss} "
        f"(purpose {sent.envelope.purpose}, deliberation {sent.reply.deliberation}); {found.agency} answered:"
    )
    yield from (f"    {key}: {value}" for key, value in sorted(found.fields.items()))


def account(demo: Demo) -> None:
    """The table of what happened, one consultation's answer, a DmfA's fan-out and a mutation's push."""
    header = ("#", "kind", "sender", "subject", "outcome", "route", "deliberation", "audit")
    rows = [header] + [
        (
            str(s.number),
            s.kind,
            s.sender,
            s.envelope.subject_niss or s.envelope.subject_kbo,
            s.outcome,
            _route(s),
            s.reply.deliberation if s.reply and s.reply.deliberation else "-",
            str(s.audit_index),
        )
        for s in demo.sent
    ]
    for line in _table(rows):
        demo.say("  " + line)
    consultation, dmfa, mutation = _first(demo, "CONSULTATION"), _first(demo, "DMFA"), _first(demo, "MUTATION")
    if consultation is not None:
        demo.say("")
        for line in _answer_lines(consultation):
            demo.say(line)
    for sent, what in ((dmfa, "DmfA of employer {kbo} ({n} workers)"), (mutation, "mutation about {niss}")):
        if sent is not None:
            text = what.format(
                kbo=sent.envelope.subject_kbo, n=len(sent.envelope.related_niss), niss=sent.envelope.subject_niss
            )
            demo.say(f"\n#{sent.number}: the {text} went to {len(sent.reply.deliveries)} agencies:")  # type: ignore[union-attr]
            demo.say("    " + _route(sent, limit=1_000))
    for sent in (s for s in demo.sent if s.refusal is not None):
        assert sent.refusal is not None
        demo.say(f"\n#{sent.number} refused: {sent.refusal.code.name}: {sent.refusal.details}")
        demo.say(f"    (audited all the same: audit record {sent.refusal.audit_index})")
    demo.results["exchanges"] = [s.as_json() for s in demo.sent]


def _head_json(head: services_pb2.AuditHead) -> dict[str, Any]:
    return {"size": head.size, "root": head.root.hex(), "checkpoint": head.checkpoint}


def audit_head(demo: Demo) -> None:
    """The signed head of the audit log, and one exchange's receipt verified against it."""
    with CoreClient.connect(demo.state, demo.sent[0].sender) as client:
        head = client.head()
    demo.say(f"audit log: {head.size} records, root {head.root.hex()}")
    demo.say("signed checkpoint (C2SP, Ed25519):")
    for line in head.checkpoint.rstrip("\n").split("\n"):
        demo.say("    " + line)
    receipt = demo.receipt(demo.sent[0])
    verdict = "verifies" if receipt.verified else f"does NOT verify ({receipt.problem})"
    demo.say(
        f"receipt of #{demo.sent[0].number}: audit record {receipt.index}, inclusion proof of "
        f"{len(receipt.proof_hex)} hashes in the tree of {receipt.tree_size}: {verdict} against the signed checkpoint"
    )
    demo.ok &= receipt.verified
    demo.results["head"] = _head_json(head)
    demo.results["receipt"] = receipt.as_json()
