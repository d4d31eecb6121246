"""Who asks, about whom, under which deliberation, for which employer and workers: drawn once.

`Draws(world, rng, day)` makes the seeded choices every exchange of the world is made of; the
samplers (samples.py), the fill-in around fields a person named (asked.py) and the simulation's
routing keys (traffic.py) all draw through it. A directory file is "open" when it is open on
`day` (the world's own day by default). Same world, day and rng state -> same draws.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from agencies import authorizations as a
from agencies import catalogue as c
from agencies.columns import day_number, day_of
from agencies.employers import JOINT_COMMITTEES, JointCommittee
from agencies.world import World
from crossroads.domain import AgencyId, Condition, Dataset, Deliberation, DeliberationRef, SectorCode

__all__ = ["Draws", "NoExchange"]

_T = TypeVar("_T")
_SUBJECT_TRIES = 64  # rows of an asker's own files tried for one the dataset's holder also has a file on
_NEWCOMER_TRIES = 200  # persons tried for one of working age who does not work for the employer
_BATCH_CHANNEL_FROM = 50  # employers with this many workers or more file through the batch channel
_SECRETARIATS = next(g for g in c.NUMBERED if g.category == c.CAT_SECRETARIAT)


class NoExchange(ValueError):
    """The world holds no exchange of what was asked (the message says which rule or which part)."""


# ---------------------------------------------------------------- per-world lookup tables
@dataclass(frozen=True, slots=True, eq=False)
class _Tables:
    sector: NDArray[np.int64]  # per agency index
    consultations: tuple[Deliberation, ...]  # about consultation datasets, in ref order
    agency_consultations: tuple[Deliberation, ...]  # the same but a citizen's (purpose CITIZEN_PURPOSE)
    requesters: dict[DeliberationRef, NDArray[np.int64]]  # the agencies each deliberation lets ask, in agency order
    staffed: NDArray[np.int64]  # employers with at least one worker
    in_sector: dict[int, NDArray[np.int64]]  # the agencies of each sector, in agency order
    open_files: dict[int, _OpenFiles]  # per day number, built when first drawn from


@dataclass(frozen=True, slots=True, eq=False)
class _Pool:
    """The open files at a group of agencies: member k's start at OpenFiles.rows[first[k]], ends[k] - ends[k-1] long."""

    first: NDArray[np.int64]
    ends: NDArray[np.int64]  # running totals of the members' counts


@dataclass(frozen=True, slots=True, eq=False)
class _OpenFiles:
    """The directory rows open on one day, grouped by agency: agency k's are rows[bounds[k]:bounds[k + 1]]."""

    rows: NDArray[np.int64]
    bounds: NDArray[np.int64]
    sector: NDArray[np.int16]  # per world row: its agency's sector if open on the day, else -1
    pools: dict[object, _Pool]  # the pools of the groups drawn from again and again (requesters, sectors)

    def pool(self, agencies: NDArray[np.int64]) -> _Pool:
        first = self.bounds[agencies]
        return _Pool(first, np.cumsum(self.bounds[agencies + 1] - first))


_TABLES: weakref.WeakKeyDictionary[World, _Tables] = weakref.WeakKeyDictionary()


def _tables(world: World) -> _Tables:
    found = _TABLES.get(world)
    if found is None:
        categories = np.array([ag.category for ag in world.agencies], dtype=object)
        consultations = tuple(a.consultation_deliberations(world.knowledge))
        found = _TABLES[world] = _Tables(
            sector=np.array([ag.sector for ag in world.agencies], dtype=np.int64),
            consultations=consultations,
            agency_consultations=tuple(d for d in consultations if a.CITIZEN_PURPOSE not in d.purposes),
            requesters={
                d.ref: np.flatnonzero(np.isin(categories, sorted(d.requesters))) for d in world.knowledge.deliberations
            },
            staffed=np.flatnonzero(np.diff(world.employment.offsets) > 0),
            in_sector={},
            open_files={},
        )
    return found


