"""The world files of a live network's state folder, and the scenario they were built from.

`prepare_world(scenario, state)` makes DIR/knowledge.json (the knowledge part of the directory)
and DIR/directory.sqlite (the person part) hold the world of `scenario`, building them only
when absent or when the scenario (its bytes, hence its seed) or the world builder's code
changed; DIR/world.json records the fingerprint and the agency ids, so a warm start builds
nothing. `scenario_of(state)` goes the other way: the scenario whose world a state folder
holds, and `load_world(state)` rebuilds that world in memory (clients, `crossroads send`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import agencies
from agencies.spec import SpecError, WorldSpec, load_world_spec
from crossroads.atomic_file import write_json_atomic
from crossroads.client import ClientError
from crossroads.directory import DirectoryStore
from crossroads.domain import AgencyId
from crossroads.knowledge_io import dump_knowledge
from scenarios.shipped import shipped_folder

if TYPE_CHECKING:
    from agencies.world import World

__all__ = ["WORLD_FORMAT", "WorldFiles", "fingerprint", "load_world", "prepare_world", "scenario_of"]

WORLD_FORMAT = 1  # bump when the world files' meaning changes, so old state folders are rebuilt


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"crossroads up: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class WorldFiles:
    """What the processes need to know of the world: its seed and its agency ids."""

    seed: int
    agencies: tuple[AgencyId, ...]
    built: bool  # False when the files of an earlier run were reused


def fingerprint(scenario: Path, seed: int) -> str:
    """What identifies the world files built from `scenario`: its bytes, its seed, the file format,
    and the code of the world builder (a change to agencies/ builds another world)."""
    digest = hashlib.sha256(f"world-format {WORLD_FORMAT}\nseed {seed}\n".encode())
    digest.update(scenario.read_bytes())
    for source in sorted(Path(agencies.__file__).parent.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()


def _reusable(state: Path, fingerprint: str) -> WorldFiles | None:
    marker = state / "world.json"
    if not (marker.exists() and (state / "knowledge.json").exists() and (state / "directory.sqlite").exists()):
        return None
    recorded = json.loads(marker.read_text())
    if recorded.get("fingerprint") != fingerprint:
        return None
    return WorldFiles(int(recorded["seed"]), tuple(AgencyId(a) for a in recorded["agencies"]), built=False)


def prepare_world(scenario: Path, state: Path, *, progress: bool = False) -> WorldFiles:
    """Make DIR/knowledge.json and DIR/directory.sqlite hold the world of `scenario`.

    Rebuilds only if they are absent or were built from another scenario or seed. DIR/world.json
    is written last, so an interrupted build is redone next time.
    """
    spec = load_world_spec(scenario)
    wanted = fingerprint(scenario, spec.seed)
    reused = _reusable(state, wanted)
    if reused is not None:
        _say(progress, f"world of {scenario.name} reused from {state}")
        return reused
    state.mkdir(parents=True, exist_ok=True)
    (state / "world.json").unlink(missing_ok=True)
    return _build_world(spec, scenario, state, wanted, progress)


def _build_world(spec: WorldSpec, scenario: Path, state: Path, fingerprint: str, progress: bool) -> WorldFiles:
    from agencies.world import World  # only a cold start pays for the world builder

    started = time.perf_counter()
    world = World.build(spec, progress=progress)
    dump_knowledge(world.knowledge, state / "knowledge.json")
    store = DirectoryStore.create(state / "directory.sqlite")
    try:
        rows = store.bulk_load(itertools.chain.from_iterable(world.iter_directory_rows()))
    finally:
        store.close()
    agencies = tuple(world.knowledge.agencies)
    recorded = {"fingerprint": fingerprint, "scenario": str(scenario.resolve()), "seed": spec.seed}
    write_json_atomic(state / "world.json", {**recorded, "agencies": list(agencies)})
    _say(
        progress,
        f"world built: {len(agencies)} agencies, {rows} directory rows in {time.perf_counter() - started:.1f} s",
    )
    return WorldFiles(spec.seed, agencies, built=True)


def _shipped_scenarios() -> list[Path]:
    return sorted(shipped_folder().glob("*.yaml"))


def _fingerprint_of(scenario: Path) -> str | None:
    """The world fingerprint `testbed.live` records for `scenario`; None if it holds no world."""
    try:
        spec = load_world_spec(scenario)
    except SpecError:
        return None
    # the same function that wrote DIR/world.json: a reimplementation could drift from it
    return fingerprint(scenario, spec.seed)


def scenario_of(state: Path, scenario: Path | None = None) -> Path:
    """The scenario whose world the state folder `state` holds.

    DIR/world.json records the world's fingerprint (testbed.live). The answer is the first of:
    `scenario` (if given), the path world.json names under "scenario" (if any), the scenarios
    shipped in the `scenarios` package, whose fingerprint matches. ClientError if none does,
    saying to pass the scenario that `crossroads up` was given.
    """
    marker = Path(state) / "world.json"
    if not marker.exists():
        raise ClientError(f"no {marker}: no world was built in {state} (crossroads up --state {state})")
    recorded: dict[str, Any] = json.loads(marker.read_text())
    wanted = recorded.get("fingerprint")
    named = [Path(recorded["scenario"])] if recorded.get("scenario") else []
    candidates = [scenario] if scenario is not None else [*named, *_shipped_scenarios()]
    for candidate in candidates:
        if candidate.exists() and _fingerprint_of(candidate) == wanted:
            return candidate
    if scenario is not None:
        raise ClientError(f"the world in {state} was not built from {scenario} (its fingerprint differs)")
    raise ClientError(f"the world in {state} is of no shipped scenario: pass the one crossroads up was given")


def load_world(state: Path, scenario: Path | None = None) -> World:
    """The world of the network in `state`, rebuilt from its scenario (see `scenario_of`)."""
    from agencies.world import World

    return World.build(load_world_spec(scenario_of(state, scenario)))
