"""The synthetic world: identifiers, determinism, the catalogue, the files, the spec and answers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from agencies import catalogue as c
from agencies import sectors as s
from agencies.answers import ANSWERED_DATASETS, answer
from agencies.authorizations import CONSULTATION_DATASETS, DECLARANTS
from agencies.columns import day_of, group_offsets
from agencies.population import BIS_SEX_KNOWN, BIS_SEX_UNKNOWN
from agencies.spec import DEFAULT_AGENCY_COUNTS, AgencyCounts, SpecError, WorldSpec, load_world_spec
from agencies.world import World
from crossroads.domain import AgencyId, Condition, Dataset, Reach
from crossroads.identifiers import kbo_problem, make_niss, niss_problem

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scenarios" / "demo.yaml"
NATIONAL = ROOT / "scenarios" / "national.yaml"
SMALL = WorldSpec(seed=11, persons=6_000, employers=400)


@pytest.fixture(scope="module")
def demo() -> World:
    return World.build(load_world_spec(DEMO))


def _open_today(world: World) -> np.ndarray:
    today = (world.spec.as_of - dt.date(1970, 1, 1)).days
    return (world.rows.start <= today) & (world.rows.end >= today)


# ---------------------------------------------------------------- identifiers
def test_every_niss_is_valid_and_is_what_make_niss_gives(demo: World) -> None:
    p = demo.persons
    for i in range(demo.person_count):
        niss = demo.niss(i)
        bis = int(p.bis[i])
        expected = make_niss(
            day_of(int(p.birth[i])), int(p.sequence[i]), bis=bis != 0, sex_known=bis != BIS_SEX_UNKNOWN
        )
        assert niss == expected
        assert niss_problem(niss) is None
        if bis != BIS_SEX_UNKNOWN:
            assert int(niss[6:9]) % 2 == (1 if p.male[i] else 0)  # odd for men, even for women


def test_niss_numbers_are_unique_and_looked_up_both_ways(demo: World) -> None:
    assert np.all(np.diff(demo.persons.niss) > 0)
    rng = np.random.default_rng(3)
    for i in rng.integers(0, demo.person_count, 500).tolist():
        assert demo.person_index(demo.niss(i)) == i
    assert demo.person_index("12345") is None
    assert demo.person_index("abcdefghijk") is None
    present = set(demo.persons.niss.tolist())
    absent = next(n for n in (make_niss(dt.date(1950, 1, 1), q) for q in range(1, 999)) if int(n) not in present)
    assert demo.person_index(absent) is None  # a well-formed NISS of nobody: not a neighbour's index


def test_the_world_has_post_2000_births_and_both_kinds_of_bis_numbers(demo: World) -> None:
    born_2000_or_later = demo.persons.birth >= (dt.date(2000, 1, 1) - dt.date(1970, 1, 1)).days
    assert 0.1 < born_2000_or_later.mean() < 0.5  # both check-digit rules are exercised
    kinds = Counter(demo.persons.bis.tolist())
    assert kinds[BIS_SEX_KNOWN] > 0 and kinds[BIS_SEX_UNKNOWN] > 0
    assert 0.01 < (kinds[BIS_SEX_KNOWN] + kinds[BIS_SEX_UNKNOWN]) / demo.person_count < 0.03
    months = {int(demo.niss(i)[2:4]) for i in np.flatnonzero(demo.persons.bis).tolist()}
    assert all(21 <= m <= 32 or 41 <= m <= 52 for m in months)


def test_every_kbo_is_valid_unique_and_looked_up(demo: World) -> None:
    numbers = [demo.kbo(j) for j in range(demo.employer_count)]
    assert all(kbo_problem(k) is None for k in numbers)
    assert len(set(numbers)) == demo.employer_count
    assert all(demo.employer_index(k) == j for j, k in enumerate(numbers))
    assert demo.employer_index(numbers[0][:8] + "00") is None  # wrong check digits


def test_identifiers_at_scale_are_valid_and_unique() -> None:
    world = World.build(WorldSpec(seed=5, persons=1_000_000, employers=20_000))
    assert np.unique(world.persons.niss).size == world.person_count
    rng = np.random.default_rng(9)
    for i in rng.integers(0, world.person_count, 3_000).tolist():
        assert niss_problem(world.niss(i)) is None
    for j in rng.integers(0, world.employer_count, 1_000).tolist():
        assert kbo_problem(world.kbo(j)) is None


# ---------------------------------------------------------------- employment
def test_group_offsets_bound_each_groups_rows_once_sorted_by_group() -> None:
    group = np.array([2, 0, 2, 2, 4, 0])
    offsets = group_offsets(group, 5)
    assert offsets.tolist() == [0, 2, 2, 5, 5, 6]  # group 1 and 3: none; 4: the last row
    ordered = np.sort(group)
    assert all((ordered[offsets[g] : offsets[g + 1]] == g).all() for g in range(5))


def test_workers_of_and_employer_of_agree(demo: World) -> None:
    seen = 0
    for j in range(demo.employer_count):
        workers = demo.workers_of(j)
        assert workers.size >= 1  # enough workers: every employer has one
        assert all(demo.employer_of(int(i)) == j for i in workers)
        seen += workers.size
    assert seen == int((demo.employment.employer >= 0).sum())
    employed_ages = demo.ages[demo.employment.employer >= 0]
    assert employed_ages.min() >= 18 and employed_ages.max() <= 66


# ---------------------------------------------------------------- determinism
def _arrays(world: World) -> list[np.ndarray]:
    parts = (world.persons, world.employers, world.employment, world.rows)
    return [getattr(p, f.name) for p in parts for f in dataclasses.fields(p)]


def test_same_spec_gives_the_same_world() -> None:
    one, two = World.build(SMALL), World.build(SMALL)
    assert all(np.array_equal(x, y) for x, y in zip(_arrays(one), _arrays(two), strict=True))
    assert one.knowledge == two.knowledge
    assert one.agencies == two.agencies


def test_another_seed_gives_another_world() -> None:
    one, two = World.build(SMALL), World.build(dataclasses.replace(SMALL, seed=12))
    assert not np.array_equal(one.persons.niss, two.persons.niss)
    assert not np.array_equal(one.rows.agency, two.rows.agency)


# ---------------------------------------------------------------- the catalogue and knowledge
def test_about_three_thousand_agencies_in_their_categories(demo: World) -> None:
    assert len(demo.agencies) == 3_000 == len(c.PRIMARY) + DEFAULT_AGENCY_COUNTS.total()
    assert len({a.id for a in demo.agencies}) == len(demo.agencies)
    by_category = Counter(a.category for a in demo.agencies)
    assert by_category[c.CAT_CPAS] == 581
    cpas = [a for a in demo.agencies if a.category == c.CAT_CPAS]
    assert all(a.hub == c.SPPIS and a.sector == 17 for a in cpas)
    assert cpas[41].id == "CPAS-0042"
    for category, hub in ((c.CAT_HEALTH_FUND, c.CIN), (c.CAT_FAMILY_FUND, c.FAMI), (c.CAT_PAYMENT_BODY, c.ONEM)):
        members = [a for a in demo.agencies if a.category == category]
        assert members and all(a.hub == hub for a in members)
    hubs = {a.hub for a in demo.agencies if a.hub is not None}
    assert hubs <= {a.id for a in c.PRIMARY}


def test_counts_come_from_the_spec() -> None:
    counts = AgencyCounts(cpas=3, health_insurance_funds=2, local_bodies=0)
    world = World.build(WorldSpec(seed=1, persons=2_000, employers=50, agencies=counts))
    assert len(world.agencies) == len(c.PRIMARY) + counts.total()
    assert [a.id for a in world.agencies if a.category == c.CAT_CPAS] == ["CPAS-0001", "CPAS-0002", "CPAS-0003"]


def test_every_deliberation_names_existing_requesters_and_sources(demo: World) -> None:
    k = demo.knowledge
    assert len({d.ref for d in k.deliberations}) == len(k.deliberations)
    for d in k.deliberations:
        assert d.dataset in k.sources, d
        assert d.purposes, d
        for category in d.requesters:
            assert k.by_category.get(category), f"{d.ref}: nobody of category {category}"
    for source in k.sources.values():
        assert source.source is None or source.source in k.agencies
        assert all(k.by_category.get(cat) for cat in source.declarants)
    assert {k.sources[Dataset(d)].declarants for d in ("dimona", "dmfa", "drs_sickness")} == {DECLARANTS}


def test_secondary_networks_and_cpas_ask_only_about_their_own_files(demo: World) -> None:
    own = {c.CAT_CPAS, c.CAT_HEALTH_FUND, c.CAT_FAMILY_FUND, c.CAT_PAYMENT_BODY}
    consultations = [d for d in demo.knowledge.deliberations if d.dataset in CONSULTATION_DATASETS]
    for d in consultations:
        if d.requesters & own:
            assert d.condition is Condition.OWN_FILES, d


def test_family_allowance_mutation_rules_follow_the_circulars(demo: World) -> None:
    rules = {(r.change, r.reach, r.head_of_household_only) for r in demo.knowledge.mutation_rules}
    family = {r.sector for r in demo.knowledge.mutation_rules}
    assert family == {s.SECTOR_FAMILY_ALLOWANCES}
    assert rules == {
        ("identity", Reach.ALL_KNOWN, False),
        ("household", Reach.LAST_COMPETENT, True),
        ("*", Reach.LAST_COMPETENT, False),
    }


# ---------------------------------------------------------------- the directory
def test_every_person_has_exactly_one_open_health_insurance_file(demo: World) -> None:
    health = np.array([a.category == c.CAT_HEALTH_FUND for a in demo.agencies])
    rows = _open_today(demo) & health[demo.rows.agency]
    assert np.array_equal(np.bincount(demo.rows.person[rows], minlength=demo.person_count), np.ones(demo.person_count))


def test_employees_and_only_they_have_an_open_file_at_onss(demo: World) -> None:
    onss = demo.agency_index[c.ONSS]
    rows = _open_today(demo) & (demo.rows.agency == onss)
    known = np.zeros(demo.person_count, dtype=bool)
    known[demo.rows.person[rows]] = True
    assert np.array_equal(known, demo.employment.employer >= 0)


@pytest.mark.parametrize("category", [c.CAT_CPAS, c.CAT_HEALTH_FUND, c.CAT_FAMILY_FUND, c.CAT_PAYMENT_BODY])
def test_every_cpas_and_fund_has_persons_in_its_open_files(demo: World, category: str) -> None:
    members = {demo.agency_index[a.id] for a in demo.agencies if a.category == category}
    holding = set(demo.rows.agency[_open_today(demo)].tolist())
    assert members <= holding


def test_cpas_files_are_those_of_the_municipality_of_residence(demo: World) -> None:
    first = demo.agency_index[AgencyId("CPAS-0001")]
    rows = np.flatnonzero((demo.rows.agency >= first) & (demo.rows.agency < first + 581))
    assert rows.size
    residence = demo.persons.municipality[demo.rows.person[rows]]
    assert np.array_equal(demo.rows.agency[rows] - first, residence)


def test_files_are_well_formed(demo: World) -> None:
    rows = demo.rows
    assert np.all(rows.start <= rows.end)
    assert np.all(np.diff(rows.person) >= 0)
    assert rows.offsets[-1] == demo.directory_row_count
    quality = Counter(rows.quality.tolist())
    assert quality[902] > 0 and quality[int(s.Q_HEAD_OF_HOUSEHOLD)] > 0
    closed = rows.end < (demo.spec.as_of - dt.date(1970, 1, 1)).days
    assert 0.02 < closed.mean() < 0.3


def test_files_of_gives_the_rows_of_that_person(demo: World) -> None:
    for i in (0, 17, demo.person_count // 2, demo.person_count - 1):
        niss = demo.niss(i)
        files = demo.files_of(niss)
        assert files and all(f.niss == niss for f in files)
        assert all(f.sector == demo.knowledge.agencies[f.agency].sector for f in files)
        assert all(f.end is None or f.start <= f.end for f in files)
    assert demo.files_of("00000000000") == []


def test_iter_directory_rows_gives_every_row_once(demo: World) -> None:
    batches = list(demo.iter_directory_rows(batch=10_000))
    assert all(len(b) <= 10_000 for b in batches)
    everything = [e for b in batches for e in b]
    assert len(everything) == demo.directory_row_count
    i = demo.person_count // 3
    r = demo.rows.rows_of(i)
    assert everything[r.start : r.stop] == demo.files_of(demo.niss(i))
    with pytest.raises(ValueError, match="batch"):
        next(demo.iter_directory_rows(batch=0))


# ---------------------------------------------------------------- the spec
def _spec(**world: object) -> WorldSpec:
    return WorldSpec.from_mapping({"seed": 1, "persons": 100, "employers": 10, **world}, "x.yaml: world")


def test_the_scenario_files_give_the_demo_and_national_worlds() -> None:
    demo, national = load_world_spec(DEMO), load_world_spec(NATIONAL)
    assert (demo.persons, demo.employers) == (30_000, 2_000)
    assert (national.persons, national.employers) == (11_000_000, 220_000)
    assert demo.agencies == national.agencies == DEFAULT_AGENCY_COUNTS


def test_spec_fills_defaults_and_reads_dates() -> None:
    spec = _spec(as_of="2025-01-31", agencies={"cpas": 7})
    assert spec.as_of == dt.date(2025, 1, 31)
    assert spec.agencies.cpas == 7 and spec.agencies.local_bodies == DEFAULT_AGENCY_COUNTS.local_bodies
    assert _spec(as_of=dt.date(2030, 5, 1)).as_of == dt.date(2030, 5, 1)


@pytest.mark.parametrize(
    ("world", "where", "expected"),
    [
        ({"persns": 5}, "x.yaml: world.persns", "unknown key"),
        ({"persons": "many"}, "x.yaml: world.persons", "expected an integer"),
        ({"persons": True}, "x.yaml: world.persons", "expected an integer"),
        ({"persons": 0}, "x.yaml: world.persons", "expected an integer 1.."),
        ({"seed": -1}, "x.yaml: world.seed", "expected an integer 0.."),
        ({"employed_share": 1.5}, "x.yaml: world.employed_share", "between 0 and 1"),
        ({"bis_share": "low"}, "x.yaml: world.bis_share", "between 0 and 1"),
        ({"as_of": "yesterday"}, "x.yaml: world.as_of", "ISO date"),
        ({"as_of": "1999-12-31"}, "x.yaml: world.as_of", "ISO date"),
        ({"agencies": {"cpas": -3}}, "x.yaml: world.agencies.cpas", "expected an integer 1.."),
        ({"agencies": {"local_bodies": -1}}, "x.yaml: world.agencies.local_bodies", "expected an integer 0.."),
        ({"agencies": {"cpas": 2.5}}, "x.yaml: world.agencies.cpas", "got float"),
        ({"agencies": {"banks": 3}}, "x.yaml: world.agencies.banks", "unknown agency category"),
        ({"agencies": [1, 2]}, "x.yaml: world.agencies", "expected a mapping"),
        ({"employers": 101}, "x.yaml: world.employers", "at most as many employers as persons"),
    ],
)
def test_spec_refuses_what_cannot_be_built(world: dict[str, object], where: str, expected: str) -> None:
    with pytest.raises(SpecError) as caught:
        _spec(**world)
    assert str(caught.value).startswith(where + ":")
    assert expected in str(caught.value)


def test_spec_refuses_a_missing_key_and_a_non_mapping() -> None:
    with pytest.raises(SpecError, match=r"w: world\.employers: missing"):
        WorldSpec.from_mapping({"seed": 1, "persons": 5}, "w: world")
    with pytest.raises(SpecError, match="expected a mapping"):
        WorldSpec.from_mapping([1], "w: world")  # type: ignore[arg-type]


def test_load_world_spec_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("world:\n  seed: 1\n  persons: 10\n  employers: 2\n  agencies: {cpas: -1}\n")
    with pytest.raises(SpecError, match=rf"{path}: world\.agencies\.cpas: expected"):
        load_world_spec(path)
    path.write_text("name: no world here\n")
    with pytest.raises(SpecError, match="top-level 'world:'"):
        load_world_spec(path)
    path.write_text("world: [unclosed\n")
    with pytest.raises(SpecError, match="YAML"):
        load_world_spec(path)


# ---------------------------------------------------------------- answers
def test_every_consultation_dataset_is_answered() -> None:
    assert set(CONSULTATION_DATASETS) == ANSWERED_DATASETS


def test_answers_depend_on_their_arguments_only() -> None:
    niss = make_niss(dt.date(1985, 3, 14), 123)
    args = (7, AgencyId("MUT-0001"), Dataset("health_insurance"), niss)
    assert answer(*args) == answer(*args)
    assert answer(*args)["fund"] == "MUT-0001"
    variants = [answer(seed, AgencyId("ONSS"), Dataset("wages"), niss) for seed in range(20)]
    assert len({tuple(sorted(v.items())) for v in variants}) > 10
    assert answer(7, AgencyId("ONSS"), Dataset("wages"), niss, as_of=dt.date(2026, 2, 1))["quarter"] == "2025Q4"


def test_identity_answers_agree_with_the_niss() -> None:
    for birth, sequence, sex in ((dt.date(1985, 3, 14), 123, "M"), (dt.date(2003, 6, 2), 44, "F")):
        fields = answer(1, AgencyId("NR"), Dataset("identity"), make_niss(birth, sequence))
        assert fields["birth_date"] == birth.isoformat() and fields["sex"] == sex
    bis = answer(1, AgencyId("NR"), Dataset("identity"), make_niss(dt.date(1990, 7, 1), 5, bis=True, sex_known=False))
    assert bis["birth_date"] == "1990-07-01" and bis["sex"] == "U"


def test_no_answer_for_a_malformed_niss_or_an_unknown_dataset() -> None:
    assert answer(1, AgencyId("NR"), Dataset("identity"), "123") == {}
    assert answer(1, AgencyId("ONSS"), Dataset("dimona"), make_niss(dt.date(1985, 3, 14), 1)) == {}
