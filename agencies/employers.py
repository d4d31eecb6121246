"""Employers (KBO number, joint committee, social secretariat) and who works for whom.

Columns again: employer j is row j, rows in ascending KBO order. Employment is one employer
index per person (-1: not employed) plus, for `workers_of`, the employed persons grouped by
employer (a CSR layout: `workers[offsets[j]:offsets[j + 1]]`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from agencies.columns import Days, Ints, assign_with_cover, day_number, group_offsets, sizes
from crossroads.identifiers import Kbo, make_kbo

__all__ = [
    "FULL_TIME_HOURS_CENTI",
    "JOINT_COMMITTEES",
    "Employers",
    "Employment",
    "JointCommittee",
    "build_employers",
    "build_employment",
]


@dataclass(frozen=True, slots=True)
class JointCommittee:
    code: str  # paritair comité / commission paritaire
    weight: float  # relative share of employers (assumption: rough, not sourced)
    manual: bool  # blue-collar workers (DmfA worker code 015) rather than white-collar (495)

    @property
    def worker_code(self) -> str:
        """The DmfA worker code of its workers: 015 manual worker, 495 white-collar employee."""
        return "015" if self.manual else "495"


FULL_TIME_HOURS_CENTI = 3800  # a full-time week, 38 h, in hundredths of an hour


JOINT_COMMITTEES: tuple[JointCommittee, ...] = (
    JointCommittee("200", 0.28, False),  # auxiliary committee for white-collar workers
    JointCommittee("100", 0.06, True),  # auxiliary committee for blue-collar workers
    JointCommittee("124", 0.08, True),  # construction
    JointCommittee("302", 0.07, True),  # hotels and restaurants
    JointCommittee("201", 0.07, False),  # independent retail
    JointCommittee("330", 0.05, False),  # health care
    JointCommittee("140", 0.04, True),  # transport and logistics
    JointCommittee("119", 0.04, True),  # food trade
    JointCommittee("111", 0.03, True),  # metal, machine and electrical construction
    JointCommittee("149", 0.03, True),  # electricians
    JointCommittee("202", 0.03, False),  # food retail
    JointCommittee("322", 0.03, True),  # temporary work
    JointCommittee("337", 0.03, False),  # non-profit auxiliary committee
    JointCommittee("118", 0.02, True),  # food industry
    JointCommittee("121", 0.02, True),  # cleaning
    JointCommittee("144", 0.02, True),  # agriculture
    JointCommittee("145", 0.02, True),  # horticulture
    JointCommittee("209", 0.02, False),  # metal manufacturing, white-collar
    JointCommittee("311", 0.02, False),  # large retail
    JointCommittee("314", 0.02, True),  # hairdressing and beauty care
    JointCommittee("319", 0.02, False),  # educational and housing establishments
    JointCommittee("331", 0.02, False),  # Flemish welfare and health sector
    JointCommittee("332", 0.02, False),  # French- and German-speaking welfare and health sector
    JointCommittee("327", 0.01, True),  # sheltered and social workshops
    JointCommittee("207", 0.01, False),  # chemical industry, white-collar
)

_FIRST_SERIAL = 2_000_000  # KBO numbers "0200.000.0xx" and up; below are old, unusual ranges
_SERIALS = 18_000_000  # serials 2,000,000..19,999,999: first digit 0 or 1, as real numbers
_EMPLOYER_SIGMA = 1.6  # employer sizes: heavy-tailed (many one-worker firms, a few giants)
_SECRETARIAT_SIGMA = 1.2  # a few large social secretariats serve most employers
_ADULT_DAYS = 6_575  # 18 years
_CAREER_DAYS = 7_305  # hires spread over the last 20 years


@dataclass(frozen=True, slots=True, eq=False)
class Employers:
    serial: Ints  # the first 8 digits of the KBO number, strictly ascending
    committee: NDArray[np.int16]  # index into JOINT_COMMITTEES
    secretariat: NDArray[np.int32]  # index of the social secretariat filing for it, -1: none

    @property
    def count(self) -> int:
        return int(self.serial.size)

    def kbo_of(self, j: int) -> Kbo:
        return make_kbo(int(self.serial[j]))

    def index_of(self, kbo: str) -> int | None:
        """The index of the employer with this KBO number, None if there is none."""
        if len(kbo) != 10 or not kbo.isdigit():
            return None
        serial = int(kbo[:8])
        j = int(np.searchsorted(self.serial, serial))
        found = j < self.serial.size and int(self.serial[j]) == serial
        return j if found and make_kbo(serial) == kbo else None


@dataclass(frozen=True, slots=True, eq=False)
class Employment:
    employer: NDArray[np.int32]  # per person: employer index, -1 when not employed
    hired: Days  # per person: start of the current employment (meaningless when not employed)
    workers: NDArray[np.int32]  # employed persons, grouped by employer
    offsets: Ints  # per employer j: its workers are workers[offsets[j]:offsets[j + 1]]

    def workers_of(self, j: int) -> NDArray[np.int32]:
        return self.workers[self.offsets[j] : self.offsets[j + 1]]


def build_employers(rng: np.random.Generator, count: int, secretariats: int, secretariat_share: float) -> Employers:
    """`count` employers with distinct valid KBO numbers, a joint committee and maybe a secretariat."""
    serial = np.sort(rng.choice(_SERIALS, size=count, replace=False).astype(np.int64) + _FIRST_SERIAL)
    weights = np.array([c.weight for c in JOINT_COMMITTEES])
    committee = rng.choice(len(JOINT_COMMITTEES), size=count, p=weights / weights.sum()).astype(np.int16)
    secretariat = np.full(count, -1, dtype=np.int32)
    if secretariats:
        served = np.flatnonzero(rng.random(count) < secretariat_share)
        chosen = assign_with_cover(rng, served.size, secretariats, sizes(rng, secretariats, _SECRETARIAT_SIGMA))
        secretariat[served] = chosen
    return Employers(serial=serial, committee=committee, secretariat=secretariat)


def build_employment(
    rng: np.random.Generator,
    birth: Days,
    ages: Ints,
    employers: int,
    share: float,
    as_of: dt.date,
) -> Employment:
    """Employ `share` of the persons aged 18-66; every employer gets a worker if there are enough."""
    count = birth.size
    employed = np.flatnonzero((ages >= 18) & (ages <= 66) & (rng.random(count) < share))
    employer = np.full(count, -1, dtype=np.int32)
    employer[employed] = assign_with_cover(rng, employed.size, employers, sizes(rng, employers, _EMPLOYER_SIGMA))
    today = day_number(as_of)
    earliest = np.maximum(birth[employed].astype(np.int64) + _ADULT_DAYS, today - _CAREER_DAYS)
    hired = np.zeros(count, dtype=np.int32)
    hired[employed] = earliest + np.floor(rng.random(employed.size) * (today - earliest)).astype(np.int64)
    order = employed[np.argsort(employer[employed], kind="stable")].astype(np.int32)
    offsets = group_offsets(employer[employed], employers)
    return Employment(employer=employer, hired=hired, workers=order, offsets=offsets)
