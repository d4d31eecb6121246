"""The routing decision, on a small hand-made network: who may send what, and where it goes."""

from __future__ import annotations

import datetime as dt

import pytest

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
    Kind,
    Knowledge,
    MutationRule,
    Purpose,
    QualityCode,
    Reach,
    SectorCode,
)
from crossroads.identifiers import Niss, make_niss
from crossroads.routing import Denied, Destination, Request, Routed, Unroutable, route

TODAY = dt.date(2026, 11, 28)
ALICE = make_niss(dt.date(1985, 3, 14), 123)
BOB = make_niss(dt.date(2003, 6, 2), 44)
CPAS, FUND, FAMILY, SOCIAL = SectorCode(17), SectorCode(3), SectorCode(5), SectorCode(1)


def _agency(id_: str, category: str, sector: SectorCode, hub: str | None = None) -> Agency:
    return Agency(AgencyId(id_), id_, Category(category), sector, AgencyId(hub) if hub else None)


def _delib(ref: str, requesters: set[str], dataset: str, purposes: set[str], condition: Condition) -> Deliberation:
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
        _agency("ONEM", "primary", SectorCode(2)),
        _agency("RN", "register", SectorCode(0)),
        _agency("PORTAL", "access_point", SectorCode(0)),
        _agency("SPPIS", "hub", CPAS),
        _agency("CPAS-1", "cpas", CPAS, "SPPIS"),
        _agency("CPAS-2", "cpas", CPAS, "SPPIS"),
        _agency("CIN", "hub", FUND),
        _agency("MUT-1", "health_fund", FUND, "CIN"),
        _agency("MUT-2", "health_fund", FUND, "CIN"),
        _agency("FA-1", "family_fund", FAMILY),
        _agency("FA-2", "family_fund", FAMILY),
    ],
    sources=[
        DatasetSource(Dataset("wages"), SOCIAL, AgencyId("ONSS")),
        DatasetSource(Dataset("identity"), SectorCode(0), AgencyId("RN")),
        DatasetSource(Dataset("health_insurance"), FUND),
        DatasetSource(Dataset("dmfa"), SOCIAL, AgencyId("ONSS"), frozenset({Category("access_point")})),
    ],
    deliberations=[
        _delib("08/020", {"cpas"}, "wages", {"social_integration"}, Condition.OWN_FILES),
        _delib("09/001", {"cpas"}, "health_insurance", {"social_integration"}, Condition.OWN_FILES),
        _delib("03/050", {"primary"}, "dmfa", {"unemployment"}, Condition.NONE),
        _delib("03/051", {"health_fund"}, "dmfa", {"sickness"}, Condition.OWN_FILES),
        _delib("95/001", {"family_fund", "health_fund", "cpas"}, "identity", {"mutation"}, Condition.NONE),
    ],
    mutation_rules=[
        MutationRule(FAMILY, "identity", Reach.ALL_KNOWN),
        MutationRule(FAMILY, "household", Reach.LAST_COMPETENT, head_of_household_only=True),
        MutationRule(FAMILY, "*", Reach.LAST_COMPETENT),
    ],
)


def _file(
    niss: Niss, sector: SectorCode, agency: str, start: dt.date, end: dt.date | None = None, q: int = 0
) -> DirectoryEntry:
    return DirectoryEntry(niss, sector, AgencyId(agency), QualityCode(q), 1, start, end)


FILES = [
    _file(ALICE, CPAS, "CPAS-1", dt.date(2020, 1, 1)),
    _file(ALICE, FUND, "MUT-1", dt.date(2010, 1, 1), dt.date(2019, 12, 31)),
    _file(ALICE, FUND, "MUT-2", dt.date(2020, 1, 1)),
    _file(ALICE, FAMILY, "FA-1", dt.date(2012, 1, 1), dt.date(2015, 12, 31), q=HEAD_OF_HOUSEHOLD),
    _file(ALICE, FAMILY, "FA-2", dt.date(2016, 1, 1), q=HEAD_OF_HOUSEHOLD),
    _file(BOB, FUND, "MUT-1", dt.date(2021, 1, 1)),
]


def _request(kind: Kind, sender: str, dataset: str, purpose: str = "", **kw: object) -> Request:
    return Request(kind, AgencyId(sender), Dataset(dataset), Purpose(purpose), TODAY, **kw)  # type: ignore[arg-type]


def _targets(decision: object) -> list[str]:
    assert isinstance(decision, Routed), decision
    return [d.agency for d in decision.destinations]


def test_consultation_goes_to_the_authentic_source_via_no_hub() -> None:
    decision = route(
        _request(Kind.CONSULTATION, "CPAS-1", "wages", "social_integration", subjects=(ALICE,)), KNOWLEDGE, FILES
    )
    assert decision == Routed((Destination(AgencyId("ONSS")),), (DeliberationRef("08/020"),), QualityCode(0))


def test_consultation_of_a_sector_dataset_goes_to_the_fund_holding_the_open_file() -> None:
    decision = route(
        _request(Kind.CONSULTATION, "CPAS-1", "health_insurance", "social_integration", subjects=(ALICE,)),
        KNOWLEDGE,
        FILES,
    )
    assert isinstance(decision, Routed)
    assert decision.destinations == (Destination(AgencyId("MUT-2"), AgencyId("CIN")),)


