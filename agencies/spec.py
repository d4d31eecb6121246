"""The world spec: everything the synthetic world is built from, besides the code.

A world is deterministic from its `WorldSpec` (which includes the seed). `WorldSpec.from_mapping`
is the single place that validates the `world:` mapping of a scenario: it fills defaults,
refuses unknown keys, wrong types and impossible values with a `SpecError` naming the file,
the YAML path and what was expected. All defaults are the `DEFAULT_*` constants below.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "DEFAULT_AGENCY_COUNTS",
    "DEFAULT_AS_OF",
    "MAX_AGENCIES_PER_CATEGORY",
    "MAX_EMPLOYERS",
    "MAX_PERSONS",
    "SMALL_WORLD",
    "AgencyCounts",
    "SpecError",
    "WorldSpec",
    "load_world_spec",
]

# ---------------------------------------------------------------- defaults, in one place
# The smallest world with every kind of agency, few of each: it builds in a blink and a core
# restarts on it in well under a second (load-test and crash tests, crash runs).
SMALL_WORLD: Mapping[str, Any] = {
    "seed": 5,
    "persons": 3000,
    "employers": 200,
    "agencies": {
        "cpas": 5,
        "health_insurance_funds": 3,
        "family_allowance_funds": 2,
        "unemployment_payment_bodies": 1,
        "social_secretariats": 2,
        "sector_funds": 2,
        "regional_bodies": 2,
        "local_bodies": 3,
        "public_mission_bodies": 2,
    },
}
DEFAULT_AS_OF = dt.date(2026, 10, 1)
DEFAULT_EMPLOYED_SHARE = 0.65  # of persons aged 18-66: ~4.5 M employees in DmfA of ~7 M (DOMAIN)
DEFAULT_SELF_EMPLOYED_SHARE = 0.10  # of persons aged 18-66 (assumption)
DEFAULT_UNEMPLOYED_SHARE = 0.15  # of persons aged 18-64 without a job (assumption)
DEFAULT_TEMPORARY_UNEMPLOYED_SHARE = 0.03  # of employees (assumption)
DEFAULT_SOCIAL_INTEGRATION_SHARE = 0.04  # of adults without a job (assumption)
DEFAULT_DISABILITY_SHARE = 0.02  # of adults (assumption)
DEFAULT_OCCUPATIONAL_RISK_SHARE = 0.02  # of employees (assumption)
DEFAULT_COMPLEMENTARY_SHARE = 0.10  # of persons: a file at a regional/local/private body (assumption)
DEFAULT_BIS_SHARE = 0.02  # of persons: CBSS bis numbers (assumption)
DEFAULT_SECRETARIAT_SHARE = 0.70  # of employers: declare through a social secretariat (assumption)
DEFAULT_PROVISIONAL_SHARE = 0.01  # of open files: quality code 902 (assumption)
DEFAULT_SWITCH_SHARE = 0.08  # of files: a closed earlier file at another agency (assumption)

MAX_PERSONS = 20_000_000  # NISS sequences per birth day bound the population (499 per sex and day)
MAX_EMPLOYERS = 10_000_000  # KBO serials are drawn from 18 M numbers: keep the draw sparse
MAX_AGENCIES_PER_CATEGORY = 9_999  # agency ids carry four digits, e.g. "CPAS-0042"


@dataclass(frozen=True, kw_only=True, slots=True)
class AgencyCounts:
    """How many agencies of each numbered category (the named primary institutions are fixed).

    No public source gives these counts (DOMAIN.md); the scenario files say which are assumed.
    """

    cpas: int = 581  # ~580-590 public centres for social welfare (DOMAIN)
    health_insurance_funds: int = 57
    family_allowance_funds: int = 16
    unemployment_payment_bodies: int = 4  # CAPAC/HVW and three union payment bodies
    social_secretariats: int = 25
    sector_funds: int = 150
    regional_bodies: int = 80
    local_bodies: int = 1_600
    public_mission_bodies: int = 473

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in dataclasses.fields(self))


DEFAULT_AGENCY_COUNTS = AgencyCounts()

# categories a world cannot route without: each holds a per-person dataset or declarations
_AT_LEAST_ONE = frozenset({"cpas", "health_insurance_funds", "family_allowance_funds", "unemployment_payment_bodies"})


_REQUIRED = frozenset({"seed", "persons", "employers"})


class SpecError(ValueError):
    """A world spec that cannot be built: says where (file, YAML path) and what was expected."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WorldSpec:
    """What a synthetic world is built from. Same spec (seed included) -> same world."""

    seed: int
    persons: int
    employers: int
    as_of: dt.date = DEFAULT_AS_OF  # the day the world describes: files open on it are current
    employed_share: float = DEFAULT_EMPLOYED_SHARE
    self_employed_share: float = DEFAULT_SELF_EMPLOYED_SHARE
    unemployed_share: float = DEFAULT_UNEMPLOYED_SHARE
    temporary_unemployed_share: float = DEFAULT_TEMPORARY_UNEMPLOYED_SHARE
    social_integration_share: float = DEFAULT_SOCIAL_INTEGRATION_SHARE
    disability_share: float = DEFAULT_DISABILITY_SHARE
    occupational_risk_share: float = DEFAULT_OCCUPATIONAL_RISK_SHARE
    complementary_share: float = DEFAULT_COMPLEMENTARY_SHARE
    bis_share: float = DEFAULT_BIS_SHARE
    secretariat_share: float = DEFAULT_SECRETARIAT_SHARE
    provisional_share: float = DEFAULT_PROVISIONAL_SHARE
    switch_share: float = DEFAULT_SWITCH_SHARE
    agencies: AgencyCounts = field(default_factory=AgencyCounts)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> WorldSpec:
        """Validate the `world:` mapping `data` found at `where` (e.g. "demo.yaml: world").

        Raises `SpecError` for a missing required key, an unknown key, a wrong type or an
        impossible value; the message names the YAML path and what was expected.
        """
        values = _fields(data, where, _REQUIRED)
        if "agencies" in values:
            values["agencies"] = _counts(values["agencies"], f"{where}.agencies")
        spec = cls(**values)
        _check_relations(spec, where)
        return spec


