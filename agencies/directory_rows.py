"""The person part of the reference directory, as columns: who has a file on whom.

One row per file (CBSS form I605: NISS | sector | quality | phase | start | end, plus the
agency holding it); rows are grouped by person (`offsets`), so that the files of one person
are one slice. Which files a person has follows from their columns (age, job, residence):
- everybody is in exactly one health-insurance fund (open file), some with a closed earlier one;
- every employee is known to ONSS (and to the sector fund of the joint committee, if any);
- children (and some students) are in a family-allowance fund, with heads of household;
- some persons are with an unemployment payment body, a CPAS (that of their municipality),
  SFP (everybody from 65), INASTI, DG persons with disabilities, FEDRIS, or a regional, local
  or private body granting a complementary benefit.
In a world with enough persons every fund, payment body and CPAS has open files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from agencies import catalogue as c
from agencies import sectors as s
from agencies.columns import OPEN, Days, Ints, assign_with_cover, day_number, group_offsets, pick, plus_years, sizes
from agencies.employers import JOINT_COMMITTEES, Employers, Employment
from agencies.population import Persons
from agencies.spec import WorldSpec
from crossroads.domain import AgencyId, QualityCode

__all__ = ["DirectoryRows", "build_directory_rows", "open_on"]

_YEAR = 365
_FUND_SIGMA = 0.8  # spread of fund sizes
_STUDENT_SHARE = 0.4  # of persons aged 18-24 still giving right to family allowances (assumption)
_CHILDREN_PER_HEAD = 1.8  # children per head of household receiving allowances (assumption)
_START_SPREAD = 60_000  # start + this is non-negative and < 2**17 for every possible start


@dataclass(frozen=True, slots=True, eq=False)
class DirectoryRows:
    """Column arrays, one row per file, grouped by person (rows of i: offsets[i]:offsets[i+1])."""

    person: NDArray[np.int32]
    agency: NDArray[np.int32]  # index into the world's agency catalogue
    quality: NDArray[np.int16]
    phase: NDArray[np.int8]
    start: Days
    end: Days  # OPEN: the file is open
    offsets: Ints

    @property
    def count(self) -> int:
        return int(self.person.size)

    def rows_of(self, i: int) -> range:
        return range(int(self.offsets[i]), int(self.offsets[i + 1]))


@dataclass
class _Ctx:
    """What the sector builders read: the world so far, and the rows they append."""

    spec: WorldSpec
    persons: Persons
    employers: Employers
    employment: Employment
    ages: Ints
    index: Mapping[AgencyId, int]
    today: int = 0
    parts: list[tuple[NDArray[np.generic], ...]] = field(default_factory=list)

    def add(
        self,
        person: Ints,
        agency: Ints,
        quality: QualityCode | Ints,
        start: Ints,
        end: Ints | None = None,
        phase: Ints | None = None,
    ) -> None:
        """Append files; stored in the compact dtypes of `DirectoryRows` (national scale: ~30 M rows)."""
        n = person.size
        self.parts.append(
            (
                person.astype(np.int32),
                np.broadcast_to(np.asarray(agency, dtype=np.int32), (n,)),
                np.broadcast_to(np.asarray(quality, dtype=np.int16), (n,)),
                np.zeros(n, dtype=np.int8) if phase is None else phase.astype(np.int8),
                start.astype(np.int32),
                np.full(n, OPEN, dtype=np.int32) if end is None else end.astype(np.int32),
            )
        )

    def group(self, group_field: str) -> tuple[int, int]:
        """(index of the first agency, count) of a numbered category."""
        count = int(getattr(self.spec.agencies, group_field))
        group = next(g for g in c.NUMBERED if g.count_field == group_field)
        return (self.index[group.agency_id(0)] if count else 0), count

    def since(self, rng: np.random.Generator, people: Ints, years: float, not_before: Ints) -> Ints:
        """A start day within the last `years`, not before `not_before`, not after today."""
        start = self.today - np.floor(rng.random(people.size) * years * _YEAR).astype(np.int64)
        return np.minimum(np.maximum(start, not_before), self.today)

    def adult_from(self, people: Ints) -> Ints:
        """The 18th birthdays of `people`."""
        return plus_years(self.persons.birth[people], 18)


def build_directory_rows(
    rng: np.random.Generator,
    spec: WorldSpec,
    persons: Persons,
    employers: Employers,
    employment: Employment,
    ages: Ints,
    index: Mapping[AgencyId, int],
) -> DirectoryRows:
    """Every file of every person, deterministic from `rng` and the world so far."""
    ctx = _Ctx(spec, persons, employers, employment, ages, index, today=day_number(spec.as_of))
    builders = (_health, _employment, _family, _unemployment, _social_integration, _primary_files, _complementary)
    for builder, stream in zip(builders, rng.spawn(len(builders)), strict=True):
        builder(ctx, stream)
    return _assemble(ctx, rng)


# ---------------------------------------------------------------- the sectors
def _health(ctx: _Ctx, rng: np.random.Generator) -> None:
    everyone = np.arange(ctx.persons.count, dtype=np.int64)
    first, funds = ctx.group("health_insurance_funds")
    fund = assign_with_cover(rng, everyone.size, funds, sizes(rng, funds, _FUND_SIGMA))
    quality = np.where(ctx.ages >= 18, s.Q_INSURED, s.Q_DEPENDANT)
    birth = ctx.persons.birth.astype(np.int64)
    _with_switches(ctx, rng, everyone, first, funds, fund, quality, birth)


def _family(ctx: _Ctx, rng: np.random.Generator) -> None:
    first, funds = ctx.group("family_allowance_funds")
    ages = ctx.ages
    students = (ages >= 18) & (ages <= 24) & (rng.random(ages.size) < _STUDENT_SHARE)
    children = np.flatnonzero((ages < 18) | students)
    fund = assign_with_cover(rng, children.size, funds, sizes(rng, funds, _FUND_SIGMA))
    birth = ctx.persons.birth[children].astype(np.int64)
    _with_switches(ctx, rng, children, first, funds, fund, np.asarray(s.Q_CHILD), birth)
    pool = np.flatnonzero((ages >= 22) & (ages <= 60))
    heads = np.sort(rng.permutation(pool)[: min(pool.size, int(children.size / _CHILDREN_PER_HEAD))])
    head_fund = first + assign_with_cover(rng, heads.size, funds, sizes(rng, funds, _FUND_SIGMA))
    start = ctx.since(rng, heads, 18, ctx.persons.birth[heads].astype(np.int64) + 22 * _YEAR)
    ctx.add(heads, head_fund, s.Q_HEAD_OF_HOUSEHOLD, start)
    grown = pick(rng, (ages >= 25) & (ages <= 40), 0.5)  # closed files of former children
    born = ctx.persons.birth[grown].astype(np.int64)
    ended = plus_years(ctx.persons.birth[grown], 18) + np.floor(rng.random(grown.size) * 6 * _YEAR).astype(np.int64)
    ctx.add(grown, first + rng.integers(0, funds, grown.size), s.Q_CHILD, born, ended)


def _with_switches(
    ctx: _Ctx, rng: np.random.Generator, people: Ints, first: int, funds: int, fund: Ints, quality: Ints, start: Ints
) -> None:
    """Open files at `fund`; `switch_share` of the people came from another fund (closed file)."""
    quality = np.broadcast_to(quality, people.shape)
    can = (ctx.today - start > 2) & (funds > 1)
    switched = can & (rng.random(people.size) < ctx.spec.switch_share)
    moved = np.flatnonzero(switched)
    day = start[moved] + 1 + np.floor(rng.random(moved.size) * (ctx.today - start[moved] - 1)).astype(np.int64)
    previous = (fund[moved] + 1 + rng.integers(0, max(funds - 1, 1), moved.size)) % funds
    ctx.add(people[moved], first + previous, quality[moved], start[moved], day - 1)
    opened = start.copy()
    opened[moved] = day
    ctx.add(people, first + fund, quality, opened)


def _employment(ctx: _Ctx, rng: np.random.Generator) -> None:
    employed = np.flatnonzero(ctx.employment.employer >= 0)
    hired = ctx.employment.hired[employed].astype(np.int64)
    ctx.add(employed, np.asarray(ctx.index[c.ONSS]), s.Q_EMPLOYEE, hired)
    adult = ctx.adult_from(employed)
    earlier = (hired - adult > 60) & (rng.random(employed.size) < ctx.spec.switch_share)
    who, before = employed[earlier], hired[earlier]
    began = adult[earlier] + np.floor(rng.random(who.size) * (before - adult[earlier] - 1)).astype(np.int64)
    ctx.add(who, np.asarray(ctx.index[c.ONSS]), s.Q_EMPLOYEE, began, before - 1)
    _sector_funds(ctx, employed, hired)


def _sector_funds(ctx: _Ctx, employed: Ints, hired: Ints) -> None:
    """Workers are known to a fund of their employer's joint committee (fund k serves committee k mod n)."""
    first, funds = ctx.group("sector_funds")
    committees = len(JOINT_COMMITTEES)
    employer = ctx.employment.employer[employed].astype(np.int64)
    committee = ctx.employers.committee[employer].astype(np.int64)
    serving = np.maximum(0, (funds - committee + committees - 1) // committees)  # funds k with k % n == committee
    covered = serving > 0
    fund = committee[covered] + committees * (employer[covered] % serving[covered])
    ctx.add(employed[covered], first + fund, s.Q_SECTOR_FUND_WORKER, hired[covered])


def _unemployment(ctx: _Ctx, rng: np.random.Generator) -> None:
    first, bodies = ctx.group("unemployment_payment_bodies")
    jobless = (ctx.ages >= 18) & (ctx.ages <= 64) & (ctx.employment.employer < 0)
    who = pick(rng, jobless, ctx.spec.unemployed_share)
    body = first + assign_with_cover(rng, who.size, bodies, sizes(rng, bodies, _FUND_SIGMA))
    phase = rng.integers(1, 4, who.size)  # the three benefit periods (assumption: phase = period)
    ctx.add(who, body, s.Q_UNEMPLOYED, ctx.since(rng, who, 3, ctx.adult_from(who)), phase=phase)
    temporary = pick(rng, ctx.employment.employer >= 0, ctx.spec.temporary_unemployed_share)
    start = ctx.since(rng, temporary, 0.5, ctx.employment.hired[temporary].astype(np.int64))
    end = _some_closed(ctx, rng, start, 0.5, 90)
    ctx.add(temporary, first + rng.integers(0, bodies, temporary.size), s.Q_TEMPORARY_UNEMPLOYED, start, end)


def _social_integration(ctx: _Ctx, rng: np.random.Generator) -> None:
    """Integration income (or, for a minor, aid) from the CPAS of one's municipality; a client per CPAS."""
    first, _ = ctx.group("cpas")
    adult = ctx.ages >= 18
    drawn = pick(rng, adult & (ctx.employment.employer < 0), ctx.spec.social_integration_share)
    # adults first, in random order, so a municipality's guaranteed client is an adult if it has one
    shuffled = rng.permutation(ctx.persons.count)
    shuffled = shuffled[np.argsort(~adult[shuffled], kind="stable")]
    _, one_each = np.unique(ctx.persons.municipality[shuffled], return_index=True)
    guaranteed = np.sort(shuffled[one_each])
    drawn = np.setdiff1d(drawn, guaranteed)
    for who, closed_share in ((guaranteed, 0.0), (drawn, 0.2)):
        start = ctx.since(rng, who, 4, ctx.adult_from(who))
        cpas = first + ctx.persons.municipality[who].astype(np.int64)
        ctx.add(who, cpas, s.Q_INTEGRATION_INCOME, start, _some_closed(ctx, rng, start, closed_share, 365))


def _primary_files(ctx: _Ctx, rng: np.random.Generator) -> None:
    """Files held by a primary institution itself: pensions, self-employed, disability, accidents."""
    ages, spec = ctx.ages, ctx.spec
    retired = np.flatnonzero(ages >= 65)
    pensioned = np.minimum(plus_years(ctx.persons.birth[retired], 65), ctx.today)
    ctx.add(retired, np.asarray(ctx.index[c.SFP]), s.Q_RETIRED, pensioned)
    working_age = (ages >= 18) & (ages <= 66)
    for agency, quality, mask, share, years, closed in (
        (c.INASTI, s.Q_SELF_EMPLOYED, working_age, spec.self_employed_share, 20, 0.15),
        (c.DGPH, s.Q_DISABILITY, ages >= 18, spec.disability_share, 15, 0.0),
        (c.FEDRIS, s.Q_OCCUPATIONAL_VICTIM, ctx.employment.employer >= 0, spec.occupational_risk_share, 3, 0.7),
    ):
        who = pick(rng, mask, share)
        start = ctx.since(rng, who, years, ctx.adult_from(who))
        ctx.add(who, np.asarray(ctx.index[agency]), quality, start, _some_closed(ctx, rng, start, closed, 180))


def _complementary(ctx: _Ctx, rng: np.random.Generator) -> None:
    """Regional, local and private bodies granting a benefit on the strength of a social status."""
    bodies = np.concatenate(
        [np.arange(f, f + n) for f, n in map(ctx.group, ("regional_bodies", "local_bodies", "public_mission_bodies"))]
    )
    if not bodies.size:
        return
    who = pick(rng, np.ones(ctx.persons.count, dtype=bool), ctx.spec.complementary_share)
    body = bodies[assign_with_cover(rng, who.size, bodies.size, sizes(rng, bodies.size, _FUND_SIGMA))]
    ctx.add(who, body, s.Q_COMPLEMENTARY, ctx.since(rng, who, 5, ctx.persons.birth[who].astype(np.int64)))


def _some_closed(ctx: _Ctx, rng: np.random.Generator, start: Ints, share: float, days: int) -> Ints:
    """Ends for files starting on `start`: `share` of them closed within `days` and before today."""
    closed = (rng.random(start.size) < share) & (start < ctx.today)
    lasted = np.floor(rng.random(start.size) * days).astype(np.int64)
    return np.where(closed, np.minimum(start + lasted, ctx.today - 1), OPEN)


# ---------------------------------------------------------------- putting it together
def _assemble(ctx: _Ctx, rng: np.random.Generator) -> DirectoryRows:
    """Concatenate the parts, mark some open files provisional (902), group the rows by person."""
    columns = [np.concatenate(col) for col in zip(*ctx.parts, strict=True)]
    ctx.parts.clear()
    person, agency, quality, phase, start, end = columns
    provisional = (end == OPEN) & (rng.random(person.size) < ctx.spec.provisional_share)
    quality[provisional] = s.QUALITY_PROVISIONAL
    # one sort key: person, then start (both fit in 64 bits, see _START_SPREAD)
    order = np.argsort((person.astype(np.int64) << 17) | (start.astype(np.int64) + _START_SPREAD))
    offsets = group_offsets(person, ctx.persons.count)
    return DirectoryRows(
        person=person[order],
        agency=agency[order],
        quality=quality[order],
        phase=phase[order],
        start=start[order],
        end=end[order],
        offsets=offsets,
    )


def open_on(rows: DirectoryRows, day: dt.date) -> NDArray[np.bool_]:
    """Which rows are open on `day`."""
    n = day_number(day)
    result: NDArray[np.bool_] = (rows.start <= n) & (rows.end >= n)
    return result
