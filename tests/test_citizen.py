"""A citizen sees only their own file and their own who-accessed list (crossroads/citizen.py).

The synthetic FAS signs a short-lived assertion (NISS, expiry, audience); the core's gate lets
the portal act for that citizen alone. First the gate on its own, with a fixed clock and fixed
keys; then the core over real gRPC on 127.0.0.1, with the small network of tests/small_network.py
plus a deliberation that lets its access point (PORTAL) consult for citizens.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import stat
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from agencies import authorizations
from crossroads import citizen as c
from crossroads.audit_record import AuditRecord
from crossroads.citizen import CITIZEN_PURPOSE, MAX_LIFETIME, CitizenGate, Fas, FasError, ensure_fas, issue_assertion
from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId, Category, Condition, Dataset, Deliberation, DeliberationRef, Kind, Knowledge
from crossroads.domain import Purpose as P
from crossroads.exchange import audit_index_of
from crossroads.knowledge_io import dump_knowledge
from crossroads.pki import CORE, NetworkPki, channel_credentials
from crossroads.routing import Denied, Request
from crossroads.server import CoreConfig, RunningCore, start_core
from protos import messages_pb2 as pb
from protos import services_pb2, services_pb2_grpc
from tests.small_network import ALICE, BOB, FILES, KNOWLEDGE
from tests.test_core_server import HOST, _Host, _start_host
from tests.test_exchange import consultation, dmfa

NOW = 1_790_000_000.0  # a fixed clock: 2026-09-21
FAS_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
PORTAL = AgencyId("PORTAL")
KNOWLEDGE_WITH_CITIZENS = Knowledge.build(
    KNOWLEDGE.agencies.values(),
    KNOWLEDGE.sources.values(),
    [
        *KNOWLEDGE.deliberations,
        Deliberation(
            DeliberationRef("99/001"),
            frozenset({Category("access_point")}),  # PORTAL's category in the small network
            Dataset("health_insurance"),
            frozenset({CITIZEN_PURPOSE}),
            Condition.NONE,
        ),
    ],
    KNOWLEDGE.mutation_rules,
)


def _assertion(
    niss: str = ALICE, *, key: Ed25519PrivateKey = FAS_KEY, ttl: int = 600, **kw: Any
) -> pb.CitizenAssertion:
    return issue_assertion(key, niss, NOW, ttl, audience=kw.pop("audience", PORTAL), assertion_id="a-1", **kw)


def _gate(**kw: Any) -> CitizenGate:
    return CitizenGate(FAS_KEY.public_key(), c.citizen_access_points(KNOWLEDGE_WITH_CITIZENS), **kw)


def _request(sender: str = PORTAL, subjects: tuple[str, ...] = (ALICE,), purpose: str = CITIZEN_PURPOSE) -> Request:
    return Request(
        kind=Kind.CONSULTATION,
        sender=AgencyId(sender),
        dataset=Dataset("health_insurance"),
        purpose=P(purpose),
        as_of=dt.date(2026, 9, 21),
        subjects=subjects,  # type: ignore[arg-type]
    )


def _citizen_env(assertion: pb.CitizenAssertion | None = None) -> pb.Envelope:
    env = consultation(purpose=CITIZEN_PURPOSE, dataset="health_insurance", payload=b"")
    if assertion is not None:
        env.citizen.CopyFrom(assertion)
    return env


def _rule(denied: Denied | None) -> str | None:
    return None if denied is None else denied.rule


# ---------------------------------------------------------------- the gate on an exchange


def test_the_portal_with_the_citizens_own_valid_assertion_passes() -> None:
    assert _gate().check_exchange(_citizen_env(_assertion()), _request(), NOW) is None


@pytest.mark.parametrize(
    ("env", "request_", "now", "rule"),
    [
        (_citizen_env(), _request(), NOW, c.NO_ASSERTION),
        (_citizen_env(_assertion()), _request(), NOW + 600, c.EXPIRED),  # valid strictly before `expires`
        (_citizen_env(_assertion(ttl=MAX_LIFETIME + 1)), _request(), NOW, c.TOO_LONG),
        (_citizen_env(_assertion()), _request(subjects=(BOB,)), NOW, c.OTHER_PERSON),
        (_citizen_env(_assertion()), _request(subjects=(ALICE, BOB)), NOW, c.OTHER_PERSON),
        (_citizen_env(_assertion(key=OTHER_KEY)), _request(), NOW, c.FORGED),
        (_citizen_env(_assertion(audience="MUT-1")), _request(), NOW, c.NOT_ADDRESSED),
        (_citizen_env(_assertion(audience="CPAS-1")), _request(sender="CPAS-1"), NOW, c.NOT_ACCESS_POINT),
        (_citizen_env(_assertion()), _request(purpose="social_integration"), NOW, c.UNEXPECTED),
    ],
    ids=[
        "missing",
        "expired",
        "too-long-lived",
        "other-person",
        "other-persons-too",
        "bad-signature",
        "for-another-presenter",
        "not-an-access-point",
        "on-another-purpose",
    ],
)
def test_a_citizen_exchange_is_refused_naming_what_was_wrong(
    env: pb.Envelope, request_: Request, now: float, rule: str
) -> None:
    denied = _gate().check_exchange(env, request_, now)
    assert denied is not None and denied.rule == rule and denied.reason


def test_an_exchange_for_no_citizen_without_an_assertion_is_not_the_gates_business() -> None:
    env = consultation()
    assert _gate().check_exchange(env, _request(sender="CPAS-1", purpose="social_integration"), NOW) is None


_Change = Callable[[pb.CitizenAssertion], None]
# one thing changed in a valid assertion after it was signed, and the rule that catches it
_TAMPERED: list[tuple[str, _Change, str]] = [
    ("niss", lambda a: setattr(a, "niss", BOB), c.FORGED),  # another well-formed NISS
    ("expires+1", lambda a: setattr(a, "expires", a.expires + 1), c.FORGED),
    ("expires-1", lambda a: setattr(a, "expires", a.expires - 1), c.FORGED),
    ("audience", lambda a: setattr(a, "audience", "PORTAL2"), c.FORGED),
    ("assertion_id", lambda a: setattr(a, "assertion_id", "a-2"), c.FORGED),
    ("means", lambda a: setattr(a, "means", "itsme"), c.FORGED),
    ("flipped-bit", lambda a: setattr(a, "signature", bytes([a.signature[0] ^ 1]) + a.signature[1:]), c.FORGED),
    ("truncated", lambda a: setattr(a, "signature", a.signature[:-1]), c.MALFORMED),
    ("padded", lambda a: setattr(a, "signature", a.signature + b"\0"), c.MALFORMED),
    ("bad-niss", lambda a: setattr(a, "niss", ALICE[:-1] + str((int(ALICE[-1]) + 1) % 10)), c.MALFORMED),
    ("newline", lambda a: setattr(a, "means", "eid\nx"), c.MALFORMED),
    ("huge", lambda a: setattr(a, "assertion_id", "x" * 1000), c.MALFORMED),
]


@pytest.mark.parametrize(("name", "change", "rule"), _TAMPERED, ids=[t[0] for t in _TAMPERED])
def test_every_change_to_a_signed_assertion_is_caught(name: str, change: _Change, rule: str) -> None:
    assertion = _assertion()
    change(assertion)
    # for the tampered NISS the exchange is about the new person, so only the signature can catch it
    subject = assertion.niss if name == "niss" else ALICE
    assert _rule(_gate().check_exchange(_citizen_env(assertion), _request(subjects=(subject,)), NOW)) == rule


def test_without_the_fas_public_key_every_citizen_act_is_refused(tmp_path: Path) -> None:
    gate = CitizenGate.load(tmp_path / "pki", KNOWLEDGE_WITH_CITIZENS)  # no pki/fas/ there
    assert _rule(gate.check_exchange(_citizen_env(_assertion()), _request(), NOW)) == c.NO_FAS
    assert _rule(gate.check_who_accessed(PORTAL, ALICE, _assertion(), NOW)) == c.NO_FAS


# ---------------------------------------------------------------- who accessed


@pytest.mark.parametrize(
    ("peer", "niss", "assertion", "rule"),
    [
        (PORTAL, ALICE, _assertion(), None),
        (PORTAL, BOB, _assertion(), c.OTHER_PERSON),
        (PORTAL, ALICE, None, c.NO_ASSERTION),
        ("CPAS-1", ALICE, _assertion(audience="CPAS-1"), c.NOT_ACCESS_POINT),
        ("admin", ALICE, _assertion(audience="admin"), c.NOT_ACCESS_POINT),
        (None, ALICE, _assertion(), c.NOT_ACCESS_POINT),
    ],
    ids=["own", "another-persons", "no-assertion", "an-agency", "the-operator", "no-certificate"],
)
def test_who_accessed_is_for_the_citizen_through_the_portal_only(
    peer: str | None, niss: str, assertion: pb.CitizenAssertion | None, rule: str | None
) -> None:
    assert _rule(_gate().check_who_accessed(peer, niss, assertion, NOW)) == rule


# ---------------------------------------------------------------- the cache


class _CountingKey:
    """An Ed25519 public key that counts its verifications."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self.key, self.calls = key, 0

    def verify(self, signature: bytes, data: bytes) -> None:
        self.calls += 1
        self.key.verify(signature, data)


