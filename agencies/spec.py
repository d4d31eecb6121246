"""The world spec: everything the synthetic world is built from, besides the code.

A world is deterministic from its `WorldSpec` (which includes the seed). `WorldSpec.from_mapping`
is the single place that validates the `world:` mapping of a scenario: pydantic validates the
dataclass itself (its field types say what each key expects, `scenarios.values`), filling the
defaults, the `DEFAULT_*` constants below; unknown keys, wrong types and impossible values are
refused with a `SpecError` (a `ScenarioError`) naming the file, the YAML path, what was expected
and, for a file, the line and column.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import ConfigDict, TypeAdapter

from scenarios.documents import Document, ScenarioError, read_yaml
from scenarios.values import Share, iso_date, keys, whole

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


# categories a world cannot route without: each holds a per-person dataset or declarations
_AtLeastOne = Annotated[int, whole(1, MAX_AGENCIES_PER_CATEGORY)]
_Count = Annotated[int, whole(0, MAX_AGENCIES_PER_CATEGORY)]


@dataclass(frozen=True, kw_only=True, slots=True)
class AgencyCounts:
    """How many agencies of each numbered category (the named primary institutions are fixed).

    No public source gives these counts (DOMAIN.md); the scenario files say which are assumed.
    """

    __pydantic_config__ = ConfigDict(extra="forbid")

    cpas: _AtLeastOne = 581  # ~580-590 public centres for social welfare (DOMAIN)
    health_insurance_funds: _AtLeastOne = 57
    family_allowance_funds: _AtLeastOne = 16
    unemployment_payment_bodies: _AtLeastOne = 4  # CAPAC/HVW and three union payment bodies
    social_secretariats: _Count = 25
    sector_funds: _Count = 150
    regional_bodies: _Count = 80
    local_bodies: _Count = 1_600
    public_mission_bodies: _Count = 473

    def total(self) -> int:
        return sum(getattr(self, f.name) for f in dataclasses.fields(self))


DEFAULT_AGENCY_COUNTS = AgencyCounts()


def _fields(kind: type[Any]) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(kind))


class SpecError(ScenarioError):
    """A world spec that cannot be built: says where (file, YAML path, line) and what was expected."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WorldSpec:
    """What a synthetic world is built from. Same spec (seed included) -> same world."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    seed: Annotated[int, whole(0, 2**63 - 1)]
    persons: Annotated[int, whole(1, MAX_PERSONS)]
    employers: Annotated[int, whole(1, MAX_EMPLOYERS)]
    # the day the world describes: files open on it are current; two-digit NISS years are read
    # relative to it, so it stays in this century
    as_of: Annotated[dt.date, iso_date(dt.date(2000, 1, 1), dt.date(2099, 12, 31))] = DEFAULT_AS_OF
    employed_share: Share = DEFAULT_EMPLOYED_SHARE
    self_employed_share: Share = DEFAULT_SELF_EMPLOYED_SHARE
    unemployed_share: Share = DEFAULT_UNEMPLOYED_SHARE
    temporary_unemployed_share: Share = DEFAULT_TEMPORARY_UNEMPLOYED_SHARE
    social_integration_share: Share = DEFAULT_SOCIAL_INTEGRATION_SHARE
    disability_share: Share = DEFAULT_DISABILITY_SHARE
    occupational_risk_share: Share = DEFAULT_OCCUPATIONAL_RISK_SHARE
    complementary_share: Share = DEFAULT_COMPLEMENTARY_SHARE
    bis_share: Share = DEFAULT_BIS_SHARE
    secretariat_share: Share = DEFAULT_SECRETARIAT_SHARE
    provisional_share: Share = DEFAULT_PROVISIONAL_SHARE
    switch_share: Share = DEFAULT_SWITCH_SHARE
    agencies: Annotated[AgencyCounts, keys(_fields(AgencyCounts), "agency category")] = field(
        default_factory=AgencyCounts
    )

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> WorldSpec:
        """Validate the `world:` mapping `data` found at `where` (e.g. "demo.yaml: world").

        Raises `SpecError` for a missing required key, an unknown key, a wrong type or an
        impossible value; the message names the YAML path and what was expected.
        """
        doc = Document(data, where, SpecError)
        spec = doc.validate(_section())
        if spec.employers > spec.persons:
            raise doc.expected(
                ("employers",), f"at most as many employers as persons ({spec.persons:,})", spec.employers
            )
        return spec


@functools.cache
def _section() -> TypeAdapter[WorldSpec]:
    return TypeAdapter(Annotated[WorldSpec, keys(_fields(WorldSpec))])


def load_world_spec(path: Path) -> WorldSpec:
    """The `WorldSpec` under the top-level `world:` key of the YAML file at `path`."""
    data = read_yaml(path, SpecError)
    if not isinstance(data, Mapping) or "world" not in data:
        raise SpecError(str(path), "expected a mapping with a top-level 'world:' key")
    return WorldSpec.from_mapping(data["world"], f"{path}: world")
