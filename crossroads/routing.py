"""The routing decision: who may send what about whom, and where it goes.

One pure function, `route`, with no I/O, no clock and no randomness. The live core calls it
for every message it has authenticated and validated; the SimPy model calls it for every
simulated message. Its inputs are the authenticated sender, the routing keys of the message,
the knowledge part of the reference directory and the directory rows of the persons
concerned; its output is a `Routed` decision (destinations, the deliberations that allow it,
and any directory change to apply) or a `Denied` / `Unroutable` decision naming the rule.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from crossroads.domain import (
    DECLARATIONS,
    HEAD_OF_HOUSEHOLD,
    Agency,
    AgencyId,
    Condition,
    Dataset,
    Deliberation,
    DeliberationRef,
    DirectoryEntry,
    Kind,
    Knowledge,
    MutationRule,
    Purpose,
    QualityCode,
    Reach,
    SectorCode,
)
from crossroads.identifiers import Kbo, Niss

__all__ = ["Decision", "Denied", "Destination", "Request", "Routed", "Unroutable", "route"]


@dataclass(frozen=True, slots=True)
class Request:
    """The routing keys of one message, after authentication and validation."""

    kind: Kind
    sender: AgencyId  # from the client certificate, never from a field
    dataset: Dataset
    purpose: Purpose
    as_of: dt.date
    subjects: tuple[Niss, ...] = ()  # the subject first, then related persons
    kbo: Kbo | None = None
    deliberation: DeliberationRef | None = None  # the one the sender relies on, if named
    change: str = ""  # for mutations: "identity", "address", ...
    integration: DirectoryEntry | None = None  # for (de-)integrations


@dataclass(frozen=True, slots=True)
class Destination:
    agency: AgencyId
    via: AgencyId | None = None  # the sector hub the message passes through


@dataclass(frozen=True, slots=True)
class Routed:
    destinations: tuple[Destination, ...]
    deliberations: tuple[DeliberationRef, ...]
    quality: QualityCode | None = None  # the subject's quality code at the sender, if known
    directory_change: DirectoryEntry | None = None  # integration to apply before forwarding


@dataclass(frozen=True, slots=True)
class Denied:
    """Refused by a rule: the sender may not do this (PERMISSION_DENIED)."""

    rule: str
    reason: str


@dataclass(frozen=True, slots=True)
class Unroutable:
    """Allowed, but nobody to route to (e.g. no agency has a file on the person)."""

    rule: str
    reason: str


Decision = Routed | Denied | Unroutable


def route(request: Request, knowledge: Knowledge, files: Sequence[DirectoryEntry]) -> Decision:
    """Decide where `request` goes. `files` are the directory rows of `request.subjects`."""
    sender = knowledge.agencies.get(request.sender)
    if sender is None:
        return Denied("unknown_sender", f"{request.sender} is not an agency of the network")
    if request.kind is Kind.CONSULTATION:
        return _consultation(request, sender, knowledge, files)
    if request.kind in DECLARATIONS:
        return _declaration(request, sender, knowledge, files)
    if request.kind is Kind.MUTATION:
        return _mutation(request, sender, knowledge, files)
    return _integration(request, sender, knowledge)


def _open_files(files: Iterable[DirectoryEntry], day: dt.date) -> list[DirectoryEntry]:
    return [e for e in files if e.open_on(day)]


def _quality_at(
    agency: AgencyId, subject: Niss | None, files: Iterable[DirectoryEntry], day: dt.date
) -> QualityCode | None:
    for e in files:
        if e.agency == agency and e.niss == subject and e.open_on(day):
            return e.quality
    return None


def _allowing(request: Request, sender: Agency, knowledge: Knowledge) -> list[Deliberation]:
    """The deliberations letting `sender` obtain the dataset for the purpose (and named ref)."""
    return [
        d
        for d in knowledge.by_dataset.get(request.dataset, ())
        if sender.category in d.requesters
        and request.purpose in d.purposes
        and (request.deliberation is None or d.ref == request.deliberation)
    ]


def _holder(sector: SectorCode, subject: Niss, files: Sequence[DirectoryEntry], day: dt.date) -> AgencyId | None:
    """The agency of `sector` whose open file on `subject` started last."""
    best: DirectoryEntry | None = None
    for e in files:
        if e.niss == subject and e.sector == sector and e.open_on(day) and (best is None or e.start > best.start):
            best = e
    return best.agency if best else None


def _to(agency: AgencyId, knowledge: Knowledge) -> Destination:
    return Destination(agency, knowledge.agencies[agency].hub if agency in knowledge.agencies else None)


def _consultation(request: Request, sender: Agency, knowledge: Knowledge, files: Sequence[DirectoryEntry]) -> Decision:
    source = knowledge.sources.get(request.dataset)
    if source is None:
        return Denied("unknown_dataset", f"no agency holds a dataset called {request.dataset!r}")
    allowing = _allowing(request, sender, knowledge)
    if not allowing:
        named = f" under deliberation {request.deliberation}" if request.deliberation else ""
        return Denied(
            "no_deliberation",
            f"no deliberation lets {sender.category} obtain {request.dataset} for purpose {request.purpose!r}{named}",
        )
    subject = request.subjects[0] if request.subjects else None
    quality = _quality_at(sender.id, subject, files, request.as_of)
    usable = [d for d in allowing if d.condition is Condition.NONE or quality is not None]
    if not usable:
        return Denied(
            "not_in_files",
            f"deliberation {allowing[0].ref} allows {request.dataset} only for persons in "
            f"{sender.id}'s own files on {request.as_of.isoformat()}",
        )
    target = source.source
    if target is None:
        if subject is None:
            return Unroutable("no_subject", f"{request.dataset} is held per person: name the person")
        target = _holder(source.sector, subject, files, request.as_of)
        if target is None:
            return Unroutable(
                "no_holder",
                f"no agency of sector {source.sector} has a file on {subject} on {request.as_of.isoformat()}",
            )
    return Routed((_to(target, knowledge),), (usable[0].ref,), quality)


def _declaration(request: Request, sender: Agency, knowledge: Knowledge, files: Sequence[DirectoryEntry]) -> Decision:
    source = knowledge.sources.get(request.dataset)
    if source is None:
        return Denied("unknown_dataset", f"no agency collects declarations called {request.dataset!r}")
    if sender.category not in source.declarants:
        return Denied("not_a_declarant", f"{sender.category} may not file {request.dataset} declarations")
    collector = source.source
    if collector is None and request.subjects:
        collector = _holder(source.sector, request.subjects[0], files, request.as_of)
    if collector is None:
        return Unroutable("no_collector", f"nobody collects {request.dataset} for these persons")
    targets: dict[AgencyId, None] = {collector: None}
    refs: list[DeliberationRef] = []
    subjects = set(request.subjects)
    open_files = [e for e in _open_files(files, request.as_of) if e.niss in subjects]
    for d in knowledge.by_dataset.get(request.dataset, ()):
        named = _recipients(d, knowledge, open_files)
        if named:
            refs.append(d.ref)
            targets.update(dict.fromkeys(named))
    targets.pop(sender.id, None)
    destinations = tuple(_to(a, knowledge) for a in targets)
    return Routed(destinations, tuple(refs))


def _recipients(d: Deliberation, knowledge: Knowledge, open_files: Sequence[DirectoryEntry]) -> list[AgencyId]:
    """Who receives a declaration under deliberation `d`, in a stable order."""
    if d.condition is Condition.NONE:
        return [a for c in sorted(d.requesters) for a in knowledge.by_category.get(c, ())]
    holders = dict.fromkeys(
        e.agency
        for e in open_files
        if e.agency in knowledge.agencies and knowledge.agencies[e.agency].category in d.requesters
    )
    return list(holders)


def _rule_for(rules: Sequence[MutationRule], sector: SectorCode, change: str) -> MutationRule | None:
    fallback = None
    for r in rules:
        if r.sector == sector:
            if r.change == change:
                return r
            if r.change == "*":
                fallback = r
    return fallback


def _reached(entries: Sequence[DirectoryEntry], rule: MutationRule | None, day: dt.date) -> list[DirectoryEntry]:
    reach = rule.reach if rule else Reach.OPEN_FILES
    if rule is not None and rule.head_of_household_only:
        entries = [e for e in entries if e.quality == HEAD_OF_HOUSEHOLD]
    if reach is Reach.ALL_KNOWN:
        return list(entries)
    current = [e for e in entries if e.open_on(day)]
    if reach is Reach.OPEN_FILES or not current:
        return current
    return [max(current, key=lambda e: e.start)]


def _mutation(request: Request, sender: Agency, knowledge: Knowledge, files: Sequence[DirectoryEntry]) -> Decision:
    source = knowledge.sources.get(request.dataset)
    if source is None:
        return Denied("unknown_dataset", f"no agency is the source of {request.dataset!r}")
    if source.source != sender.id:
        return Denied("not_authentic_source", f"{sender.id} is not the authentic source of {request.dataset}")
    grants = knowledge.by_dataset.get(request.dataset, ())
    subjects = set(request.subjects)
    by_sector: dict[SectorCode, list[DirectoryEntry]] = {}
    for e in files:
        if e.niss in subjects:
            by_sector.setdefault(e.sector, []).append(e)
    targets: dict[AgencyId, None] = {}
    refs: dict[DeliberationRef, None] = {}
    for sector in sorted(by_sector):
        rule = _rule_for(knowledge.mutation_rules, sector, request.change)
        for e in _reached(by_sector[sector], rule, request.as_of):
            agency = knowledge.agencies.get(e.agency)
            grant = next((d for d in grants if agency is not None and agency.category in d.requesters), None)
            if grant is not None and e.agency != sender.id:
                targets[e.agency] = None
                refs[grant.ref] = None
    return Routed(tuple(_to(a, knowledge) for a in targets), tuple(refs))


def _integration(request: Request, sender: Agency, knowledge: Knowledge) -> Decision:
    entry = request.integration
    if entry is None:
        return Unroutable("no_entry", "an integration names the file to open or close")
    if entry.sector != sender.sector:
        return Denied(
            "foreign_sector",
            f"{sender.id} is in sector {sender.sector} and may not integrate into sector {entry.sector}",
        )
    # registered at both levels: the sector hub keeps its own sector directory
    destinations = (Destination(sender.hub),) if sender.hub else ()
    return Routed(destinations, (), entry.quality, directory_change=entry)