def _counting_gate(cache_size: int) -> tuple[CitizenGate, _CountingKey]:
    key = _CountingKey(FAS_KEY.public_key())
    return CitizenGate(cast(Ed25519PublicKey, key), {PORTAL}, cache_size=cache_size), key


def _citizens(n: int) -> list[pb.CitizenAssertion]:
    return [issue_assertion(FAS_KEY, ALICE, NOW, 600, audience=PORTAL, assertion_id=f"a-{k}") for k in range(n)]


def test_a_verified_assertion_is_verified_once_but_judged_on_every_use() -> None:
    gate, key = _counting_gate(cache_size=8)
    (a,) = _citizens(1)
    assert [_rule(gate.check_who_accessed(PORTAL, ALICE, a, NOW)) for _ in range(3)] == [None] * 3
    assert key.calls == 1 and gate.cached == 1
    assert _rule(gate.check_who_accessed(PORTAL, BOB, a, NOW)) == c.OTHER_PERSON  # cached, still for ALICE only
    assert _rule(gate.check_who_accessed(PORTAL, ALICE, a, NOW + 600)) == c.EXPIRED
    assert key.calls == 1


def test_the_cache_keeps_the_most_recently_used_within_its_bound() -> None:
    gate, key = _counting_gate(cache_size=2)
    a, b, d = _citizens(3)
    for assertion in (a, b, a, d):  # a used again before d comes: b is the one to go
        assert gate.check_who_accessed(PORTAL, ALICE, assertion, NOW) is None
    assert (gate.cached, key.calls) == (2, 3)
    gate.check_who_accessed(PORTAL, ALICE, a, NOW)
    assert key.calls == 3  # a was kept
    gate.check_who_accessed(PORTAL, ALICE, b, NOW)
    assert key.calls == 4 and gate.cached == 2  # b was not


