"""The person part of the reference directory in SQLite: bulk load, lookups, integrations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from crossroads.directory import DirectoryError, DirectoryStore
from crossroads.domain import AgencyId, DirectoryEntry, QualityCode, SectorCode
from crossroads.identifiers import Niss, make_niss

ALICE = make_niss(dt.date(1985, 3, 14), 123)
BOB = make_niss(dt.date(2003, 6, 2), 44)
NOBODY = make_niss(dt.date(1990, 1, 1), 1)


def _entry(niss: Niss, agency: str, start: dt.date, end: dt.date | None = None, sector: int = 17) -> DirectoryEntry:
    return DirectoryEntry(niss, SectorCode(sector), AgencyId(agency), QualityCode(1), 1, start, end)


ROWS = [
    _entry(ALICE, "CPAS-1", dt.date(2020, 1, 1)),
    _entry(BOB, "MUT-1", dt.date(2021, 1, 1), sector=3),
    _entry(ALICE, "MUT-2", dt.date(2010, 1, 1), dt.date(2019, 12, 31), sector=3),
]


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStore:
    s = DirectoryStore.create(tmp_path / "directory.sqlite")
    s.bulk_load(ROWS)
    return s


def test_files_come_back_as_written(store: DirectoryStore) -> None:
    assert store.files_of(ALICE) == [ROWS[0], ROWS[2]]
    assert store.files_of(NOBODY) == []
    assert store.files_of_many([BOB, ALICE, BOB]) == [ROWS[1], ROWS[0], ROWS[2]]
    assert store.count() == 3


def test_rows_survive_reopening(store: DirectoryStore, tmp_path: Path) -> None:
    store.close()
    again = DirectoryStore.open(tmp_path / "directory.sqlite")
    assert again.files_of(ALICE) == [ROWS[0], ROWS[2]] and again.count() == 3


def test_integrate_opens_a_file_seen_at_once_even_after_a_cached_read(store: DirectoryStore) -> None:
    assert store.files_of_many([NOBODY]) == []  # now cached as "no files"
    entry = _entry(NOBODY, "CPAS-2", dt.date(2026, 11, 1))
    assert store.integrate(entry) is True
    assert store.files_of_many([NOBODY]) == [entry]
    assert store.integrate(entry) is False  # a resent integration writes nothing
    assert store.count() == 4


def test_deintegrate_closes_the_open_file(store: DirectoryStore) -> None:
    store.files_of(ALICE)
    store.deintegrate(_entry(ALICE, "CPAS-1", dt.date(2020, 1, 1), dt.date(2026, 11, 30)))
    closed = store.files_of(ALICE)[0]
    assert closed.end == dt.date(2026, 11, 30)
    assert not closed.open_on(dt.date(2026, 12, 1)) and closed.open_on(dt.date(2026, 11, 30))


def test_deintegrate_refuses_a_file_that_is_not_open(store: DirectoryStore) -> None:
    with pytest.raises(DirectoryError, match="no open file"):
        store.deintegrate(_entry(ALICE, "CPAS-9", dt.date(2020, 1, 1), dt.date(2026, 11, 30)))
    with pytest.raises(DirectoryError, match="end date"):
        store.deintegrate(_entry(ALICE, "CPAS-1", dt.date(2020, 1, 1)))


def test_a_small_cache_still_answers_correctly(tmp_path: Path) -> None:
    store = DirectoryStore.create(tmp_path / "d.sqlite", cache_size=2)
    store.bulk_load(ROWS)
    for _ in range(3):
        assert store.files_of_many([ALICE, BOB, NOBODY]) == [ROWS[0], ROWS[2], ROWS[1]]


def _population(n: int, seed: int) -> list[DirectoryEntry]:
    rng = np.random.default_rng(seed)
    days = rng.integers(0, 20_000, size=n)
    seqs = rng.integers(1, 999, size=n)
    born = dt.date(1940, 1, 1)
    return [
        _entry(make_niss(born + dt.timedelta(days=int(d)), int(s)), f"CPAS-{int(s) % 50}", dt.date(2020, 1, 1))
        for d, s in zip(days, seqs, strict=True)
    ]


def test_bulk_load_of_many_rows_is_all_found(tmp_path: Path) -> None:
    rows = _population(20_000, seed=7)
    store = DirectoryStore.create(tmp_path / "d.sqlite")
    assert store.bulk_load(rows) == 20_000
    assert store.count() == 20_000
    sample = rows[::997]
    for row in sample:
        assert row in store.files_of(row.niss)
    many = store.files_of_many([r.niss for r in sample])
    assert set(sample) <= set(many)
