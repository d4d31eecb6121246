"""Admission control: per-sender token buckets and quotas, and shedding when the core is full.

First the pure `Admission` with a hand-driven clock, then the policy and its file, then the
core over real gRPC: a sender over its limit is refused RESOURCE_EXHAUSTED with retry advice,
a full core answers UNAVAILABLE at once, and every such refusal has its audit record.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from crossroads.admission import (
    DEFAULT_CATEGORY_LIMITS,
    DEFAULT_LIMIT,
    RETRY_AFTER_KEY,
    Admission,
    AdmissionConfigError,
    AdmissionPolicy,
    Limit,
    retry_after_of,
)
from crossroads.audit import AuditLog
from crossroads.audit_record import AuditRecord
from crossroads.exchange import audit_index_of
from crossroads.pki import NetworkPki, channel_credentials
from crossroads.server import CoreConfig, RunningCore, start_core
from protos import messages_pb2 as pb
from protos import services_pb2_grpc
from tests.small_network import BOB
from tests.test_core_server import _Host, _hosts_json, _start_host, _state
from tests.test_exchange import consultation, dmfa


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _admission(limit: Limit, max_in_flight: int = 100) -> tuple[Admission, Clock]:
    clock = Clock()
    policy = AdmissionPolicy(default=limit, categories={}, agencies={})
    return Admission(policy, max_in_flight=max_in_flight, clock=clock), clock


def test_a_sender_gets_its_burst_then_is_throttled_until_a_token_is_back() -> None:
    admission, clock = _admission(Limit(rate=10.0, burst=3.0, in_flight=100))
    assert [admission.enter("A") for _ in range(3)] == [None, None, None]
    turned = admission.enter("A")
    assert turned is not None and (turned.code, turned.outcome) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "THROTTLED")
    assert turned.retry_after_ms == 100 and "retry after 100 ms" in turned.message  # 1 token at 10/s
    clock.now += 0.06
    again = admission.enter("A")
    assert again is not None and again.retry_after_ms == 40  # 0.6 token there: 0.4 to go
    clock.now += 0.04
    assert admission.enter("A") is None
    assert admission.enter("B") is None  # buckets are per sender


def test_over_time_a_sender_is_held_to_its_rate() -> None:
    admission, clock = _admission(Limit(rate=64.0, burst=5.0, in_flight=1000))
    admitted = 0
    for _ in range(1024):  # 512 calls/s for 2 s (binary fractions: no rounding)
        clock.now += 1 / 512
        if admission.enter("A") is None:
            admitted += 1
            admission.leave("A")
    assert 5 + 127 <= admitted <= 5 + 128  # the burst, plus 64/s (less what a full bucket could not hold)


def test_refused_calls_take_no_token() -> None:
    admission, clock = _admission(Limit(rate=1.0, burst=1.0, in_flight=100))
    assert admission.enter("A") is None
    for _ in range(50):
        assert admission.enter("A") is not None
    clock.now += 1.0
    assert admission.enter("A") is None  # the refusals did not push the next token further away


def test_a_sender_at_its_quota_of_calls_in_flight_is_throttled_until_one_leaves() -> None:
    admission, _ = _admission(Limit(rate=1e6, burst=1e6, in_flight=2))
    assert admission.enter("A") is None and admission.enter("A") is None
    turned = admission.enter("A")
    assert turned is not None and turned.outcome == "THROTTLED" and "2 exchanges in flight" in turned.message
    assert admission.enter("B") is None  # another sender is not held back
    admission.leave("A")
    assert admission.enter("A") is None
    assert admission.in_flight_of("A") == 2 and admission.in_flight == 3


def test_a_full_core_sheds_with_unavailable_and_takes_calls_again_once_there_is_room() -> None:
    admission, _ = _admission(Limit(rate=1e6, burst=1e6, in_flight=100), max_in_flight=3)
    for sender in "ABC":
        assert admission.enter(sender) is None
    turned = admission.enter("D")
    assert turned is not None and (turned.code, turned.outcome) == (grpc.StatusCode.UNAVAILABLE, "SHED")
    assert turned.retry_after_ms > 0 and f"retry after {turned.retry_after_ms} ms" in turned.message
    admission.leave("B")
    assert admission.enter("D") is None
    assert admission.peak_in_flight == 3


def test_idle_waits_for_the_last_exchange_to_leave() -> None:
    async def scenario() -> None:
        admission, _ = _admission(DEFAULT_LIMIT)
        assert admission.enter("A") is None
        assert not await admission.idle(0.05)
        asyncio.get_running_loop().call_later(0.05, admission.leave, "A")
        assert await admission.idle(5.0)

    asyncio.run(scenario())


def test_the_most_specific_limit_wins() -> None:
    mine, theirs = Limit(rate=1.0), Limit(rate=2.0)
    policy = AdmissionPolicy(categories={"cpas": theirs}, agencies={"CPAS-1": mine})
    assert policy.limit_for("CPAS-1", "cpas") is mine
    assert policy.limit_for("CPAS-2", "cpas") is theirs
    assert policy.limit_for("ONSS", "primary") is DEFAULT_LIMIT
    assert policy.limit_for("X", None) is DEFAULT_LIMIT


def test_the_access_points_have_more_room_than_one_agency_by_default() -> None:
    policy = AdmissionPolicy()
    portal, agency = policy.limit_for("PORTAL", "portal"), policy.limit_for("CPAS-1", "cpas")
    assert portal.rate > agency.rate and portal.in_flight > agency.in_flight
    assert set(DEFAULT_CATEGORY_LIMITS) == {"portal", "batch_channel"}


def test_admission_asks_the_category_once_per_sender() -> None:
    asked: list[str] = []

    def category_of(agency: str) -> str | None:
        asked.append(agency)
        return "slow"

    policy = AdmissionPolicy(categories={"slow": Limit(rate=1.0, burst=1.0)})
    admission = Admission(policy, category_of=category_of, clock=Clock())
    assert admission.enter("A") is None and admission.enter("A") is not None
    assert asked == ["A"]


def test_a_policy_file_fills_what_it_does_not_name_from_its_default(tmp_path: Path) -> None:
    path = tmp_path / "limits.json"
    data = {"default": {"rate": 100}, "categories": {"cpas": {"burst": 7}}, "agencies": {"ONSS": {"in_flight": 3}}}
    path.write_text(json.dumps(data))
    policy = AdmissionPolicy.load(path)
    assert policy.default == Limit(rate=100.0)
    assert policy.categories["cpas"] == Limit(rate=100.0, burst=7.0)
    assert policy.categories["portal"] == DEFAULT_CATEGORY_LIMITS["portal"]  # the built-in ones stay
    assert policy.agencies["ONSS"] == Limit(rate=100.0, in_flight=3)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ([], r"\$: expected an object"),
        ({"defaults": {}}, r"\$: unknown key 'defaults'"),
        ({"default": {"rate": 0}}, r"\$\.default\.rate: expected calls per second > 0"),
        ({"default": {"rate": "fast"}}, r"\$\.default\.rate: expected a number"),
        ({"default": {"burst": 0.5}}, r"\$\.default\.burst: expected a number of calls >= 1"),
        ({"agencies": {"ONSS": {"in_flight": 1.5}}}, r"\$\.agencies\.ONSS\.in_flight: expected a number"),
        ({"agencies": {"ONSS": {"in_flight": 0}}}, r"\$\.agencies\.ONSS\.in_flight: expected an integer >= 1"),
        ({"categories": {"cpas": {"rate": True}}}, r"\$\.categories\.cpas\.rate: expected a number"),
        ({"categories": {"cpas": {"speed": 1}}}, r"\$\.categories\.cpas: unknown key 'speed'"),
    ],
)
def test_a_bad_policy_is_refused_naming_the_field(data: Any, where: str) -> None:
    with pytest.raises(AdmissionConfigError, match=where):
        AdmissionPolicy.from_mapping(data, "limits.json: $")


def test_a_policy_file_that_is_no_json_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "limits.json"
    path.write_text("{rate: 1")
    with pytest.raises(AdmissionConfigError, match=r"limits\.json: expected a JSON admission policy"):
        AdmissionPolicy.load(path)


def test_retry_advice_is_read_from_trailing_metadata() -> None:
    assert retry_after_of(((RETRY_AFTER_KEY, "250"), ("audit-index", "3"))) == 250
    assert retry_after_of((("audit-index", "3"),)) is None and retry_after_of(None) is None


# --- the core over gRPC -----------------------------------------------------------------------


class CountingHost(_Host):
    """The test agency host (tests/test_core_server.py), also counting forwards as they arrive."""

    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.arrived = 0

    async def Deliver(self, forward: pb.Forward, context: Any) -> pb.AgencyReply:
        self.arrived += 1
        return await super().Deliver(forward, context)


@dataclass
class Live:
    state: Path
    core: RunningCore
    host: CountingHost

    def channel(self, identity: str) -> Any:
        """A channel to the core as `identity` (issued on first use)."""
        NetworkPki.open(self.state / "pki").issue(identity)
        return grpc.aio.secure_channel(self.core.address, channel_credentials(self.state / "pki", identity))


@asynccontextmanager
async def live_core(tmp_path: Path, *, delay: float = 0.0, grace: float = 0.5, **config: Any) -> AsyncIterator[Live]:
    """The small network's core on 127.0.0.1 in this process, with `config`, before one agency host."""
    state = _state(tmp_path)
    host = CountingHost(delay)
    host_server, port = await _start_host(state / "pki", host)
    _hosts_json(state, port)
    core = await start_core(CoreConfig(state=state, **config))
    try:
        yield Live(state, core, host)
    finally:
        await core.stop(grace=grace)
        await host_server.stop(0)


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """The error `call` ends with (the test fails if it succeeds)."""
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call
    return error.value