def test_forged_assertions_are_never_cached() -> None:
    gate, key = _counting_gate(cache_size=8)
    forged = _assertion(key=OTHER_KEY)
    for _ in range(2):
        assert _rule(gate.check_who_accessed(PORTAL, ALICE, forged, NOW)) == c.FORGED
    assert (gate.cached, key.calls) == (0, 2)


# ---------------------------------------------------------------- the FAS and the portal's side


def test_the_fas_key_pair_is_made_once_and_its_private_key_is_private(tmp_path: Path) -> None:
    first = ensure_fas(tmp_path / "pki")
    again = ensure_fas(tmp_path / "pki")
    private, public = c.fas_paths(tmp_path / "pki")
    assert first.key.private_bytes_raw() == again.key.private_bytes_raw()
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    gate = CitizenGate.load(tmp_path / "pki", KNOWLEDGE_WITH_CITIZENS)
    signed = first.issue(ALICE, PORTAL, NOW)
    assert gate.check_who_accessed(PORTAL, ALICE, signed, NOW) is None
    assert public.read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def test_a_network_without_a_fas_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(FasError, match="bring the network up"):
        Fas.open(tmp_path / "pki")


def test_the_portal_vouches_only_for_a_citizens_exchange() -> None:
    fas = Fas(FAS_KEY)
    env = _citizen_env()
    fas.vouch(env, PORTAL, NOW)
    assert env.citizen.niss == ALICE and _gate().check_exchange(env, _request(), NOW) is None
    kept = pb.CitizenAssertion()
    kept.CopyFrom(env.citizen)
    fas.vouch(env, PORTAL, NOW + 5)
    assert env.citizen == kept  # one already there is left alone
    declaration, bad_niss = dmfa(ALICE), _citizen_env()
    bad_niss.subject_niss = "12345"
    for untouched in (declaration, bad_niss):
        fas.vouch(untouched, PORTAL, NOW)
        assert not untouched.HasField("citizen")


def test_an_assertion_the_gate_would_refuse_is_not_issued() -> None:
    with pytest.raises(ValueError, match="niss"):
        issue_assertion(FAS_KEY, "12345", NOW, audience=PORTAL)
    with pytest.raises(ValueError, match="ttl"):
        issue_assertion(FAS_KEY, ALICE, NOW, 0, audience=PORTAL)
    with pytest.raises(ValueError, match="audience"):
        issue_assertion(FAS_KEY, ALICE, NOW, audience="")


def test_the_core_and_the_world_name_the_same_citizen_purpose() -> None:
    assert authorizations.CITIZEN_PURPOSE == CITIZEN_PURPOSE
    assert c.citizen_access_points(KNOWLEDGE) == frozenset()  # no deliberation for citizens: nobody
    assert c.citizen_access_points(KNOWLEDGE_WITH_CITIZENS) == {PORTAL}


