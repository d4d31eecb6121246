"""The knowledge part of the directory: who holds which dataset, who may obtain it, and how.

- Dataset sources: one authentic source (e.g. `wages` at ONSS), or the agency of a sector
  holding the person's file (e.g. `health_insurance`: the person's fund, via NIC/CIN).
- Deliberations of the Information Security Committee: which categories may obtain which
  dataset, for which purposes, under which condition. Members of secondary networks and the
  CPAS may only ask about persons in their own files (`Condition.OWN_FILES`). For declarations
  and mutations the deliberations name who receives them when the core fans them out.
- Mutation rules per sector; the family-allowance ones are those of the 1995-1999 circulars
  (DOMAIN.md); the other sectors get the default (every agency with an open file).

The tables are data (no public source lists the real deliberations); the refs are stable,
"08/020"-style numbers given in table order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from agencies import catalogue as c
from agencies import sectors as s
from crossroads import citizen
from crossroads.domain import (
    Agency,
    AgencyId,
    Category,
    Condition,
    Dataset,
    DatasetSource,
    Deliberation,
    DeliberationRef,
    Knowledge,
    MutationRule,
    Purpose,
    Reach,
    SectorCode,
)

__all__ = [
    "CITIZEN_DATASETS",
    "CITIZEN_PURPOSE",
    "CONSULTATION_DATASETS",
    "DECLARANTS",
    "DECLARATION_DATASETS",
    "DECLARATION_PURPOSE",
    "DRS_DATASETS",
    "MUTATION_CHANGES",
    "MUTATION_DATASETS",
    "MUTATION_PURPOSE",
    "build_knowledge",
    "consultation_deliberations",
    "deliberations",
    "mutation_rules",
    "sources",
]

D = Dataset
IDENTITY, WAGES, UNEMPLOYMENT, HEALTH = D("identity"), D("wages"), D("unemployment"), D("health_insurance")
FAMILY, PENSION, SELF_EMPLOYED = D("family_allowance"), D("pension"), D("self_employed")
SOCIAL_INTEGRATION, OCCUPATIONAL, DISABILITY = D("social_integration"), D("occupational_risk"), D("disability")
HOLIDAY = D("holiday_pay")
DIMONA, DMFA = D("dimona"), D("dmfa")
DRS_SICKNESS, DRS_ACCIDENT, DRS_UNEMPLOYMENT = D("drs_sickness"), D("drs_accident"), D("drs_unemployment")
REGISTER_CHANGES, DMFA_ATTESTATIONS = D("register_changes"), D("dmfa_attestations")

DECLARANTS = frozenset({c.CAT_PORTAL, c.CAT_BATCH, c.CAT_SECRETARIAT})

# dataset: (sector, authentic source or None = the agency of the sector holding the file)
_CONSULTATION_SOURCES: dict[Dataset, tuple[SectorCode, AgencyId | None]] = {
    IDENTITY: (s.SECTOR_IDENTITY, c.NR),
    WAGES: (s.SECTOR_EMPLOYEES, c.ONSS),
    UNEMPLOYMENT: (s.SECTOR_UNEMPLOYMENT, None),  # the payment body with the file
    HEALTH: (s.SECTOR_HEALTH, None),  # the person's health-insurance fund
    FAMILY: (s.SECTOR_FAMILY_ALLOWANCES, None),  # the family-allowance fund with the file
    PENSION: (s.SECTOR_PENSIONS, c.SFP),
    SELF_EMPLOYED: (s.SECTOR_SELF_EMPLOYED, c.INASTI),
    SOCIAL_INTEGRATION: (s.SECTOR_SOCIAL_INTEGRATION, None),  # the CPAS with the file
    OCCUPATIONAL: (s.SECTOR_OCCUPATIONAL_RISKS, c.FEDRIS),
    DISABILITY: (s.SECTOR_DISABILITY, c.DGPH),
    HOLIDAY: (s.SECTOR_HOLIDAY_PAY, c.ONVA),
}
_DECLARATION_SOURCES: dict[Dataset, tuple[SectorCode, AgencyId | None]] = {
    DIMONA: (s.SECTOR_EMPLOYEES, c.ONSS),
    DMFA: (s.SECTOR_EMPLOYEES, c.ONSS),
    DRS_SICKNESS: (s.SECTOR_HEALTH, None),  # to the worker's health-insurance fund
    DRS_ACCIDENT: (s.SECTOR_OCCUPATIONAL_RISKS, c.FEDRIS),
    DRS_UNEMPLOYMENT: (s.SECTOR_UNEMPLOYMENT, c.ONEM),
}
_MUTATION_SOURCES: dict[Dataset, tuple[SectorCode, AgencyId | None]] = {
    REGISTER_CHANGES: (s.SECTOR_IDENTITY, c.NR),
    DMFA_ATTESTATIONS: (s.SECTOR_EMPLOYEES, c.ONSS),  # DmfA attestations are pushed as mutations
}
CONSULTATION_DATASETS: tuple[Dataset, ...] = tuple(_CONSULTATION_SOURCES)
DECLARATION_DATASETS: tuple[Dataset, ...] = tuple(_DECLARATION_SOURCES)
MUTATION_DATASETS: tuple[Dataset, ...] = tuple(_MUTATION_SOURCES)
MUTATION_CHANGES: dict[Dataset, tuple[str, ...]] = {
    REGISTER_CHANGES: ("identity", "address", "household", "civil_status"),
    DMFA_ATTESTATIONS: ("dmfa_attestation",),
}
# RiskFamily value (crossroads.v1) -> DRS dataset and its scenario numbers (the seed speaks of 24
# scenarios across the families; the split below is an assumption, treat it as data)
DRS_DATASETS: dict[int, tuple[Dataset, tuple[int, ...]]] = {
    1: (DRS_SICKNESS, (1, 2, 3, 4, 5, 6)),
    2: (DRS_ACCIDENT, (1, 2, 3)),
    3: (DRS_UNEMPLOYMENT, (1, 2, 3, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16)),
}

# ---------------------------------------------------------------- consultation deliberations
P = Purpose
_SECONDARY_FILES = (c.CAT_CPAS, c.CAT_HEALTH_FUND, c.CAT_FAMILY_FUND, c.CAT_PAYMENT_BODY, c.CAT_SECTOR_FUND)
_COMPLEMENTARY = (c.CAT_REGIONAL, c.CAT_LOCAL, c.CAT_PUBLIC_MISSION)

# (requesters, purposes, condition, datasets): one deliberation per (row, dataset)
# a citizen consulting their own file through the portal: the core checks the FAS assertion
CITIZEN_PURPOSE = citizen.CITIZEN_PURPOSE
CITIZEN_DATASETS = (IDENTITY, WAGES, UNEMPLOYMENT, HEALTH, FAMILY, PENSION, SELF_EMPLOYED)

_CONSULTATIONS: tuple[tuple[tuple[Category, ...], tuple[str, ...], Condition, tuple[Dataset, ...]], ...] = (
    ((c.CAT_CPAS,), ("social_integration", "social_assistance"), Condition.OWN_FILES,
     (IDENTITY, WAGES, UNEMPLOYMENT, HEALTH, FAMILY, PENSION, SELF_EMPLOYED, DISABILITY)),
    ((c.CAT_HEALTH_FUND,), ("health_insurance", "incapacity_benefits"), Condition.OWN_FILES,
     (IDENTITY, WAGES, UNEMPLOYMENT, PENSION, SELF_EMPLOYED, OCCUPATIONAL, DISABILITY, SOCIAL_INTEGRATION)),
    ((c.CAT_FAMILY_FUND,), ("family_allowances",), Condition.OWN_FILES,
     (IDENTITY, WAGES, UNEMPLOYMENT, HEALTH, PENSION, SELF_EMPLOYED, DISABILITY, SOCIAL_INTEGRATION)),
    ((c.CAT_PAYMENT_BODY,), ("unemployment_benefits",), Condition.OWN_FILES,
     (IDENTITY, WAGES, HEALTH, FAMILY, PENSION, SELF_EMPLOYED, OCCUPATIONAL)),
    ((c.CAT_SECTOR_FUND,), ("sector_benefits",), Condition.OWN_FILES, (IDENTITY, WAGES, UNEMPLOYMENT)),
    (_COMPLEMENTARY, ("complementary_benefits", "social_tariff"), Condition.OWN_FILES,
     (IDENTITY, HEALTH, SOCIAL_INTEGRATION, DISABILITY, PENSION)),
    ((c.CAT_ONEM,), ("unemployment_benefits", "control"), Condition.NONE,
     (IDENTITY, WAGES, HEALTH, PENSION, SELF_EMPLOYED, SOCIAL_INTEGRATION, UNEMPLOYMENT)),
    ((c.CAT_INAMI, c.CAT_CIN), ("health_insurance",), Condition.NONE,
     (IDENTITY, WAGES, UNEMPLOYMENT, OCCUPATIONAL, PENSION, SELF_EMPLOYED, HEALTH)),
    ((c.CAT_SFP,), ("pension",), Condition.NONE, (IDENTITY, WAGES, UNEMPLOYMENT, HEALTH, SELF_EMPLOYED, DISABILITY)),
    ((c.CAT_FEDRIS,), ("occupational_risks",), Condition.NONE, (IDENTITY, WAGES, HEALTH)),
    ((c.CAT_INASTI,), ("self_employed_status",), Condition.NONE, (IDENTITY, WAGES, HEALTH, PENSION)),
    ((c.CAT_ONSS,), ("collection_of_contributions", "control"), Condition.NONE, (IDENTITY, SELF_EMPLOYED, HEALTH)),
    ((c.CAT_DG_DISABILITY,), ("disability_allowance",), Condition.NONE,
     (IDENTITY, WAGES, PENSION, UNEMPLOYMENT, HEALTH, FAMILY, SOCIAL_INTEGRATION)),
    ((c.CAT_SPP_IS,), ("social_integration",), Condition.NONE, (IDENTITY, SOCIAL_INTEGRATION, WAGES)),
    ((c.CAT_FAMILY_ALLOWANCE_BODY,), ("family_allowances",), Condition.NONE,
     (IDENTITY, WAGES, UNEMPLOYMENT, FAMILY, SOCIAL_INTEGRATION)),
    ((c.CAT_ONVA,), ("holiday_pay",), Condition.NONE, (IDENTITY, WAGES)),
    # citizens consult their own file through the portal, which authenticates them (eID, FAS);
    # the routing rules cannot say "only the citizen's own NISS": the core must (see issue 5)
    ((c.CAT_PORTAL,), (CITIZEN_PURPOSE,), Condition.NONE, CITIZEN_DATASETS),
)  # fmt: skip

# ---------------------------------------------------------------- declaration recipients
_DECLARATIONS: tuple[tuple[tuple[Category, ...], Condition, Dataset], ...] = (
    ((c.CAT_ONEM,), Condition.NONE, DIMONA),  # cross-checks of benefits against employment
    ((c.CAT_PAYMENT_BODY, c.CAT_CPAS), Condition.OWN_FILES, DIMONA),  # a client starts working
    ((c.CAT_ONEM, c.CAT_SFP, c.CAT_INAMI, c.CAT_FEDRIS, c.CAT_ONVA), Condition.NONE, DMFA),
    ((c.CAT_HEALTH_FUND, c.CAT_FAMILY_FUND), Condition.OWN_FILES, DMFA),
    ((c.CAT_INAMI,), Condition.NONE, DRS_SICKNESS),
    ((c.CAT_HEALTH_FUND,), Condition.OWN_FILES, DRS_ACCIDENT),
    ((c.CAT_PAYMENT_BODY,), Condition.OWN_FILES, DRS_UNEMPLOYMENT),
)
DECLARATION_PURPOSE = P("declaration")

# ---------------------------------------------------------------- mutation recipients
_FILE_HOLDERS = (*_SECONDARY_FILES, *_COMPLEMENTARY, c.CAT_ONSS, c.CAT_SFP, c.CAT_INASTI, c.CAT_DG_DISABILITY,
                 c.CAT_FEDRIS)  # fmt: skip
_MUTATIONS: tuple[tuple[tuple[Category, ...], Dataset], ...] = (
    (_FILE_HOLDERS, REGISTER_CHANGES),
    ((c.CAT_HEALTH_FUND, c.CAT_FAMILY_FUND, c.CAT_PAYMENT_BODY, c.CAT_SFP, c.CAT_FEDRIS), DMFA_ATTESTATIONS),
)
MUTATION_PURPOSE = P("mutation")


def sources() -> tuple[DatasetSource, ...]:
    """Where every dataset lives; declaration datasets also say who may file them."""
    plain = {**_CONSULTATION_SOURCES, **_MUTATION_SOURCES}
    held = [DatasetSource(d, sector, source) for d, (sector, source) in plain.items()]
    filed = [DatasetSource(d, sector, source, DECLARANTS) for d, (sector, source) in _DECLARATION_SOURCES.items()]
    return (*held, *filed)


def _rows() -> Iterator[tuple[frozenset[Category], Dataset, frozenset[Purpose], Condition]]:
    for requesters, purposes, condition, datasets in _CONSULTATIONS:
        for dataset in datasets:
            yield frozenset(requesters), dataset, frozenset(map(P, purposes)), condition
    for requesters, condition, dataset in _DECLARATIONS:
        yield frozenset(requesters), dataset, frozenset({DECLARATION_PURPOSE}), condition
    for requesters, dataset in _MUTATIONS:
        yield frozenset(requesters), dataset, frozenset({MUTATION_PURPOSE}), Condition.NONE


def _ref(k: int) -> DeliberationRef:
    """The k-th deliberation's number: "YY/NNN", a dozen a year from 2003 (unique by construction)."""
    return DeliberationRef(f"{3 + k // 12:02d}/{(k % 12) * 17 + 5:03d}")


