"""The synthetic answer an agency gives to a consultation, without building the world.

`answer(seed, agency, dataset, niss)` depends on its arguments alone: one keyed hash of them
gives every field, so an agency host process answers in microseconds, any number of times,
with the same answer. The core has already routed the consultation to the agency holding the
file, so the answer reports a file found; an empty dict means "no such person" (a malformed
NISS) or a dataset this agency does not hold.

This is the load-test hot path: keep it a hash and a few integer operations (no numpy, no
world lookups).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache
from hashlib import blake2b

from agencies import authorizations as a
from agencies.columns import last_full_quarter
from agencies.spec import DEFAULT_AS_OF
from crossroads.domain import AgencyId, Dataset
from crossroads.identifiers import make_kbo

__all__ = ["ANSWERED_DATASETS", "answer"]

_Fields = Callable[[int, str, str, tuple[str, int]], dict[str, str]]

_SURNAMES = (
    "Peeters", "Janssens", "Maes", "Jacobs", "Mertens", "Willems", "Claes", "Goossens", "Wouters", "De Smet",
    "Dubois", "Lambert", "Dupont", "Martin", "Simon", "Leclercq", "Laurent", "Hermans", "Michiels", "Lemmens",
    "Desmet", "Francois", "Dumont", "Renard", "Lejeune", "Vermeulen", "Van den Broeck", "Aerts", "Smets", "Pauwels",
)  # fmt: skip
_MEN = ("Jan", "Luc", "Marc", "Pieter", "Thomas", "Lucas", "Noah", "Mohamed", "Jean", "Pierre", "Louis", "Arthur")
_WOMEN = ("Maria", "Anne", "Sofie", "Emma", "Olivia", "Marie", "Louise", "Nathalie", "Fatima", "Julie", "Elise")
_CIVIL_STATUS = ("single", "married", "legally_cohabiting", "divorced", "widowed")
_NATIONALITIES = ("BE",) * 12 + ("NL", "FR", "IT", "MA", "RO", "PL", "DE", "ES", "TR")


def answer(
    seed: int, agency: AgencyId, dataset: Dataset, niss: str, *, as_of: dt.date = DEFAULT_AS_OF
) -> dict[str, str]:
    """The fields `agency` answers about `niss` for `dataset`, deterministic in the arguments.

    `as_of` (keyword, default the worlds' default day) only anchors dates such as the quarter
    of a wage declaration. Returns {} for a malformed NISS or a dataset no agency answers.
    """
    fields = _ANSWERS.get(dataset)
    if fields is None or len(niss) != 11 or not niss.isdigit():
        return {}
    key = f"{seed}|{agency}|{dataset}|{niss}".encode()
    h = int.from_bytes(blake2b(key, digest_size=16).digest(), "little")
    return fields(h, agency, niss, _quarter(as_of))


@lru_cache(maxsize=64)
def _quarter(day: dt.date) -> tuple[str, int]:
    """The last full quarter before `day` ("2026Q2"), and the year of `day`."""
    return last_full_quarter(day), day.year


def _identity(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    month, day, nine = int(niss[2:4]), int(niss[4:6]), int(niss[:9])
    # the post-2000 rule tells the century: the check digits were taken over 2 followed by the 9 digits
    century = 2000 if int(niss[9:]) == 97 - (2_000_000_000 + nine) % 97 else 1900
    sex = "U" if 20 < month <= 32 else ("M" if int(niss[6:9]) % 2 else "F")
    names = _WOMEN if sex == "F" else _MEN
    born = century + int(niss[:2])
    adult = when[1] - born >= 18
    return {
        "surname": _SURNAMES[h % len(_SURNAMES)],
        "first_name": names[(h >> 8) % len(names)],
        "birth_date": f"{born:04d}-{month % 20:02d}-{day:02d}",
        "sex": sex,
        "nationality": _NATIONALITIES[(h >> 16) % len(_NATIONALITIES)],
        "postal_code": str(1000 + (h >> 24) % 9000),
        "civil_status": _CIVIL_STATUS[(h >> 40) % 5] if adult else "single",
    }


def _wages(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    manual = h & 1
    return {
        "quarter": when[0],
        "employer_kbo": make_kbo(2_000_000 + (h >> 1) % 18_000_000),
        "worker_code": "015" if manual else "495",
        "gross_wage_cents": str(600_000 + (h >> 32) % 1_200_000),
        "days_worked": str(20 + (h >> 56) % 46),
    }


def _unemployment(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {
        "payment_body": agency,
        "status": ("full", "full", "temporary")[h % 3],
        "phase": str(1 + (h >> 4) % 3),
        "daily_allowance_cents": str(4_000 + (h >> 8) % 5_000),
        "since": f"{when[1] - (h >> 24) % 3}-{1 + (h >> 28) % 12:02d}-01",
    }


def _health(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {
        "fund": agency,
        "entitlement": ("entitled", "entitled", "entitled", "increased_reimbursement")[h % 4],
        "holder_code": ("110/110", "120/120", "130/130", "111/111")[(h >> 4) % 4],
        "insured_until": f"{when[1] + 1}-12-31",
    }


def _family(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    children = 1 + h % 4
    return {
        "fund": agency,
        "children": str(children),
        "monthly_amount_cents": str(children * (17_000 + (h >> 4) % 4_000)),
    }


def _pension(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {
        "pension_type": ("retirement", "retirement", "retirement", "survivor")[h % 4],
        "monthly_gross_cents": str(120_000 + (h >> 4) % 250_000),
        "start_year": str(when[1] - (h >> 24) % 30),
    }


def _self_employed(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {
        "activity": ("main", "main", "secondary", "after_pension")[h % 4],
        "quarter": when[0],
        "contribution_cents": str(80_000 + (h >> 4) % 400_000),
    }


def _social_integration(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    category = ("cohabiting", "single", "with_family")[h % 3]
    base = {"cohabiting": 87_000, "single": 130_000, "with_family": 176_000}[category]
    return {"cpas": agency, "category": category, "monthly_amount_cents": str(base + (h >> 4) % 2_000)}


def _occupational(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {
        "risk": ("work_accident", "work_accident", "occupational_disease")[h % 3],
        "incapacity_percent": str((h >> 4) % 67),
        "year": str(when[1] - (h >> 12) % 10),
    }


def _disability(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {
        "allowances": ("IT", "IT+ARR", "APA", "IT+ARR+APA")[h % 4],
        "category": str(1 + (h >> 4) % 5),
        "points": str(7 + (h >> 8) % 12),
    }


def _holiday(h: int, agency: str, niss: str, when: tuple[str, int]) -> dict[str, str]:
    return {"year": str(when[1]), "amount_cents": str(150_000 + h % 200_000), "days": str(4 + (h >> 20) % 17)}


_ANSWERS: dict[Dataset, _Fields] = {
    a.IDENTITY: _identity,
    a.WAGES: _wages,
    a.UNEMPLOYMENT: _unemployment,
    a.HEALTH: _health,
    a.FAMILY: _family,
    a.PENSION: _pension,
    a.SELF_EMPLOYED: _self_employed,
    a.SOCIAL_INTEGRATION: _social_integration,
    a.OCCUPATIONAL: _occupational,
    a.DISABILITY: _disability,
    a.HOLIDAY: _holiday,
}
ANSWERED_DATASETS: frozenset[Dataset] = frozenset(_ANSWERS)