# ---------------------------------------------------------------- the core over real gRPC


@dataclasses.dataclass
class _Net:
    state: Path
    core: RunningCore
    host: _Host
    fas: Fas

    def channel(self, identity: str) -> Any:
        return grpc.aio.secure_channel(self.core.address, channel_credentials(self.state / "pki", identity))


@asynccontextmanager
async def _network(tmp_path: Path) -> AsyncIterator[_Net]:
    state = tmp_path / "state"
    state.mkdir()
    NetworkPki.open(state / "pki").issue_many([CORE, HOST, "CPAS-1", PORTAL])
    fas = ensure_fas(state / "pki")
    dump_knowledge(KNOWLEDGE_WITH_CITIZENS, state / "knowledge.json")
    store = DirectoryStore.create(state / "directory.sqlite")
    store.bulk_load(FILES)
    store.close()
    host = _Host()
    host_server, port = await _start_host(state / "pki", host)
    hosts = [{"name": HOST, "address": f"127.0.0.1:{port}", "agencies": list(KNOWLEDGE.agencies)}]
    (state / "hosts.json").write_text(json.dumps({"hosts": hosts}), encoding="utf-8")
    core = await start_core(CoreConfig(state=state, forward_deadline=5.0))
    try:
        yield _Net(state, core, host, fas)
    finally:
        await core.stop(grace=0.5)
        await host_server.stop(0)


def _now() -> float:
    # the core runs on the real clock: assertions are issued against it, as the FAS would
    return dt.datetime.now(dt.UTC).timestamp()


async def _exchange(channel: Any, env: pb.Envelope) -> pb.ExchangeReply:
    reply: pb.ExchangeReply = await services_pb2_grpc.CrossroadsStub(channel).Exchange(env, timeout=10)  # type: ignore[no-untyped-call]
    return reply


async def _refused(channel: Any, call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call
    return refused.value


def test_a_citizen_consults_their_own_file_and_no_one_elses_over_grpc(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.channel(PORTAL) as channel:
            own = _citizen_env(net.fas.issue(ALICE, PORTAL, _now()))
            reply = await _exchange(channel, own)
            assert (reply.outcome, reply.deliberation, [d.agency for d in reply.deliveries]) == (
                pb.DELIVERED,
                "99/001",
                ["MUT-2"],
            )
            assert pb.Envelope.FromString(net.host.got[0].envelope).citizen == own.citizen  # forwarded as sent
            for env, rule in [
                (_citizen_env(net.fas.issue(ALICE, PORTAL, _now())), "citizen_other_person"),
                (_citizen_env(), "citizen_no_assertion"),
            ]:
                env.subject_niss, env.message_id = BOB, f"m-{rule}"
                refused = await _refused(channel, _exchange(channel, env))
                assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
                assert f"denied by rule {rule}: " in (refused.details() or "")
                index = audit_index_of(refused.trailing_metadata())
                assert index is not None
                record = AuditRecord.from_leaf(net.core.audit.leaf(index))
                assert (record.outcome, record.sender, record.subject_niss) == ("DENIED", PORTAL, BOB)
                assert rule in record.detail and record.destinations == ()
            assert len(net.host.got) == 1  # nothing about BOB left the core

    asyncio.run(scenario())


def test_who_accessed_answers_the_citizen_through_the_portal_and_nobody_else_over_grpc(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with _network(tmp_path) as net, net.channel(PORTAL) as portal, net.channel("CPAS-1") as agency:
            alice = net.fas.issue(ALICE, PORTAL, _now())
            reply = await _exchange(portal, _citizen_env(alice))
            stub = services_pb2_grpc.AuditStub(portal)  # type: ignore[no-untyped-call]
            listed = await stub.WhoAccessed(services_pb2.WhoAccessedRequest(niss=ALICE, citizen=alice), timeout=10)
            assert [e.index for e in listed.entries] == [reply.audit_index]
            assert AuditRecord.from_leaf(listed.entries[0].leaf).subject_niss == ALICE
            other = services_pb2.WhoAccessedRequest(niss=BOB, citizen=alice)
            refused = await _refused(portal, stub.WhoAccessed(other, timeout=10))
            assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "citizen_other_person" in (refused.details() or "")
            agency_stub = services_pb2_grpc.AuditStub(agency)  # type: ignore[no-untyped-call]
            for request in (services_pb2.WhoAccessedRequest(niss=ALICE), other):
                refused = await _refused(agency, agency_stub.WhoAccessed(request, timeout=10))
                assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "citizen_not_access_point" in (refused.details() or "")

    asyncio.run(scenario())