def _open_files(world: World, today: int) -> _OpenFiles:
    tables = _tables(world)
    found = tables.open_files.get(today)
    if found is None:
        rows = world.rows
        is_open = (rows.start <= today) & (rows.end >= today)
        open_ = np.flatnonzero(is_open)
        grouped = open_[np.argsort(rows.agency[open_], kind="stable")]
        bounds = np.searchsorted(rows.agency[grouped], np.arange(len(world.agencies) + 1)).astype(np.int64)
        sector = np.where(is_open, tables.sector[rows.agency], -1).astype(np.int16)
        found = tables.open_files[today] = _OpenFiles(grouped, bounds, sector, {})
    return found


# ---------------------------------------------------------------- the draws
class Draws:
    """Seeded choices from `world` on `day` (default: the world's day), drawn with `rng`.

    `picked` names the fields of an exchange drawn rather than given (`pick`), for people to see.
    """

    def __init__(self, world: World, rng: np.random.Generator, day: dt.date | None = None) -> None:
        self.world = world
        self.rng = rng
        self.day = day or world.spec.as_of
        self.today = day_number(self.day)
        self.picked: dict[str, str] = {}
        self._tables = _tables(world)

    @property
    def _files(self) -> _OpenFiles:
        # built on the first draw from the directory of the day: at national scale an argsort of ~30 M rows
        return _open_files(self.world, self.today)

    def pick(self, name: str, value: _T) -> _T:
        """`value`, recorded in `picked` as the field `name` drawn."""
        self.picked[name] = str(value)
        return value

    def one(self, items: Sequence[_T]) -> _T:
        """One of `items`, uniformly (NoExchange if there is none)."""
        if len(items) == 0:
            raise NoExchange("nothing to choose from")
        return items[int(self.rng.integers(len(items)))]

    def person(self) -> int:
        """Anybody in the world."""
        return int(self.rng.integers(self.world.person_count))

    def days_after(self, low: int, high: int) -> str:
        """An ISO date between `low` (included) and `high` (excluded) days after the day."""
        return day_of(self.today + int(self.rng.integers(low, high))).isoformat()

    # ------------------------------------------------------------ the directory
    def agencies(self, ids: Sequence[AgencyId] | None = None, sector: int | None = None) -> NDArray[np.int64] | None:
        """The indices of agencies `ids` (those in the world), in `sector` when given; None: all of them."""
        if ids is None:
            return None if sector is None else self._in_sector(sector)
        index = self.world.agency_index
        found = np.array(sorted({index[x] for x in ids if x in index}), dtype=np.int64)
        return found if sector is None else found[self._tables.sector[found] == sector]

    def _in_sector(self, sector: int) -> NDArray[np.int64]:
        found = self._tables.in_sector.get(sector)
        if found is None:
            found = self._tables.in_sector[sector] = np.flatnonzero(self._tables.sector == sector)
        return found

    def row(self, agencies: NDArray[np.int64] | None = None) -> int | None:
        """A directory row open on the day (at one of `agencies`, by index, when given), uniformly; None if none."""
        rows = self._files.rows
        if agencies is None:
            return int(rows[int(self.rng.integers(rows.size))]) if rows.size else None
        return self._row_in(self._files.pool(agencies))

    def _row_in(self, pool: _Pool) -> int | None:
        if not pool.ends.size or pool.ends[-1] == 0:
            return None
        k = int(self.rng.integers(int(pool.ends[-1])))
        i = int(np.searchsorted(pool.ends, k, side="right"))
        return int(self._files.rows[pool.first[i] + k - (pool.ends[i - 1] if i else 0)])

    def _kept_pool(self, key: object, agencies: NDArray[np.int64]) -> _Pool:
        """The pool of a group of agencies drawn from again and again, kept under `key`."""
        found = self._files.pools.get(key)
        if found is None:
            found = self._files.pools[key] = self._files.pool(agencies)
        return found

    def own_file(self, agency: AgencyId) -> int | None:
        """A person with a file open at `agency`; None if it has none."""
        row = self.row(self.agencies([agency]))
        return None if row is None else int(self.world.rows.person[row])

    def has_open_file(self, person: int, sector: SectorCode) -> bool:
        """Whether an agency of `sector` has a file open on `person`."""
        r = self.world.rows.rows_of(person)
        return bool((self._files.sector[r.start : r.stop] == sector).any())

    # ------------------------------------------------------------ consultations
    def consultations(self, *, citizens: bool = True) -> Sequence[Deliberation]:
        """The deliberations about consultation datasets, in ref order; a citizen's among them if `citizens`."""
        return self._tables.consultations if citizens else self._tables.agency_consultations

    def requesters(self, d: Deliberation) -> NDArray[np.int64]:
        """The indices of the agencies deliberation `d` lets ask (its requester categories)."""
        return self._tables.requesters[d.ref]

    def asker_and_subject(self, d: Deliberation, asker: AgencyId | None = None) -> tuple[AgencyId, int] | None:
        """Who asks under `d` (`asker` if given) and about whom, so that `crossroads.routing.route` routes it.

        The asker is one of d's requesters; the person is in the asker's own open files when d
        demands it, and has an open file at an agency of the dataset's holder sector when the
        dataset is held per person. None when this world gives no such pair.
        """
        source = self.world.knowledge.sources[d.dataset]
        holder = source.sector if source.source is None else None
        askers = self.requesters(d) if asker is None else self.agencies([asker])
        assert askers is not None
        if d.condition is Condition.OWN_FILES:
            pool = self._kept_pool(d.ref, askers) if asker is None else self._files.pool(askers)
            for _ in range(_SUBJECT_TRIES):
                row = self._row_in(pool)
                if row is None:
                    return None
                person = int(self.world.rows.person[row])
                if holder is None or self.has_open_file(person, holder):
                    return self.world.agencies[int(self.world.rows.agency[row])].id, person
            return None
        if not askers.size:
            return None
        sender = asker or self.world.agencies[int(askers[int(self.rng.integers(askers.size))])].id
        if holder is None:
            return sender, self.person()
        row = self._row_in(self._kept_pool(holder, self._in_sector(holder)))
        return None if row is None else (sender, int(self.world.rows.person[row]))

    # ------------------------------------------------------------ employers
    def employer(self) -> int:
        """An employer with at least one worker (NoExchange if the world has none)."""
        staffed = self._tables.staffed
        if not staffed.size:
            raise NoExchange("no employer of this world has a worker")
        return int(staffed[int(self.rng.integers(staffed.size))])

    def worker(self, employer: int) -> int:
        """One of `employer`'s workers."""
        workers = self.world.workers_of(employer)
        return int(workers[int(self.rng.integers(workers.size))])

    def newcomer(self, employer: int) -> int:
        """A person of working age (16-66) not working for `employer`; a worker of it if there is none."""
        for _ in range(_NEWCOMER_TRIES):
            person = self.person()
            if 16 <= self.world.ages[person] <= 66 and self.world.employment.employer[person] != employer:
                return person
        return self.worker(employer)

    def declarant(self, employer: int) -> AgencyId:
        """Who files for `employer`: its social secretariat, else the portal (the batch channel if large)."""
        secretariat = int(self.world.employers.secretariat[employer])
        if secretariat >= 0:
            return _SECRETARIATS.agency_id(secretariat)
        return c.BATCH if self.world.workers_of(employer).size >= _BATCH_CHANNEL_FROM else c.PORTAL

    def committee(self, employer: int | None) -> JointCommittee | None:
        """The joint committee of `employer`; None for an employer not in the world."""
        return None if employer is None else JOINT_COMMITTEES[int(self.world.employers.committee[employer])]

    def hired(self, person: int) -> str:
        """The ISO date `person` started at their current employer."""
        return day_of(int(self.world.employment.hired[person])).isoformat()

    # ------------------------------------------------------------ mutations
    def authentic_source(self, dataset: Dataset) -> AgencyId:
        """The agency that pushes changes of `dataset` (the National Register when the world names none)."""
        source = self.world.knowledge.sources.get(dataset)
        return source.source if source is not None and source.source is not None else c.NR

    def mutation_change(self, dataset: Dataset) -> str:
        """A change `dataset` pushes, uniformly ("*" for a dataset without named changes)."""
        return self.one(a.MUTATION_CHANGES.get(dataset, ("*",)))
