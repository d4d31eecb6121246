"""`crossroads outbox`: an operator lists what is owed and replays dead letters, from the state folder."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from pathlib import Path

import pytest

from crossroads import journal
from crossroads.domain import AgencyId
from crossroads.journal import JournalEntry, Parcel
from crossroads.outbox import Outbox, outbox_path
from testbed import cli

T0 = dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.UTC)
ONSS, ONEM = AgencyId("ONSS"), AgencyId("ONEM")


def _state_with_a_dead_letter(state: Path) -> None:
    """Three items owed: two to ONSS (the first dead after failing too long), one to ONEM."""
    path = outbox_path(state)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(journal.SCHEMA)
    parcels = [Parcel(ONSS, "m-1", b"f1", 1), Parcel(ONSS, "m-2", b"f2", 2), Parcel(ONEM, "m-3", b"f3", 3)]
    with conn:
        journal.write_entries(
            conn, [(k, JournalEntry("PORTAL", p.message_id, None, (p,))) for k, p in enumerate(parcels)], T0.isoformat()
        )
    conn.close()

    async def fail_the_first() -> None:
        outbox = Outbox.open(path, clock=lambda: T0 + dt.timedelta(hours=2), dead_after=3600)
        (first, _) = outbox.pending(ONSS)
        assert await outbox.note_failure(first, "UNAVAILABLE: connection refused")
        await outbox.aclose()

    asyncio.run(fail_the_first())


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_stats_list_dead_and_replay(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _state_with_a_dead_letter(tmp_path)
    state = ["--state", str(tmp_path)]
    assert cli.main(["outbox", "stats", *state]) == 0
    assert _lines(capsys) == [{"pending": 2, "delivered": 0, "dead": 1}]
    assert cli.main(["outbox", "list", *state]) == 0
    assert [(i["agency"], i["message_id"]) for i in _lines(capsys)] == [("ONEM", "m-3"), ("ONSS", "m-2")]
    assert cli.main(["outbox", "dead", *state]) == 0
    (dead,) = _lines(capsys)
    assert (dead["message_id"], dead["attempts"]) == ("m-1", 1) and "connection refused" in str(dead["last_error"])
    assert cli.main(["outbox", "replay", *state, "--agency", "ONEM"]) == 0  # ONEM has none
    assert _lines(capsys) == [{"replayed": 0}]
    assert cli.main(["outbox", "replay", *state, "--seq", str(dead["seq"])]) == 0
    assert _lines(capsys) == [{"replayed": 1}]
    assert cli.main(["outbox", "list", *state, "--agency", "ONSS"]) == 0
    assert [i["message_id"] for i in _lines(capsys)] == ["m-1", "m-2"]  # back in its place in line


def test_a_folder_without_a_core_store_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["outbox", "stats", "--state", str(tmp_path / "nowhere")]) == 2
    assert "no core store" in capsys.readouterr().err
