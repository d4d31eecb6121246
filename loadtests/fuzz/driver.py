"""Driving a campaign: Hypothesis draws batches, each target runs its share, then the after-checks."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.internal.conjecture import providers as hypothesis_providers
from hypothesis.internal.constants_ast import Constants

from crossroads.audit import AUDIT_DB, verify_store
from loadtests.fuzz.agency import AgencyTarget, agency_cases
from loadtests.fuzz.atheris_harness import AtherisRunner
from loadtests.fuzz.cases import Batch, _duplicates, _lifecycle, batches, exchange_cases
from loadtests.fuzz.checks import Tally
from loadtests.fuzz.core import CoreTarget, rpc_cases
from loadtests.fuzz.exchange import ExchangeTarget
from loadtests.fuzz.mutators import weighted
from loadtests.fuzz.tls import TlsTarget, tls_cases
from loadtests.fuzz.world import DEFAULT_CORPUS, DEFAULT_SEED, FuzzError, FuzzWorld, prepare_world

DEFAULT_CASES = 100_000
DEFAULT_BATCH = 16  # cases sent at once: concurrent appends share one audit commit (~2.4 ms alone)
TARGETS = ("exchange", "core", "agency", "tls")
# Shares of --cases per target: handshakes cost ~10 ms each, so they get few cases
DEFAULT_SHARES = {"exchange": 0.55, "core": 0.30, "agency": 0.145, "tls": 0.005}


_T = TypeVar("_T")


def drive(strategy: st.SearchStrategy[_T], examples: int, seed: int, body: Callable[[_T], None]) -> None:
    """Call `body` on `examples` values drawn by Hypothesis from `strategy`, seeded by `seed`.

    Generation only: `body` counts and reports problems itself rather than raising, so that a
    campaign goes on after the first one (a test that wants shrinking raises in `body`).
    """

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @hypothesis_seed(seed)
    @given(strategy)
    def run(value: _T) -> None:
        body(value)

    with _without_local_constants():
        run()


@contextlib.contextmanager
def _without_local_constants() -> Iterator[None]:
    """Hypothesis's own constants only while a campaign draws.

    Hypothesis (6.170, pinned) also draws literals it finds in the loaded modules of this
    project: a seeded campaign would then change with every literal anywhere in the code and
    with which modules a test run happened to import first (a campaign of 80 batches lost all
    its concurrent duplicates that way). Private API: revisit when Hypothesis is upgraded.
    """
    found = hypothesis_providers._get_local_constants
    hypothesis_providers._get_local_constants = Constants
    hypothesis_providers.CONSTANTS_CACHE.cache.clear()
    try:
        yield
    finally:
        hypothesis_providers._get_local_constants = found
        hypothesis_providers.CONSTANTS_CACHE.cache.clear()


@dataclass(frozen=True, kw_only=True)
class FuzzConfig:
    """One campaign: `cases` in all, split over `targets` by `shares`; work files in `out`."""

    out: Path
    cases: int = DEFAULT_CASES
    seed: int = DEFAULT_SEED
    batch: int = DEFAULT_BATCH
    corpus: int = DEFAULT_CORPUS
    targets: tuple[str, ...] = TARGETS
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    persons: int | None = None  # shrink the world (tests)
    atheris_runs: int = 0  # coverage-guided runs of the pure validation and routing (0: none)
    open_bugs: bool = True  # include the cases of KNOWN_OPEN_BUGS

    def split(self) -> dict[str, int]:
        """Cases per target: proportional to `shares`, at least one each, summing to `cases`."""
        total = sum(self.shares[t] for t in self.targets)
        counts = {t: max(1, math.floor(self.cases * self.shares[t] / total)) for t in self.targets}
        counts[self.targets[0]] += self.cases - sum(counts.values())
        return counts


def _strategy(target: str, world: FuzzWorld, config: FuzzConfig) -> st.SearchStrategy[Batch]:
    """What `target` is sent; `world` is the target's own (its citizens vouched for by its clock)."""
    if target == "exchange":
        cases = exchange_cases(world)
        return batches(cases, config.batch, _lifecycle(world), _duplicates(world, cases, config.batch))
    if target == "core":
        rpcs = rpc_cases(world, open_bugs=config.open_bugs)
        cases = weighted((3, exchange_cases(world, unauthenticated=False)), (1, rpcs))
        return batches(cases, config.batch, _lifecycle(world), _duplicates(world, cases, config.batch))
    if target == "agency":
        return batches(agency_cases(world), config.batch)
    return batches(tls_cases(), min(config.batch, 8))


