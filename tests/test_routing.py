"""The routing decision, on the small hand-made network of tests/small_network.py."""

from __future__ import annotations

import datetime as dt
import gc
import inspect
import weakref
from dataclasses import FrozenInstanceError, fields

import pytest

from crossroads import routing
from crossroads.domain import (
    AgencyId,
    Category,
    Condition,
    Dataset,
    Deliberation,
    DeliberationRef,
    Kind,
    Knowledge,
    Purpose,
    QualityCode,
)
from crossroads.routing import Denied, Destination, Request, Routed, Unroutable, request_of, route
from tests.small_network import ALICE, BOB, CPAS, EMPLOYER, FAMILY, FILES, KNOWLEDGE, file

TODAY = dt.date(2026, 11, 28)


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


def test_consultation_of_a_sector_dataset_goes_to_the_fund_holding_the_openfile() -> None:
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
    files = [file(ALICE, CPAS, "CPAS-1", dt.date(2020, 1, 1))]
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
    not_head = [file(BOB, FAMILY, "FA-1", dt.date(2021, 1, 1), q=2)]
    request = _request(Kind.MUTATION, "RN", "identity", change="household", subjects=(BOB,))
    assert _targets(route(request, KNOWLEDGE, not_head)) == []


def test_only_the_authentic_source_sends_mutations() -> None:
    request = _request(Kind.MUTATION, "ONSS", "identity", change="identity", subjects=(ALICE,))
    decision = route(request, KNOWLEDGE, FILES)
    assert isinstance(decision, Denied) and decision.rule == "not_authentic_source"


@pytest.mark.parametrize(("sender", "allowed"), [("CPAS-1", True), ("MUT-1", False)])
def test_integration_only_in_the_senders_own_sector(sender: str, allowed: bool) -> None:
    entry = file(BOB, CPAS, sender, dt.date(2026, 11, 1))
    decision = route(_request(Kind.INTEGRATION, sender, "", integration=entry), KNOWLEDGE, FILES)
    if allowed:
        assert decision == Routed((Destination(AgencyId("SPPIS")),), (), QualityCode(0), directory_change=entry)
    else:
        assert isinstance(decision, Denied) and decision.rule == "foreign_sector"


def test_route_is_pure() -> None:
    request = _request(Kind.DMFA, "PORTAL", "dmfa", "declaration", subjects=(ALICE, BOB))
    assert route(request, KNOWLEDGE, FILES) == route(request, KNOWLEDGE, list(FILES))


def test_request_of_builds_the_same_frozen_request() -> None:
    values = (
        Kind.MUTATION,
        AgencyId("RN"),
        Dataset("identity"),
        Purpose("mutation"),
        TODAY,
        (ALICE, BOB),
        EMPLOYER,
        DeliberationRef("95/001"),
        "address",
        FILES[0],
    )  # every field set, none to its default
    built = request_of(*values)
    assert built == Request(*values) and hash(built) == hash(Request(*values))
    assert list(inspect.signature(request_of).parameters) == [f.name for f in fields(Request)]
    with pytest.raises(FrozenInstanceError):
        built.change = "identity"  # type: ignore[misc]


def _wages_knowledge(*grants: tuple[str, str, Condition]) -> Knowledge:
    """The small network, with only `grants` (ref, purpose, condition) letting CPAS obtain wages."""
    return Knowledge.build(
        KNOWLEDGE.agencies.values(),
        KNOWLEDGE.sources.values(),
        [
            Deliberation(
                DeliberationRef(r), frozenset({Category("cpas")}), Dataset("wages"), frozenset({Purpose(p)}), c
            )
            for r, p, c in grants
        ],
    )


@pytest.mark.parametrize(
    ("sender", "named", "outcome"),
    [
        ("CPAS-1", None, "01/own"),  # in its files: the first deliberation holds
        ("CPAS-2", None, "02/any"),  # not in its files: the next one, without condition
        ("CPAS-1", "02/any", "02/any"),
        ("CPAS-2", "01/own", "not_in_files"),
        ("CPAS-1", "03/other", "no_deliberation"),  # allows wages, but for another purpose
    ],
)
def test_the_first_deliberation_whose_condition_holds_allows_a_consultation(
    sender: str, named: str | None, outcome: str
) -> None:
    knowledge = _wages_knowledge(
        ("01/own", "social_integration", Condition.OWN_FILES),
        ("02/any", "social_integration", Condition.NONE),
        ("03/other", "research", Condition.NONE),
    )
    ref = DeliberationRef(named) if named else None
    request = _request(Kind.CONSULTATION, sender, "wages", "social_integration", subjects=(ALICE,), deliberation=ref)
    decision = route(request, knowledge, FILES)
    if isinstance(decision, Denied):
        assert decision.rule == outcome
    else:
        assert isinstance(decision, Routed) and decision.deliberations == (outcome,)
        assert decision.quality == (QualityCode(0) if sender == "CPAS-1" else None)


def test_each_knowledge_routes_by_its_own_deliberations() -> None:
    request = _request(Kind.CONSULTATION, "CPAS-2", "wages", "social_integration", subjects=(ALICE,))
    for _ in range(2):  # what route derives from a Knowledge must not leak into another
        assert isinstance(route(request, KNOWLEDGE, FILES), Denied)
        assert isinstance(route(request, _wages_knowledge(("1", "social_integration", Condition.NONE)), FILES), Routed)
        assert isinstance(route(request, _wages_knowledge(("1", "research", Condition.NONE)), FILES), Denied)


def test_a_knowledge_no_longer_used_leaves_nothing_behind() -> None:
    request = _request(Kind.CONSULTATION, "CPAS-1", "wages", "social_integration", subjects=(ALICE,))
    gc.collect()
    kept = len(routing._INDEXES)
    knowledge = _wages_knowledge(("1", "social_integration", Condition.NONE))
    assert isinstance(route(request, knowledge, FILES), Routed)
    assert len(routing._INDEXES) == kept + 1
    gone = weakref.ref(knowledge)
    del knowledge
    gc.collect()
    assert gone() is None and len(routing._INDEXES) == kept