def deliberations() -> tuple[Deliberation, ...]:
    """Every deliberation, in table order (consultations, declarations, mutations)."""
    return tuple(
        Deliberation(_ref(k), requesters, dataset, purposes, condition)
        for k, (requesters, dataset, purposes, condition) in enumerate(_rows())
    )


def mutation_rules() -> tuple[MutationRule, ...]:
    """Family allowances: identity to every fund that knows or knew the person; household only
    for the head of household, to the last competent fund; anything else to the last competent
    fund. Other sectors: the default of the routing decision (every open file)."""
    family = s.SECTOR_FAMILY_ALLOWANCES
    return (
        MutationRule(family, "identity", Reach.ALL_KNOWN),
        MutationRule(family, "household", Reach.LAST_COMPETENT, head_of_household_only=True),
        MutationRule(family, "*", Reach.LAST_COMPETENT),
    )


def build_knowledge(agencies: Iterable[Agency]) -> Knowledge:
    """The knowledge part of the directory for this catalogue of agencies."""
    return Knowledge.build(agencies, sources(), deliberations(), mutation_rules())


def consultation_deliberations(knowledge: Knowledge) -> Sequence[Deliberation]:
    """The deliberations about consultation datasets, in ref order."""
    wanted = set(CONSULTATION_DATASETS)
    return tuple(d for d in knowledge.deliberations if d.dataset in wanted)
