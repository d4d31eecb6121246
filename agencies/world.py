"""The synthetic world: agencies, persons, employers, files and authorizations, from a spec.

`World.build(spec)` is deterministic: the same spec (seed included) gives the same arrays and
the same knowledge, on any machine. Persons, employers and directory rows are numpy columns
(see population.py, employers.py, directory_rows.py); the per-person views below
(`niss`, `files_of`, ...) make small Python objects on demand only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray
from tqdm import tqdm

from agencies.authorizations import build_knowledge
from agencies.catalogue import build_catalogue
from agencies.columns import OPEN, day_of
from agencies.directory_rows import DirectoryRows, build_directory_rows
from agencies.employers import Employers, Employment, build_employers, build_employment
from agencies.population import Persons, build_persons
from agencies.spec import WorldSpec
from crossroads.domain import Agency, AgencyId, DirectoryEntry, Knowledge, QualityCode, SectorCode
from crossroads.identifiers import Kbo, Niss

__all__ = ["World"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, eq=False)
class _Parts:
    persons: Persons
    ages: NDArray[np.int64]
    employers: Employers
    employment: Employment
    rows: DirectoryRows


class World:
    """A built world. Read-only; share it freely between threads."""

    def __init__(self, spec: WorldSpec, agencies: tuple[Agency, ...], knowledge: Knowledge, parts: _Parts) -> None:
        self.spec = spec
        self.agencies = agencies
        self.knowledge = knowledge
        self.persons = parts.persons
        self.ages = parts.ages  # each person's age in whole years on spec.as_of
        self.employers = parts.employers
        self.employment = parts.employment
        self.rows = parts.rows
        self.agency_index: dict[AgencyId, int] = {a.id: i for i, a in enumerate(agencies)}
        self._agency_ids = [a.id for a in agencies]
        self._agency_sectors = [a.sector for a in agencies]
        self._dates: dict[int, dt.date | None] = {int(OPEN): None}

    # ------------------------------------------------------------ building
    @classmethod
    def build(cls, spec: WorldSpec, *, progress: bool = False) -> World:
        """Build the world of `spec`; `progress` shows a tqdm bar of the steps."""
        persons_rng, employers_rng, employment_rng, rows_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(spec.seed).spawn(4)
        )
        with tqdm(total=7, desc="world", unit="step", disable=not progress) as bar:
            step = _Steps(bar)
            agencies = step("agencies", build_catalogue, spec.agencies)
            knowledge = step("knowledge", build_knowledge, agencies)
            cpas = spec.agencies.cpas  # one municipality per CPAS
            persons = step("persons", build_persons, persons_rng, spec.persons, spec.as_of, spec.bis_share, cpas)
            ages = step("ages", persons.ages_on, spec.as_of)
            secretariats = spec.agencies.social_secretariats
            employers = step(
                "employers", build_employers, employers_rng, spec.employers, secretariats, spec.secretariat_share
            )
            employment = step(
                "employment",
                build_employment,
                employment_rng,
                persons.birth,
                ages,
                spec.employers,
                spec.employed_share,
                spec.as_of,
            )
            index = {a.id: i for i, a in enumerate(agencies)}
            rows = step("directory", build_directory_rows, rows_rng, spec, persons, employers, employment, ages, index)
        return cls(spec, agencies, knowledge, _Parts(persons, ages, employers, employment, rows))

    # ------------------------------------------------------------ persons
    @property
    def person_count(self) -> int:
        return self.persons.count

    def niss(self, i: int) -> Niss:
        """The NISS of person i (0 <= i < person_count)."""
        return self.persons.niss_of(i)

    def person_index(self, niss: str) -> int | None:
        """The index of the person with this NISS, None if nobody in the world has it."""
        return self.persons.index_of(niss)

    # ------------------------------------------------------------ employers
    @property
    def employer_count(self) -> int:
        return self.employers.count

    def kbo(self, j: int) -> Kbo:
        """The KBO/BCE number of employer j (0 <= j < employer_count)."""
        return self.employers.kbo_of(j)

    def employer_index(self, kbo: str) -> int | None:
        return self.employers.index_of(kbo)

    def employer_of(self, i: int) -> int | None:
        """The employer of person i on spec.as_of, None when not employed."""
        j = int(self.employment.employer[i])
        return j if j >= 0 else None

    def workers_of(self, j: int) -> NDArray[np.int32]:
        """The person indices of employer j's workers (a read-only view, ascending)."""
        return self.employment.workers_of(j)

    # ------------------------------------------------------------ the directory
    @property
    def directory_row_count(self) -> int:
        return self.rows.count

    def files_of(self, niss: str) -> list[DirectoryEntry]:
        """The directory rows (open and closed) of the person with this NISS; [] if unknown."""
        i = self.person_index(niss)
        return [] if i is None else self.files_of_person(i)

    def files_of_person(self, i: int) -> list[DirectoryEntry]:
        r = self.rows.rows_of(i)
        return self._entries(r.start, r.stop)

    def iter_directory_rows(self, batch: int = 100_000) -> Iterator[list[DirectoryEntry]]:
        """Every directory row, in person order, `batch` rows at a time (to load the live directory)."""
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch}")
        for lo in range(0, self.rows.count, batch):
            yield self._entries(lo, min(lo + batch, self.rows.count))

    def _entries(self, lo: int, hi: int) -> list[DirectoryEntry]:
        rows = self.rows
        person = rows.person[lo:hi]
        niss = [f"{v:011d}" for v in self.persons.niss[person].tolist()]
        ids, sectors, date = self._agency_ids, self._agency_sectors, self._date
        return [
            DirectoryEntry(Niss(n), SectorCode(sectors[a]), ids[a], QualityCode(q), ph, date(st), date(en))  # type: ignore[arg-type]
            for n, a, q, ph, st, en in zip(
                niss,
                rows.agency[lo:hi].tolist(),
                rows.quality[lo:hi].tolist(),
                rows.phase[lo:hi].tolist(),
                rows.start[lo:hi].tolist(),
                rows.end[lo:hi].tolist(),
                strict=True,
            )
        ]

    def _date(self, number: int) -> dt.date | None:
        # a few tens of thousands of distinct days: cache the objects rather than rebuild them
        try:
            return self._dates[number]
        except KeyError:
            day = self._dates[number] = day_of(number)
            return day


class _Steps:
    """Runs the build steps one by one, naming each on the progress bar."""

    def __init__(self, bar: tqdm) -> None:  # type: ignore[type-arg]
        self._bar = bar

    def __call__(self, name: str, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> _T:
        self._bar.set_postfix_str(name)
        result = fn(*args, **kwargs)
        self._bar.update()
        return result
