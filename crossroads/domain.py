"""The facts the routing decision reasons over: agencies, datasets, deliberations, files.

All of it is immutable data. The knowledge part of the reference directory (who holds which
dataset, who may obtain which dataset under which deliberation, how each sector wants its
mutations) is a `Knowledge`; the person part is a sequence of `DirectoryEntry` rows in the
layout of CBSS form I605 (NISS | sector | quality code | phase code | start | end), with the
agency that holds the file added, since a sector hub's own directory knows it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NewType

from crossroads.identifiers import Niss

AgencyId = NewType("AgencyId", str)
Category = NewType("Category", str)
SectorCode = NewType("SectorCode", int)
QualityCode = NewType("QualityCode", int)
Dataset = NewType("Dataset", str)
Purpose = NewType("Purpose", str)
DeliberationRef = NewType("DeliberationRef", str)

QUALITY_PROVISIONAL = QualityCode(902)
QUALITY_DEFINITIVE = QualityCode(0)


class Kind(enum.IntEnum):
    """Message kinds; the values are those of `crossroads.v1.MessageKind`."""

    CONSULTATION = 1
    DIMONA = 2
    DMFA = 3
    DRS = 4
    INTEGRATION = 5
    DEINTEGRATION = 6
    MUTATION = 7


DECLARATIONS = frozenset({Kind.DIMONA, Kind.DMFA, Kind.DRS})


class Condition(enum.Enum):
    """What a deliberation demands beyond sender, dataset and purpose."""

    NONE = "none"
    OWN_FILES = "own_files"  # only for persons in the requester's own files on that date


class Reach(enum.Enum):
    """Which of a sector's agencies get a mutation about a person (sector rules)."""

    ALL_KNOWN = "all_known"  # every agency that knows or knew the person
    OPEN_FILES = "open_files"  # every agency with an open file on the date
    LAST_COMPETENT = "last_competent"  # only the agency whose file started last


@dataclass(frozen=True, slots=True)
class Agency:
    id: AgencyId
    name: str
    category: Category
    sector: SectorCode
    hub: AgencyId | None = None  # the sector hub of a secondary network, if any


@dataclass(frozen=True, slots=True)
class DatasetSource:
    """Where a dataset lives: one authentic source, or the agency of `sector` holding the file."""

    dataset: Dataset
    sector: SectorCode
    source: AgencyId | None = None  # None: the agency of `sector` with the person in its files
    declarants: frozenset[Category] = frozenset()  # for declarations: who may file them


@dataclass(frozen=True, slots=True)
class Deliberation:
    """A prior authorization: `requesters` may obtain `dataset` for `purposes` under `condition`.

    For declarations (DIMONA, DmfA, DRS) the same deliberation names who receives the
    declaration when the core fans it out.
    """

    ref: DeliberationRef
    requesters: frozenset[Category]
    dataset: Dataset
    purposes: frozenset[Purpose]
    condition: Condition = Condition.NONE


@dataclass(frozen=True, slots=True)
class MutationRule:
    """A sector's rule for one kind of change ("*" = any change not named otherwise)."""

    sector: SectorCode
    change: str
    reach: Reach
    head_of_household_only: bool = False


@dataclass(frozen=True, slots=True)
class DirectoryEntry:
    """One row of the person part of the reference directory (CBSS form I605, plus agency)."""

    niss: Niss
    sector: SectorCode
    agency: AgencyId
    quality: QualityCode
    phase: int
    start: dt.date
    end: dt.date | None  # None: the file is open

    def open_on(self, day: dt.date) -> bool:
        return self.start <= day and (self.end is None or day <= self.end)


HEAD_OF_HOUSEHOLD = QualityCode(1)  # quality code that marks the head of a household


@dataclass(frozen=True)
class Knowledge:
    """The knowledge part of the reference directory, indexed for the routing decision."""

    agencies: Mapping[AgencyId, Agency]
    sources: Mapping[Dataset, DatasetSource]
    deliberations: tuple[Deliberation, ...]
    mutation_rules: tuple[MutationRule, ...] = ()
    by_category: Mapping[Category, tuple[AgencyId, ...]] = field(default_factory=dict)
    by_dataset: Mapping[Dataset, tuple[Deliberation, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        agencies: Iterable[Agency],
        sources: Iterable[DatasetSource],
        deliberations: Iterable[Deliberation],
        mutation_rules: Iterable[MutationRule] = (),
    ) -> Knowledge:
        agency_map = {a.id: a for a in agencies}
        categories: dict[Category, list[AgencyId]] = {}
        for agency in agency_map.values():
            categories.setdefault(agency.category, []).append(agency.id)
        delibs = tuple(deliberations)
        per_dataset: dict[Dataset, list[Deliberation]] = {}
        for d in delibs:
            per_dataset.setdefault(d.dataset, []).append(d)
        return cls(
            agencies=agency_map,
            sources={s.dataset: s for s in sources},
            deliberations=delibs,
            mutation_rules=tuple(mutation_rules),
            by_category={c: tuple(ids) for c, ids in categories.items()},
            by_dataset={k: tuple(v) for k, v in per_dataset.items()},
        )