def load_world_spec(path: Path) -> WorldSpec:
    """The `WorldSpec` under the top-level `world:` key of the YAML file at `path`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"{path}: cannot read a YAML scenario: {exc}") from exc
    if not isinstance(data, Mapping) or "world" not in data:
        raise SpecError(f"{path}: expected a mapping with a top-level 'world:' key")
    return WorldSpec.from_mapping(data["world"], f"{path}: world")


# ---------------------------------------------------------------- validation, field by field
def _fields(data: Any, where: str, required: frozenset[str]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(WorldSpec)}
    for key in data:
        if key not in known:
            raise SpecError(f"{where}.{key}: unknown key; expected one of {', '.join(sorted(known))}")
    for key in sorted(required):
        if key not in data:
            raise SpecError(f"{where}.{key}: missing; expected {_EXPECTED[key]}")
    return {key: _value(key, value, f"{where}.{key}") for key, value in data.items()}


_EXPECTED: dict[str, str] = {
    "seed": "an integer 0..2**63-1",
    "persons": f"an integer 1..{MAX_PERSONS:,}",
    "employers": f"an integer 1..{MAX_EMPLOYERS:,}",
    "as_of": "an ISO date (YYYY-MM-DD) between 2000-01-01 and 2099-12-31",
    "agencies": "a mapping of category -> count",
}
_SHARE = "a number between 0 and 1"


def _value(key: str, value: Any, path: str) -> Any:
    if key == "agencies":
        return value
    if key == "as_of":
        return _date(value, path)
    if key.endswith("_share"):
        return _share(value, path)
    limit = {"seed": 2**63 - 1, "persons": MAX_PERSONS, "employers": MAX_EMPLOYERS}[key]
    return _int(value, path, 0 if key == "seed" else 1, limit, _EXPECTED[key])


def _int(value: Any, path: str, low: int, high: int, expected: str) -> int:
    # bool is an int in Python, but `persons: true` is a mistake, not a count
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"{path}: expected {expected}, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise SpecError(f"{path}: expected {expected}, got {value}")
    return value


def _share(value: Any, path: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise SpecError(f"{path}: expected {_SHARE}, got {type(value).__name__} {value!r}")
    if not 0.0 <= value <= 1.0:
        raise SpecError(f"{path}: expected {_SHARE}, got {value}")
    return float(value)


def _date(value: Any, path: str) -> dt.date:
    if isinstance(value, str):
        try:
            value = dt.date.fromisoformat(value)
        except ValueError:
            raise SpecError(f"{path}: expected {_EXPECTED['as_of']}, got {value!r}") from None
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise SpecError(f"{path}: expected {_EXPECTED['as_of']}, got {type(value).__name__} {value!r}")
    # two-digit NISS years are read relative to the day of the world: keep it in this century
    if not dt.date(2000, 1, 1) <= value <= dt.date(2099, 12, 31):
        raise SpecError(f"{path}: expected {_EXPECTED['as_of']}, got {value.isoformat()}")
    return value


def _counts(data: Any, where: str) -> AgencyCounts:
    if not isinstance(data, Mapping):
        raise SpecError(f"{where}: expected {_EXPECTED['agencies']}, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(AgencyCounts)}
    values: dict[str, int] = {}
    for key, value in data.items():
        if key not in known:
            raise SpecError(f"{where}.{key}: unknown agency category; expected one of {', '.join(sorted(known))}")
        low = 1 if key in _AT_LEAST_ONE else 0
        expected = f"an integer {low}..{MAX_AGENCIES_PER_CATEGORY}"
        values[key] = _int(value, f"{where}.{key}", low, MAX_AGENCIES_PER_CATEGORY, expected)
    return AgencyCounts(**values)


def _check_relations(spec: WorldSpec, where: str) -> None:
    if spec.employers > spec.persons:
        raise SpecError(
            f"{where}.employers: expected at most as many employers as persons ({spec.persons:,}), "
            f"got {spec.employers:,}"
        )
