"""A small hand-made network for the core's tests: a dozen agencies, five deliberations, two persons.

Shared by the routing, exchange and core-server tests, so that each reads as a statement about
the same little world: ALICE is in CPAS-1's files, was at health fund MUT-1 and is now at
MUT-2, and is head of household at family fund FA-1 then FA-2; BOB is at MUT-1; CAROL is in
nobody's files.
"""

from __future__ import annotations

import datetime as dt

from crossroads.domain import (
    HEAD_OF_HOUSEHOLD,
    Agency,
    AgencyId,
    Category,
    Condition,
    Dataset,
    DatasetSource,
    Deliberation,
    DeliberationRef,
    DirectoryEntry,
    Knowledge,
    MutationRule,
    Purpose,
    QualityCode,
    Reach,
    SectorCode,
)
from crossroads.identifiers import Niss, make_kbo, make_niss

ALICE = make_niss(dt.date(1985, 3, 14), 123)
BOB = make_niss(dt.date(2003, 6, 2), 44)
CAROL = make_niss(dt.date(1971, 9, 9), 7)
EMPLOYER = make_kbo(4_242_424)
SOCIAL, UNEMPLOYMENT, FUNDS, FAMILY, CPAS = (SectorCode(s) for s in (1, 2, 3, 5, 17))


def _agency(id_: str, category: str, sector: int, hub: str | None = None) -> Agency:
    return Agency(AgencyId(id_), id_, Category(category), SectorCode(sector), AgencyId(hub) if hub else None)


def _grant(ref: str, requesters: set[str], dataset: str, purposes: set[str], condition: Condition) -> Deliberation:
    return Deliberation(
        DeliberationRef(ref),
        frozenset(Category(r) for r in requesters),
        Dataset(dataset),
        frozenset(Purpose(p) for p in purposes),
        condition,
    )


KNOWLEDGE = Knowledge.build(
    agencies=[
        _agency("ONSS", "primary", SOCIAL),
        _agency("ONEM", "primary", UNEMPLOYMENT),
        _agency("RN", "register", 0),
        _agency("PORTAL", "access_point", 0),
        _agency("SPPIS", "hub", CPAS),
        _agency("CPAS-1", "cpas", CPAS, "SPPIS"),
        _agency("CPAS-2", "cpas", CPAS, "SPPIS"),
        _agency("CIN", "hub", FUNDS),
        _agency("MUT-1", "health_fund", FUNDS, "CIN"),
        _agency("MUT-2", "health_fund", FUNDS, "CIN"),
        _agency("FA-1", "family_fund", FAMILY),
        _agency("FA-2", "family_fund", FAMILY),
    ],
    sources=[
        DatasetSource(Dataset("wages"), SOCIAL, AgencyId("ONSS")),
        DatasetSource(Dataset("identity"), SectorCode(0), AgencyId("RN")),
        DatasetSource(Dataset("health_insurance"), FUNDS),
        DatasetSource(Dataset("dmfa"), SOCIAL, AgencyId("ONSS"), frozenset({Category("access_point")})),
    ],
    deliberations=[
        _grant("08/020", {"cpas"}, "wages", {"social_integration"}, Condition.OWN_FILES),
        _grant("09/001", {"cpas"}, "health_insurance", {"social_integration"}, Condition.OWN_FILES),
        _grant("03/050", {"primary"}, "dmfa", {"unemployment"}, Condition.NONE),
        _grant("03/051", {"health_fund"}, "dmfa", {"sickness"}, Condition.OWN_FILES),
        _grant("95/001", {"family_fund", "health_fund", "cpas"}, "identity", {"mutation"}, Condition.NONE),
    ],
    mutation_rules=[
        MutationRule(FAMILY, "identity", Reach.ALL_KNOWN),
        MutationRule(FAMILY, "household", Reach.LAST_COMPETENT, head_of_household_only=True),
        MutationRule(FAMILY, "*", Reach.LAST_COMPETENT),
    ],
)


def file(
    niss: Niss, sector: SectorCode, agency: str, start: dt.date, end: dt.date | None = None, q: int = 0
) -> DirectoryEntry:
    """One directory row: `agency` of `sector` has a file on `niss` from `start` to `end`."""
    return DirectoryEntry(niss, sector, AgencyId(agency), QualityCode(q), 1, start, end)


FILES = [
    file(ALICE, CPAS, "CPAS-1", dt.date(2020, 1, 1)),
    file(ALICE, FUNDS, "MUT-1", dt.date(2010, 1, 1), dt.date(2019, 12, 31)),
    file(ALICE, FUNDS, "MUT-2", dt.date(2020, 1, 1)),
    file(ALICE, FAMILY, "FA-1", dt.date(2012, 1, 1), dt.date(2015, 12, 31), q=HEAD_OF_HOUSEHOLD),
    file(ALICE, FAMILY, "FA-2", dt.date(2016, 1, 1), q=HEAD_OF_HOUSEHOLD),
    file(BOB, FUNDS, "MUT-1", dt.date(2021, 1, 1)),
]
