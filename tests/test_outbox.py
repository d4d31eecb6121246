"""The outbox keeps what is owed to agencies that are down, across restarts, and redelivers it in order.

Parcels enter the outbox only with their exchange's audit record (crossroads.journal); here
they are written with `journal.write_entries`, as the audit writer does.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from collections.abc import Callable
from pathlib import Path

from crossroads import journal
from crossroads.domain import AgencyId
from crossroads.journal import JournalEntry
from crossroads.outbox import Outbox, OutboxCounts, OutboxItem, Parcel, Redelivery, read_items, replay_dead
from protos import messages_pb2 as pb

ONSS, ONEM = AgencyId("ONSS"), AgencyId("ONEM")
T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _commit(path: Path, parcels: list[Parcel], first_index: int = 0) -> None:
    """Commit each parcel with an audit record of its own, as the audit writer would."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(journal.SCHEMA)
    entries = [(first_index + k, JournalEntry("PORTAL", p.message_id, None, (p,))) for k, p in enumerate(parcels)]
    with conn:
        journal.write_entries(conn, entries, T0.isoformat())
    conn.close()


def _parcels(outbox: Outbox, agency: AgencyId, n: int, start: int = 0) -> list[Parcel]:
    """`n` parcels for `agency`, each with the ticket the outbox gives it (as the core takes them)."""
    out = []
    for i in range(start, start + n):
        forward = pb.Forward(agency=agency, envelope=f"{agency} {i}".encode()).SerializeToString()
        out.append(Parcel(agency, f"m-{i}", forward, outbox.reserve(agency)))
    return out


def _open(path: Path, clock: Callable[[], dt.datetime] = lambda: T0, dead_after: float = 3600.0) -> Outbox:
    return Outbox.open(path, clock=clock, dead_after=dead_after)


def test_parcels_are_held_across_reopen_in_ticket_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    outbox = _open(path)
    onss_first, onem, onss_later = _parcels(outbox, ONSS, 3), _parcels(outbox, ONEM, 2), _parcels(outbox, ONSS, 2, 3)
    assert outbox.has_backlog(ONSS)  # reserved: what comes next must queue behind
    # committed out of the order the tickets were taken: delivery follows the tickets
    _commit(path, onss_later + onem + onss_first)
    outbox.settle(onss_first + onem + onss_later, committed=True)
    asyncio.run(outbox.aclose())
    again = _open(path)
    assert [p.message_id for p in again.pending(ONSS)] == ["m-0", "m-1", "m-2", "m-3", "m-4"]
    assert [p.message_id for p in again.pending(ONEM)] == ["m-0", "m-1"]
    assert again.counts() == OutboxCounts(pending=7, delivered=0, dead=0)
    assert again.has_backlog(ONSS) and not again.has_backlog("RVA")
    assert again.reserve(ONEM) > max(p.ticket for p in onss_later)  # tickets go on after a restart
    asyncio.run(again.aclose())


def test_a_parcel_never_committed_holds_nothing_back(tmp_path: Path) -> None:
    outbox = _open(tmp_path / "audit.sqlite")
    parcels = _parcels(outbox, ONSS, 2)
    outbox.settle(parcels, committed=False)
    assert not outbox.has_backlog(ONSS) and outbox.counts().pending == 0
    asyncio.run(outbox.aclose())


def test_a_redelivery_carries_the_audit_index() -> None:
    forward = pb.Forward(agency="ONSS", sender="PORTAL", envelope=b"x" * 300)
    for index in (0, 1, 127, 128, 300_000, 2**40):
        item = journal.Parcel(ONSS, "m", forward.SerializeToString())
        held = _item(item, index)
        expected = pb.Forward()
        expected.CopyFrom(forward)
        expected.audit_index = index
        assert pb.Forward.FromString(held.with_index()) == expected


def _item(parcel: Parcel, index: int) -> OutboxItem:
    return OutboxItem(1, 1, parcel.agency, parcel.message_id, parcel.forward, index, T0.isoformat(), 0, "", None, None)


