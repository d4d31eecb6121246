"""What a traffic source sends, as the routing keys of a `crossroads.routing.Request`.

The simulation does not decide where a message goes: it draws a plausible request from the
synthetic world (a sender of the source's categories, a person or employer, a dataset and
purpose its deliberations allow) and hands it, with the persons' directory rows, to the core's
own `route()`. A request that the rules refuse is simulated as refused.

  CONSULTATION   a person in the sender's own files when its deliberation demands it
  DIMONA, DRS    an employed person and their employer
  DMFA           an employer with its workers (at most MAX_SUBJECTS, as the core accepts)
  MUTATION       a person; sent by the dataset's authentic source
  (DE)INTEGRATION  a person entered in (or removed from) the sender's own sector
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agencies.authorizations import MUTATION_CHANGES
from agencies.columns import OPEN, day_number
from agencies.world import World
from crossroads.domain import (
    QUALITY_DEFINITIVE,
    Agency,
    Category,
    Condition,
    Dataset,
    DirectoryEntry,
    Kind,
    Purpose,
)
from crossroads.identifiers import Niss
from crossroads.routing import Request
from crossroads.validation import MAX_RELATED as MAX_SUBJECTS  # persons per message the core accepts
from scenarios.schema import ScenarioError, Source

__all__ = ["MAX_SUBJECTS", "Drawn", "RequestMaker"]

_NO_PURPOSE = Purpose("none")


@dataclass(frozen=True, slots=True)
class Drawn:
    """One drawn request with the directory rows of its subjects (what `route()` is given)."""

    request: Request
    files: tuple[DirectoryEntry, ...]


def _weighted(weights: Mapping[str, float], rng: np.random.Generator) -> str:
    """A name drawn with probability proportional to its weight."""
    names = list(weights)
    cumulative = list(itertools.accumulate(weights[n] for n in names))
    return names[min(bisect.bisect_right(cumulative, rng.random() * cumulative[-1]), len(names) - 1)]


class RequestMaker:
    """Draws requests of one world; validates the source's names against it first."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.knowledge = world.knowledge
        self.as_of: dt.date = world.spec.as_of
        self._today = day_number(self.as_of)
        self._own: tuple[np.ndarray, np.ndarray] | None = None
        self._employed = np.flatnonzero(world.employment.employer >= 0)
        self._employers = np.flatnonzero(np.diff(world.employment.offsets) > 0)

    # ---------------------------------------------------------------- checks before a run

    def check(self, source: Source, where: str) -> None:
        """ScenarioError unless every category and dataset `source` names exists in this world."""
        known = self.knowledge.by_category
        for category in source.senders:
            if category not in known:
                raise ScenarioError(
                    f"{where}.senders.{category}", f"no such agency category; known: {', '.join(sorted(known))}"
                )
        for dataset in source.datasets:
            if dataset not in self.knowledge.sources:
                raise ScenarioError(
                    f"{where}.datasets.{dataset}",
                    f"no such dataset; known: {', '.join(sorted(self.knowledge.sources))}",
                )
        if not source.senders and source.kind != Kind.MUTATION.name:
            raise ScenarioError(f"{where}.senders", "missing; every source but mutations names its sender categories")
        if source.kind == Kind.MUTATION.name and not source.datasets:
            raise ScenarioError(f"{where}.datasets", "missing; mutations name the datasets that change")

    # ---------------------------------------------------------------- drawing

    def draw(self, source: Source, rng: np.random.Generator) -> Drawn:
        kind = Kind[source.kind]
        if kind is Kind.MUTATION:
            return self._mutation(source, rng)
        sender = self._sender(source, rng)
        if kind is Kind.CONSULTATION:
            return self._consultation(source, sender, rng)
        if kind is Kind.DMFA:
            return self._dmfa(sender, rng)
        if kind in (Kind.DIMONA, Kind.DRS):
            dataset = Dataset("dimona") if kind is Kind.DIMONA else self._drs_dataset(source, rng)
            return self._worker_declaration(kind, dataset, sender, rng)
        return self._integration(kind, sender, rng)

    def _sender(self, source: Source, rng: np.random.Generator) -> Agency:
        members = self.knowledge.by_category[Category(_weighted(source.senders, rng))]
        return self.knowledge.agencies[members[int(rng.integers(len(members)))]]

    def _person(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.world.person_count))

    def _files(self, persons: Sequence[int]) -> tuple[DirectoryEntry, ...]:
        return tuple(e for i in persons for e in self.world.files_of_person(i))

    def _request(
        self, kind: Kind, sender: Agency, dataset: Dataset, purpose: Purpose, persons: Sequence[int], **extra: object
    ) -> Drawn:
        subjects = tuple(Niss(self.world.niss(i)) for i in persons)
        request = Request(kind, sender.id, dataset, purpose, self.as_of, subjects, **extra)  # type: ignore[arg-type]
        return Drawn(request, self._files(persons))

    def _consultation(self, source: Source, sender: Agency, rng: np.random.Generator) -> Drawn:
        allowed = [
            d
            for d in self.knowledge.deliberations
            if sender.category in d.requesters and d.dataset in self.knowledge.sources
        ]
        wanted = [d for d in allowed if not source.datasets or d.dataset in source.datasets]
        if not wanted:  # nothing allows it: the request is drawn anyway and the rules refuse it
            names = list(source.datasets) or sorted(self.knowledge.sources)
            dataset = Dataset(names[int(rng.integers(len(names)))])
            return self._request(Kind.CONSULTATION, sender, dataset, _NO_PURPOSE, [self._person(rng)])
        if source.datasets:
            dataset = Dataset(
                _weighted({d: w for d, w in source.datasets.items() if any(x.dataset == d for x in wanted)}, rng)
            )
            wanted = [d for d in wanted if d.dataset == dataset]
        grant = wanted[int(rng.integers(len(wanted)))]
        purpose = sorted(grant.purposes)[0]
        own = grant.condition is Condition.OWN_FILES
        person = self._own_file(sender, rng) if own else None
        return self._request(
            Kind.CONSULTATION, sender, grant.dataset, purpose, [self._person(rng) if person is None else person]
        )

    def _own_file(self, sender: Agency, rng: np.random.Generator) -> int | None:
        """A person with an open file at `sender`, None if it has none."""
        if self._own is None:
            # open rows grouped by agency, once: row indices, and where each agency's run starts
            rows = self.world.rows
            open_rows = np.flatnonzero((rows.start <= self._today) & ((rows.end == OPEN) | (rows.end >= self._today)))
            order = open_rows[np.argsort(rows.agency[open_rows], kind="stable")]
            bounds = np.searchsorted(
                rows.agency[order], np.arange(len(self.world.agencies) + 1, dtype=rows.agency.dtype)
            )
            self._own = (order, bounds)
        order, bounds = self._own
        a = self.world.agency_index[sender.id]
        lo, hi = int(bounds[a]), int(bounds[a + 1])
        if hi == lo:
            return None
        return int(self.world.rows.person[order[int(rng.integers(lo, hi))]])

    def _worker_declaration(self, kind: Kind, dataset: Dataset, sender: Agency, rng: np.random.Generator) -> Drawn:
        worker = int(self._employed[int(rng.integers(self._employed.size))])
        employer = self.world.employer_of(worker)
        kbo = None if employer is None else self.world.kbo(employer)
        return self._request(kind, sender, dataset, Purpose("declaration"), [worker], kbo=kbo)

    def _dmfa(self, sender: Agency, rng: np.random.Generator) -> Drawn:
        j = int(self._employers[int(rng.integers(self._employers.size))])
        workers = [int(w) for w in self.world.workers_of(j)[:MAX_SUBJECTS]]
        return self._request(Kind.DMFA, sender, Dataset("dmfa"), Purpose("declaration"), workers, kbo=self.world.kbo(j))

    def _drs_dataset(self, source: Source, rng: np.random.Generator) -> Dataset:
        if source.datasets:
            return Dataset(_weighted(source.datasets, rng))
        drs = sorted(d for d in self.knowledge.sources if d.startswith("drs_"))
        return Dataset(drs[int(rng.integers(len(drs)))])

    def _mutation(self, source: Source, rng: np.random.Generator) -> Drawn:
        dataset = Dataset(_weighted(source.datasets, rng))
        origin = self.knowledge.sources[dataset].source
        sender = self.knowledge.agencies[origin] if origin in self.knowledge.agencies else self._sender(source, rng)  # type: ignore[index]
        changes = MUTATION_CHANGES.get(dataset, ("*",))
        change = changes[int(rng.integers(len(changes)))]
        return self._request(Kind.MUTATION, sender, dataset, Purpose("mutation"), [self._person(rng)], change=change)

    def _integration(self, kind: Kind, sender: Agency, rng: np.random.Generator) -> Drawn:
        person = self._own_file(sender, rng) if kind is Kind.DEINTEGRATION else None
        person = self._person(rng) if person is None else person
        entry = DirectoryEntry(
            Niss(self.world.niss(person)),
            sender.sector,
            sender.id,
            QUALITY_DEFINITIVE,
            0,
            self.as_of,
            self.as_of if kind is Kind.DEINTEGRATION else None,
        )
        return self._request(kind, sender, Dataset("directory"), Purpose("integration"), [person], integration=entry)
