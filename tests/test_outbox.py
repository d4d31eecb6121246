"""The outbox keeps what is owed to agencies that are down, across restarts, and redelivers it in order."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from crossroads.domain import AgencyId
from crossroads.outbox import Outbox, OutboxCounts, Parcel, Redelivery

ONSS, ONEM = AgencyId("ONSS"), AgencyId("ONEM")
T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)


def _parcels(agency: AgencyId, n: int, start: int = 0) -> list[Parcel]:
    return [Parcel(agency, f"m-{i}", f"forward {agency} {i}".encode()) for i in range(start, start + n)]


def _open(path: Path) -> Outbox:
    return Outbox.open(path, clock=lambda: T0)


def test_put_is_durable_across_reopen_and_keeps_order(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite"

    async def put_then_close() -> list[int]:
        outbox = _open(path)
        # concurrent puts share group commits, and still keep their order of arrival
        seqs = await asyncio.gather(
            outbox.put(_parcels(ONSS, 3)), outbox.put(_parcels(ONEM, 2)), outbox.put(_parcels(ONSS, 2, 3))
        )
        await outbox.aclose()
        return [s for batch in seqs for s in batch]

    seqs = asyncio.run(put_then_close())
    assert seqs == sorted(seqs) and len(set(seqs)) == 7
    outbox = _open(path)
    assert [p.message_id for p in outbox.pending(ONSS)] == ["m-0", "m-1", "m-2", "m-3", "m-4"]
    assert [p.forward for p in outbox.pending(ONEM)] == [b"forward ONEM 0", b"forward ONEM 1"]
    assert outbox.counts() == OutboxCounts(pending=7, delivered=0)
    assert outbox.has_backlog(ONSS) and not outbox.has_backlog("RVA")
    assert outbox.pending(ONSS)[0].accepted == T0.isoformat()
    asyncio.run(outbox.aclose())


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
        self.got.setdefault(agency, []).append(data)


async def _until(condition: object, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


def test_redelivery_waits_for_the_agency_then_delivers_everything_in_order(tmp_path: Path) -> None:
    async def scenario() -> _FlakyAgencies:
        outbox = _open(tmp_path / "outbox.sqlite")
        agencies = _FlakyAgencies(down={ONSS})
        await outbox.put(_parcels(ONSS, 30) + _parcels(ONEM, 5))
        redelivery = Redelivery(outbox, agencies.deliver, initial=0.01, maximum=0.05, batch=7)
        redelivery.start()
        await _until(lambda: len(agencies.got.get(ONEM, [])) == 5 and agencies.refused >= 3)
        assert ONSS not in agencies.got and outbox.counts() == OutboxCounts(30, 5)
        agencies.down.clear()  # ONSS is back
        await _until(lambda: outbox.counts().pending == 0)
        await redelivery.stop()
        await outbox.aclose()
        return agencies

    agencies = asyncio.run(scenario())
    assert agencies.got[ONSS] == [p.forward for p in _parcels(ONSS, 30)]
    assert agencies.got[ONEM] == [p.forward for p in _parcels(ONEM, 5)]
    again = _open(tmp_path / "outbox.sqlite")
    items = again.items()
    assert again.counts() == OutboxCounts(0, 35) and not again.has_backlog(ONSS)
    assert items[0].attempts >= 2 and "ONSS is down" in items[0].last_error
    asyncio.run(again.aclose())


def test_items_survive_a_stop_before_delivery(tmp_path: Path) -> None:
    async def stop_while_down() -> None:
        outbox = _open(tmp_path / "outbox.sqlite")
        agencies = _FlakyAgencies(down={ONSS})
        await outbox.put(_parcels(ONSS, 4))
        redelivery = Redelivery(outbox, agencies.deliver, initial=0.01, maximum=0.02)
        redelivery.start()
        await _until(lambda: agencies.refused >= 2)
        await redelivery.stop()
        await outbox.aclose()

    asyncio.run(stop_while_down())
    outbox = _open(tmp_path / "outbox.sqlite")
    assert [p.message_id for p in outbox.pending(ONSS)] == ["m-0", "m-1", "m-2", "m-3"]
    asyncio.run(outbox.aclose())