def test_no_deliberation_is_denied_naming_the_rule() -> None:
    decision = route(_request(Kind.CONSULTATION, "MUT-1", "wages", "curiosity", subjects=(ALICE,)), KNOWLEDGE, FILES)
    assert isinstance(decision, Denied)
    assert decision.rule == "no_deliberation"
    assert "health_fund" in decision.reason and "wages" in decision.reason


def test_own_files_condition_refuses_a_person_outside_the_requesters_files() -> None:
    decision = route(
        _request(Kind.CONSULTATION, "CPAS-2", "wages", "social_integration", subjects=(ALICE,)), KNOWLEDGE, FILES
    )
    assert isinstance(decision, Denied)
    assert decision.rule == "not_in_files"


def test_a_named_deliberation_must_be_one_that_allows_it() -> None:
    request = _request(
        Kind.CONSULTATION,
        "CPAS-1",
        "wages",
        "social_integration",
        subjects=(ALICE,),
        deliberation=DeliberationRef("99/999"),
    )
    decision = route(request, KNOWLEDGE, FILES)
    assert isinstance(decision, Denied) and "99/999" in decision.reason


def test_unknown_sender_is_denied() -> None:
    decision = route(_request(Kind.CONSULTATION, "NOBODY", "wages", "x", subjects=(ALICE,)), KNOWLEDGE, FILES)
    assert isinstance(decision, Denied) and decision.rule == "unknown_sender"


def test_no_holder_is_unroutable() -> None:
    files = [_file(ALICE, CPAS, "CPAS-1", dt.date(2020, 1, 1))]
    request = _request(Kind.CONSULTATION, "CPAS-1", "health_insurance", "social_integration", subjects=(ALICE,))
    assert isinstance(route(request, KNOWLEDGE, files), Unroutable)


def test_dmfa_fans_out_to_exactly_the_agencies_the_deliberations_name() -> None:
    request = _request(Kind.DMFA, "PORTAL", "dmfa", "declaration", subjects=(ALICE, BOB))
    decision = route(request, KNOWLEDGE, FILES)
    # the collector, every primary (no condition), and the health funds with an open file on a worker
    assert _targets(decision) == ["ONSS", "ONEM", "MUT-2", "MUT-1"]
    assert isinstance(decision, Routed) and decision.deliberations == ("03/050", "03/051")


def test_only_declarants_may_file_declarations() -> None:
    decision = route(_request(Kind.DMFA, "CPAS-1", "dmfa", "declaration", subjects=(ALICE,)), KNOWLEDGE, FILES)
    assert isinstance(decision, Denied) and decision.rule == "not_a_declarant"


# destinations come sector by sector (health funds 3, family funds 5, CPAS 17)
def test_identity_mutation_reaches_every_family_fund_that_knows_or_knew_the_person() -> None:
    request = _request(Kind.MUTATION, "RN", "identity", change="identity", subjects=(ALICE,))
    assert _targets(route(request, KNOWLEDGE, FILES)) == ["MUT-2", "FA-1", "FA-2", "CPAS-1"]


def test_other_mutations_reach_only_the_last_competent_family_fund() -> None:
    request = _request(Kind.MUTATION, "RN", "identity", change="address", subjects=(ALICE,))
    assert _targets(route(request, KNOWLEDGE, FILES)) == ["MUT-2", "FA-2", "CPAS-1"]


def test_household_mutation_only_for_the_head_of_household() -> None:
    not_head = [_file(BOB, FAMILY, "FA-1", dt.date(2021, 1, 1), q=2)]
    request = _request(Kind.MUTATION, "RN", "identity", change="household", subjects=(BOB,))
    assert _targets(route(request, KNOWLEDGE, not_head)) == []


def test_only_the_authentic_source_sends_mutations() -> None:
    request = _request(Kind.MUTATION, "ONSS", "identity", change="identity", subjects=(ALICE,))
    decision = route(request, KNOWLEDGE, FILES)
    assert isinstance(decision, Denied) and decision.rule == "not_authentic_source"


@pytest.mark.parametrize(("sender", "allowed"), [("CPAS-1", True), ("MUT-1", False)])
def test_integration_only_in_the_senders_own_sector(sender: str, allowed: bool) -> None:
    entry = _file(BOB, CPAS, sender, dt.date(2026, 11, 1))
    decision = route(_request(Kind.INTEGRATION, sender, "", integration=entry), KNOWLEDGE, FILES)
    if allowed:
        assert decision == Routed((Destination(AgencyId("SPPIS")),), (), QualityCode(0), directory_change=entry)
    else:
        assert isinstance(decision, Denied) and decision.rule == "foreign_sector"


def test_route_is_pure() -> None:
    request = _request(Kind.DMFA, "PORTAL", "dmfa", "declaration", subjects=(ALICE, BOB))
    assert route(request, KNOWLEDGE, FILES) == route(request, KNOWLEDGE, list(FILES))
