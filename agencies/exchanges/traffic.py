"""What a simulated traffic source sends, as the routing keys of a `crossroads.routing.Request`.

The simulation does not decide where a message goes: it draws a plausible request from the
synthetic world with the draws of draws.py (a sender of the source's categories, a person or
employer, a dataset and purpose its deliberations allow) and hands it, with the persons'
directory rows, to the core's own `route()`. No protobuf is built. A request the rules refuse
is simulated as refused: unlike the samplers, a source asks about anybody.

  CONSULTATION   a person in the sender's own files when its deliberation demands it, else anybody
  DIMONA, DRS    a worker and their employer
  DMFA           an employer with its workers (at most MAX_SUBJECTS, as the core accepts)
  MUTATION       a person; sent by the dataset's authentic source
  (DE)INTEGRATION  a person entered in (or removed from) the sender's own sector
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from agencies import authorizations as a
from agencies.exchanges.draws import Draws
from agencies.world import World
from crossroads.domain import QUALITY_DEFINITIVE, Agency, Category, Condition, Dataset, DirectoryEntry, Kind, Purpose
from crossroads.identifiers import Niss
from crossroads.routing import Request
from crossroads.validation import MAX_RELATED
from scenarios.schema import ScenarioError, Source

__all__ = ["MAX_SUBJECTS", "Drawn", "RequestMaker"]

MAX_SUBJECTS = MAX_RELATED  # persons per message the core accepts
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
    """Draws the requests of traffic sources on one world; `check` validates a source's names first."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.knowledge = world.knowledge

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

    def draw(self, source: Source, rng: np.random.Generator) -> Drawn:
        """One request of `source` (checked), drawn with `rng`."""
        draws = Draws(self.world, rng)
        kind = Kind[source.kind]
        if kind is Kind.MUTATION:
            return self._mutation(source, draws)
        sender = self._sender(source, draws)
        if kind is Kind.CONSULTATION:
            return self._consultation(source, sender, draws)
        if kind in (Kind.DIMONA, Kind.DMFA, Kind.DRS):
            return self._declaration(kind, source, sender, draws)
        return self._integration(kind, sender, draws)

    def _sender(self, source: Source, draws: Draws) -> Agency:
        members = self.knowledge.by_category[Category(_weighted(source.senders, draws.rng))]
        return self.knowledge.agencies[draws.one(members)]

    def _request(
        self, kind: Kind, sender: Agency, dataset: Dataset, purpose: Purpose, persons: Sequence[int], **extra: object
    ) -> Drawn:
        subjects = tuple(Niss(self.world.niss(i)) for i in persons)
        request = Request(kind, sender.id, dataset, purpose, self.world.spec.as_of, subjects, **extra)  # type: ignore[arg-type]
        return Drawn(request, tuple(e for i in persons for e in self.world.files_of_person(i)))

    def _consultation(self, source: Source, sender: Agency, draws: Draws) -> Drawn:
        allowed = [
            d
            for d in self.knowledge.deliberations
            if sender.category in d.requesters and d.dataset in self.knowledge.sources
        ]
        wanted = [d for d in allowed if not source.datasets or d.dataset in source.datasets]
        if not wanted:  # nothing allows it: the request is drawn anyway and the rules refuse it
            dataset = Dataset(draws.one(list(source.datasets) or sorted(self.knowledge.sources)))
            return self._request(Kind.CONSULTATION, sender, dataset, _NO_PURPOSE, [draws.person()])
        if source.datasets:
            dataset = Dataset(
                _weighted({d: w for d, w in source.datasets.items() if any(x.dataset == d for x in wanted)}, draws.rng)
            )
            wanted = [d for d in wanted if d.dataset == dataset]
        grant = draws.one(wanted)
        person = draws.own_file(sender.id) if grant.condition is Condition.OWN_FILES else None
        person = draws.person() if person is None else person
        return self._request(Kind.CONSULTATION, sender, grant.dataset, sorted(grant.purposes)[0], [person])

    def _declaration(self, kind: Kind, source: Source, sender: Agency, draws: Draws) -> Drawn:
        j = draws.employer()
        if kind is Kind.DMFA:
            dataset, workers = a.DMFA, [int(w) for w in self.world.workers_of(j)[:MAX_SUBJECTS]]
        else:
            dataset = a.DIMONA if kind is Kind.DIMONA else self._drs(source, draws)
            workers = [draws.worker(j)]
        return self._request(kind, sender, dataset, a.DECLARATION_PURPOSE, workers, kbo=self.world.kbo(j))

    def _drs(self, source: Source, draws: Draws) -> Dataset:
        if source.datasets:
            return Dataset(_weighted(source.datasets, draws.rng))
        return Dataset(draws.one(sorted(d for d in self.knowledge.sources if d.startswith("drs_"))))

    def _mutation(self, source: Source, draws: Draws) -> Drawn:
        dataset = Dataset(_weighted(source.datasets, draws.rng))
        origin = self.knowledge.sources[dataset].source
        sender = self.knowledge.agencies[origin] if origin in self.knowledge.agencies else self._sender(source, draws)  # type: ignore[index]
        change = draws.mutation_change(dataset)
        return self._request(Kind.MUTATION, sender, dataset, a.MUTATION_PURPOSE, [draws.person()], change=change)

    def _integration(self, kind: Kind, sender: Agency, draws: Draws) -> Drawn:
        person = draws.own_file(sender.id) if kind is Kind.DEINTEGRATION else None
        person = draws.person() if person is None else person
        day, niss = self.world.spec.as_of, Niss(self.world.niss(person))
        closed = day if kind is Kind.DEINTEGRATION else None
        entry = DirectoryEntry(niss, sender.sector, sender.id, QUALITY_DEFINITIVE, 0, day, closed)
        return self._request(kind, sender, Dataset("directory"), Purpose("integration"), [person], integration=entry)