async def exchange(channel: Any, env: pb.Envelope, timeout: float = 10.0) -> pb.ExchangeReply:
    stub = services_pb2_grpc.CrossroadsStub(channel)  # type: ignore[no-untyped-call]
    reply: pb.ExchangeReply = await stub.Exchange(env, timeout=timeout)
    return reply


def records(state: Path) -> list[AuditRecord]:
    """Every audit record of the state folder, in order (the core must be stopped)."""
    with AuditLog.open(state, read_only=True) as log:
        return [AuditRecord.from_leaf(leaf) for _, leaf in log.iter_leaves()]


def test_the_core_throttles_a_sender_over_its_rate_with_retry_advice_and_an_audit_record(tmp_path: Path) -> None:
    limits = AdmissionPolicy(agencies={"CPAS-1": Limit(rate=0.5, burst=2.0)})  # two at once, then one every 2 s

    async def scenario() -> Path:
        async with live_core(tmp_path, limits=limits) as net, net.channel("CPAS-1") as channel:
            for i in range(2):
                assert (await exchange(channel, consultation(message_id=f"ok-{i}"))).outcome == pb.DELIVERED
            error = await refused(exchange(channel, consultation(message_id="over")))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            advice = retry_after_of(error.trailing_metadata())
            assert advice is not None and 1_000 < advice <= 2_000
            assert f"retry after {advice} ms" in (error.details() or "")
            assert audit_index_of(error.trailing_metadata()) == 2 and len(net.host.got) == 2  # never forwarded
            async with net.channel("PORTAL") as other:  # another sender is not held back
                assert (await exchange(other, dmfa(BOB, message_id="d-9"))).outcome == pb.DELIVERED
            return net.state

    state = asyncio.run(scenario())
    record = records(state)[2]
    assert (record.outcome, record.sender, record.message_id) == ("THROTTLED", "CPAS-1", "over")
    assert "rate limit" in record.detail


def test_a_full_core_answers_unavailable_at_once_and_audits_it(tmp_path: Path) -> None:
    async def scenario() -> Path:
        async with live_core(tmp_path, delay=1.0, max_in_flight=2) as net, net.channel("CPAS-1") as channel:
            slow = [asyncio.create_task(exchange(channel, consultation(message_id=f"s-{i}"))) for i in (1, 2)]
            while net.host.arrived < 2:
                await asyncio.sleep(0.01)
            loop = asyncio.get_running_loop()
            started = loop.time()
            error = await refused(exchange(channel, consultation(message_id="shed")))
            assert loop.time() - started < net.host.delay  # answered, not queued behind the two in flight
            assert error.code() == grpc.StatusCode.UNAVAILABLE and "overloaded" in (error.details() or "")
            assert retry_after_of(error.trailing_metadata()) is not None
            assert audit_index_of(error.trailing_metadata()) == 0
            assert [r.outcome for r in await asyncio.gather(*slow)] == [pb.DELIVERED] * 2
            return net.state

    state = asyncio.run(scenario())
    first = records(state)[0]
    assert (first.outcome, first.message_id) == ("SHED", "shed")
    assert sorted(r.outcome for r in records(state)) == ["DELIVERED", "DELIVERED", "SHED"]