def _make(target: str, world: FuzzWorld, state: Path) -> Any:
    kinds = {"exchange": ExchangeTarget, "core": CoreTarget, "agency": AgencyTarget, "tls": TlsTarget}
    return kinds[target](world, state)


@contextlib.asynccontextmanager
async def running(target: str, world: FuzzWorld, state: Path) -> AsyncIterator[Any]:
    """A started target (servers bound to 127.0.0.1), stopped on exit."""
    made = _make(target, world, state)
    if hasattr(made, "start"):
        await made.start()
    try:
        yield made
    finally:
        await made.close()


def _fuzz_target(
    loop: asyncio.AbstractEventLoop,
    made: Any,
    strategy: st.SearchStrategy[Batch],
    n: int,
    seed: int,
    tally: Tally,
    step: Callable[[int], None],
    batch: int,
) -> None:
    done = 0

    def body(value: Batch) -> None:
        nonlocal done
        cases = value.cases[: n - done]
        if not cases:
            return
        results = loop.run_until_complete(made.run(Batch(cases, value.sequential)))
        for case, result in itertools.zip_longest(cases, results):
            if case is None:
                tally.problem(result.category or "other", f"{made.name}: {result.problem}")
            else:
                tally.add(made.name, case.label, result)
        done += len(cases)
        step(len(cases))

    for round_ in itertools.count():  # Hypothesis may stop early (lifecycle batches are short): go on
        if done >= n:
            break
        drive(strategy, max(1, math.ceil((n - done) / batch)), seed + round_, body)


def _after(loop: asyncio.AbstractEventLoop, made: Any, state: Path, tally: Tally) -> None:
    if hasattr(made, "canary"):
        outcome = loop.run_until_complete(made.canary())
        tally.checks[f"{made.name}_canary_after"] = outcome
        if outcome != "DELIVERED":
            tally.problem("canary", f"{made.name}: a valid consultation got {outcome} after the campaign")


def _verify(state: Path, name: str, tally: Tally) -> None:
    if not (state / AUDIT_DB).exists():
        return
    result = verify_store(state, check_index=True)
    tally.checks[f"{name}_audit"] = {"ok": result.ok, "size": result.size, "message": result.message}
    if not result.ok:
        tally.problem("audit_verify", f"{name}: {result.message}")


def run_campaign(
    config: FuzzConfig,
    *,
    progress: Callable[[int], None] | None = None,
    world: FuzzWorld | None = None,
    atheris: AtherisRunner | None = None,
) -> Tally:
    """Run every target of `config` (its share of the cases each) and return the tally.

    Servers bind 127.0.0.1 only and are stopped before this returns. `progress(n)` is called
    after every batch with the number of cases it held. `config.atheris_runs` needs `atheris`,
    which runs the coverage-guided campaign in a child process (FuzzError without it).
    """
    if config.atheris_runs and atheris is None:
        raise FuzzError("atheris runs need a runner that starts their child process")
    started = time.perf_counter()
    config.out.mkdir(parents=True, exist_ok=True)
    world = world or prepare_world(config.out / "world", seed=config.seed, corpus=config.corpus, persons=config.persons)
    tally = Tally()
    step = progress or (lambda _n: None)
    loop = asyncio.new_event_loop()
    try:
        for i, (target, n) in enumerate(config.split().items()):
            state = config.out / target
            shutil.rmtree(state, ignore_errors=True)
            _run_target(loop, target, world, state, config, n, config.seed * 1_000 + i * 100, tally, step)
            _verify(state, target, tally)
    finally:
        loop.close()
    if config.atheris_runs and atheris is not None:
        tally.checks["atheris"] = atheris(world, config.atheris_runs, config.seed, config.out / "atheris")
        if tally.checks["atheris"]["exit_code"] != 0:
            tally.problem("crash", f"atheris: {tally.checks['atheris']['tail']}")
    tally.checks["seconds"] = round(time.perf_counter() - started, 1)
    return tally


def _run_target(
    loop: asyncio.AbstractEventLoop,
    target: str,
    world: FuzzWorld,
    state: Path,
    config: FuzzConfig,
    n: int,
    seed: int,
    tally: Tally,
    step: Callable[[int], None],
) -> None:
    context = running(target, world, state)
    made = loop.run_until_complete(context.__aenter__())
    try:
        strategy = _strategy(target, getattr(made, "world", world), config)
        if hasattr(made, "canary"):
            before = loop.run_until_complete(made.canary())
            if before != "DELIVERED":
                raise FuzzError(f"{target}: the canary consultation got {before} before any fuzzing")
        _fuzz_target(loop, made, strategy, n, seed, tally, step, config.batch)
        _after(loop, made, state, tally)
    finally:
        loop.run_until_complete(context.__aexit__(None, None, None))