class _FlakyAgencies:
    """Agencies that refuse deliveries while `down`, and record what they got in order."""

    def __init__(self, down: set[str]) -> None:
        self.down = down
        self.got: dict[str, list[bytes]] = {}
        self.refused = 0

    async def deliver(self, agency: AgencyId, data: bytes) -> None:
        await asyncio.sleep(0)
        if agency in self.down:
            self.refused += 1
            raise ConnectionError(f"{agency} is down")
        self.got.setdefault(agency, []).append(pb.Forward.FromString(data).envelope)


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_redelivery_waits_for_the_agency_then_delivers_everything_in_order(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"

    async def scenario() -> _FlakyAgencies:
        outbox = _open(path)
        parcels = _parcels(outbox, ONSS, 30) + _parcels(outbox, ONEM, 5)
        _commit(path, parcels)
        outbox.settle(parcels, committed=True)
        agencies = _FlakyAgencies(down={ONSS})
        redelivery = Redelivery(outbox, agencies.deliver, initial=0.01, maximum=0.05, batch=7)
        redelivery.start()
        await _until(lambda: len(agencies.got.get(ONEM, [])) == 5 and agencies.refused >= 3)
        assert ONSS not in agencies.got and outbox.counts() == OutboxCounts(30, 5, 0)
        agencies.down.clear()  # ONSS is back
        await _until(lambda: outbox.counts().pending == 0)
        await redelivery.stop()
        await outbox.aclose()
        return agencies

    agencies = asyncio.run(scenario())
    assert agencies.got[ONSS] == [f"ONSS {i}".encode() for i in range(30)]
    assert agencies.got[ONEM] == [f"ONEM {i}".encode() for i in range(5)]
    again = _open(path)
    items = [i for i in again.items() if i.agency == ONSS]
    assert again.counts() == OutboxCounts(0, 35, 0) and not again.has_backlog(ONSS)
    assert items[0].attempts >= 2 and "ONSS is down" in items[0].last_error
    asyncio.run(again.aclose())


def test_items_survive_a_stop_before_delivery(tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"

    async def stop_while_down() -> None:
        outbox = _open(path)
        parcels = _parcels(outbox, ONSS, 4)
        _commit(path, parcels)
        outbox.settle(parcels, committed=True)
        agencies = _FlakyAgencies(down={ONSS})
        redelivery = Redelivery(outbox, agencies.deliver, initial=0.01, maximum=0.02)
        redelivery.start()
        await _until(lambda: agencies.refused >= 2)
        await redelivery.stop()
        await outbox.aclose()

    asyncio.run(stop_while_down())
    assert [p.message_id for p in read_items(path)] == ["m-0", "m-1", "m-2", "m-3"]


def test_undeliverable_items_become_dead_letters_and_a_replay_sends_them(tmp_path: Path) -> None:
    """After `dead_after`, an item is a dead letter: it no longer holds the line; a replay puts it back."""
    path = tmp_path / "audit.sqlite"
    now = [T0]

    async def scenario() -> _FlakyAgencies:
        outbox = _open(path, clock=lambda: now[0], dead_after=60.0)
        old = _parcels(outbox, ONSS, 2)
        _commit(path, old)
        outbox.settle(old, committed=True)
        agencies = _FlakyAgencies(down={ONSS})
        redelivery = Redelivery(outbox, agencies.deliver, initial=0.01, maximum=0.05)
        redelivery.start()
        await _until(lambda: agencies.refused >= 1)
        now[0] = T0 + dt.timedelta(seconds=61)  # both have now been undeliverable too long
        await _until(lambda: outbox.counts().dead == 2)
        assert not outbox.has_backlog(ONSS) and outbox.counts().pending == 0
        agencies.down.clear()
        assert replay_dead(path, agency=ONSS) == 2  # an operator, from another process
        await _until(lambda: outbox.counts() == OutboxCounts(0, 2, 0))  # picked up without a restart
        await redelivery.stop()
        await outbox.aclose()
        return agencies

    agencies = asyncio.run(scenario())
    assert agencies.got[ONSS] == [b"ONSS 0", b"ONSS 1"]
