"""One crash run: a small live network under load, the core and agency hosts killed, the checks, crash.json.

`run_crash(CrashRun(out=DIR, kills=20, seed=0))`:
1. builds the world (the small built-in one, or `scenario`'s) in DIR/state and starts the agency
   hosts (`testbed.live.start_network`, without its core) and the core (`CoreProcess`);
2. starts the load (`LoadGenerator`) and a watcher of the audit head (`HeadWatcher`);
3. `kills` times: lets the load run for a seeded while, takes the last head seen, SIGKILLs the
   core, starts it again on its port, and proves the new head consistent with the old one;
4. `host_kills` times: SIGKILLs an agency host while deliveries are in flight (the hosts take a
   few ms per message), and starts it again on its port after a seeded outage
   (`loadtests.faults.FaultInjector`); during every second outage the core is killed as well,
   so that what the outbox owes must survive a crash of the core too;
5. stops the load (each message in flight is re-sent until acknowledged), lets the core empty
   its outbox (up to `drain_s`), stops the core gracefully (its final checkpoint) and the hosts;
6. checks the state folder (`loadtests.crash.checks`) and writes DIR/crash.json (counts, checks,
   restarts) and DIR/acks.jsonl (every acknowledgment). Progress goes to stderr.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy as np
import yaml

from agencies.spec import SMALL_WORLD, load_world_spec
from agencies.world import World
from crossroads.audit import KEYS_DIR, AuditHead
from crossroads.checkpoint import load_public_key
from crossroads.pki import host_identity
from loadtests.crash.checks import Verdict, check_run
from loadtests.crash.heads import HeadWatcher, Restart, consistency_problem, fetch_head, fetch_proof
from loadtests.crash.load import DEFAULT_RATE, DEFAULT_WORKERS, LoadGenerator
from loadtests.crash.target import Target
from loadtests.guarantees import drain_outbox
from loadtests.spec import Fault
from testbed.crash.core import CoreProcess, CoreProcessError
from testbed.faults import FaultInjector
from testbed.live import LiveNetwork, start_network
from testbed.world_files import prepare_world

__all__ = [
    "ACKS_FILE",
    "CRASH_JSON",
    "DEFAULT_HOST_KILLS",
    "DEFAULT_KILLS",
    "CrashError",
    "CrashResult",
    "CrashRun",
    "run_crash",
]

DEFAULT_KILLS = 20
DEFAULT_HOST_KILLS = 4
DEFAULT_HOSTS = 2
DEFAULT_SERVICE_TIME_MS = 5.0  # mean per message at the hosts: a kill finds deliveries in flight
DEFAULT_GAP_S = (0.5, 2.0)  # seconds of load between a restart and the next kill (uniform, seeded)
DEFAULT_OUTAGE_S = (0.5, 2.0)  # seconds a killed host stays down (uniform, seeded)
DEFAULT_DRAIN_S = 60.0  # the core's redelivery backs off up to 5 s per agency: a ceiling, not a target
HEAD_TIMEOUT_S = 10.0
CRASH_JSON = "crash.json"
ACKS_FILE = "acks.jsonl"


class CrashError(RuntimeError):
    """The run itself failed (a process would not start, a fault could not be applied)."""


@dataclass(frozen=True, kw_only=True)
class CrashRun:
    """What to run; every field but `out` has a default. Ranges are (low, high) seconds."""

    out: Path
    kills: int = DEFAULT_KILLS
    host_kills: int = DEFAULT_HOST_KILLS
    seed: int = 0
    scenario: Path | None = None  # None: SMALL_WORLD
    hosts: int = DEFAULT_HOSTS
    workers: int = DEFAULT_WORKERS
    rate: float = DEFAULT_RATE
    gap_s: tuple[float, float] = DEFAULT_GAP_S
    outage_s: tuple[float, float] = DEFAULT_OUTAGE_S
    drain_s: float = DEFAULT_DRAIN_S
    service_time_ms: float = DEFAULT_SERVICE_TIME_MS
    progress: bool = True


@dataclass(frozen=True)
class CrashResult:
    """The verdict and what went into DIR/crash.json (`summary`)."""

    ok: bool
    summary: dict[str, Any]
    path: Path


def _say(run: CrashRun, message: str) -> None:
    if run.progress:
        print(f"crossroads crash: {message}", file=sys.stderr, flush=True)


def _scenario(run: CrashRun, out: Path) -> Path:
    if run.scenario is not None:
        return Path(run.scenario).resolve()
    path = out / "world.yaml"
    path.write_text(yaml.safe_dump({"world": dict(SMALL_WORLD)}, sort_keys=False))
    return path


class _Harness:
    """The processes of one run and what they did; `close` leaves nothing running."""

    def __init__(self, run: CrashRun, state: Path, network: LiveNetwork) -> None:
        self.run = run
        self.state = state
        self.network = network
        self.core = CoreProcess(state)
        self.target = Target(state / "pki")
        self.injector = FaultInjector(state, network.endpoints["pids"], service_time_ms=run.service_time_ms)
        self.watcher = HeadWatcher(self.target)
        self.restarts: list[Restart] = []
        self.restart_s: list[float] = []
        self.host_kills = 0

    def __enter__(self) -> _Harness:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.watcher.stop()
        self.core.stop()
        self.injector.close()
        self.network.stop()
        self.target.close()

    # ------------------------------------------------------------------ the core
    def start_core(self) -> None:
        self.target.point_to(self._started())
        self.watcher.start()
        self.watcher.fresh(HEAD_TIMEOUT_S)

    def crash_core(self) -> Restart:
        """SIGKILL the core under load, start it again, and prove its new head consistent with the last one seen."""
        before = self.watcher.fresh(HEAD_TIMEOUT_S)
        self.core.kill()
        began = time.monotonic()
        self.target.point_to(self._started())
        self.restart_s.append(time.monotonic() - began)
        try:
            after = self._head()
            proof = fetch_proof(self.target, before.size, after.size) if after.size else []
        except grpc.RpcError as exc:
            raise CrashError(f"the restarted core did not answer its audit head or proof: {exc}") from exc
        key = load_public_key(self.state / KEYS_DIR)
        restart = Restart(
            len(self.restarts) + 1, before, after, len(proof), consistency_problem(before, after, proof, key)
        )
        self.restarts.append(restart)
        verdict = restart.problem or f"consistent {before.size} -> {after.size}"
        _say(
            self.run,
            f"core kill {restart.kill}: restarted on {self.core.address} in {self.restart_s[-1]:.2f} s; {verdict}",
        )
        return restart

    def _started(self) -> str:
        try:
            return self.core.start()
        except CoreProcessError as exc:
            raise CrashError(str(exc)) from exc

    def _head(self) -> AuditHead:
        deadline = time.monotonic() + HEAD_TIMEOUT_S
        while True:
            try:
                return fetch_head(self.target)
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    # ------------------------------------------------------------------ the hosts
    def crash_host(self, name: str, outage_s: float, *, core_too: bool) -> None:
        """SIGKILL host `name`, start it again on its port after `outage_s`; kill the core meanwhile if asked."""
        fault = Fault(at=0.0, action="kill_host", duration=outage_s, host=name)
        applying = threading.Thread(target=self.injector.run, args=([fault], time.time(), threading.Event()))
        applying.start()
        if core_too:
            time.sleep(outage_s / 2)
            self.crash_core()
        applying.join()
        if self.injector.errors:
            raise CrashError(f"the host kill could not be applied: {'; '.join(self.injector.errors)}")
        self.host_kills += 1
        also = " (and the core during its outage)" if core_too else ""
        _say(self.run, f"host kill {self.host_kills}: {name} down {outage_s:.2f} s, back on its port{also}")

    # ------------------------------------------------------------------ the end
    def drain(self) -> int:
        """Wait (up to `drain_s`) until the core's outbox has nothing left to deliver; how much it still has."""
        held, _ = drain_outbox(self.state, self.run.drain_s)
        return held


def _schedule(run: CrashRun, harness: _Harness, load: LoadGenerator, rng: np.random.Generator) -> None:
    for _ in range(run.kills):
        time.sleep(rng.uniform(*run.gap_s))
        if load.sent == 0:
            raise CrashError("the load sent nothing: see the logs in state/logs")
        harness.crash_core()
    for k in range(run.host_kills):
        time.sleep(rng.uniform(*run.gap_s))
        harness.crash_host(host_identity(k % run.hosts), rng.uniform(*run.outage_s), core_too=k % 2 == 1)
    time.sleep(rng.uniform(*run.gap_s))  # some load after the last restart too


def run_crash(run: CrashRun) -> CrashResult:
    """Run the harness (see the module doc); CrashError if the run itself failed.

    The verdict is in the result (and DIR/crash.json): `ok` is False when a guarantee broke.
    """
    out = Path(run.out).resolve()
    state = out / "state"
    state.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    scenario = _scenario(run, out)
    files = prepare_world(scenario, state)
    world = World.build(load_world_spec(scenario))
    load_seed, fault_seed = np.random.SeedSequence(run.seed).spawn(2)
    network = start_network(state, files, hosts=run.hosts, service_time_ms=run.service_time_ms, start_core=False)
    with _Harness(run, state, network) as harness:
        harness.start_core()
        load = LoadGenerator(
            world, harness.target, load_seed, run_tag=str(run.seed), workers=run.workers, rate=run.rate
        )
        _say(run, f"{len(files.agencies)} agencies on {run.hosts} hosts, core on {harness.core.address}: load starts")
        load.start()
        try:
            _schedule(run, harness, load, np.random.default_rng(fault_seed))
        except BaseException:
            load.stop(timeout_s=0.0)  # the run failed: do not wait for messages to be acknowledged
            raise
        load.stop()
        held = harness.drain()
        _say(run, f"load stopped: {load.sent} messages, {len(load.acks)} acknowledged; outbox holds {held}")
        harness.watcher.stop()
        harness.target.close()  # before the core goes: no channel left to be told GOAWAY
        harness.core.stop()
    verdict = check_run(state, load.acks, load.unacknowledged, load.sent, harness.restarts, load.prefix)
    return _write(run, out, scenario, load, harness, verdict, time.monotonic() - began)


def _write(
    run: CrashRun, out: Path, scenario: Path, load: LoadGenerator, harness: _Harness, verdict: Verdict, elapsed: float
) -> CrashResult:
    with (out / ACKS_FILE).open("w") as f:
        for ack in load.acks:
            f.write(json.dumps(ack.as_json(), separators=(",", ":")) + "\n")
    counts = {
        "kills_core": len(harness.restarts),
        "kills_hosts": harness.host_kills,
        "sent": load.sent,
        "acknowledged": len(load.acks),
        "resent": load.attempts - load.sent,
        "lost": verdict.figures["lost"],
        "duplicated_records": verdict.figures["duplicated_records"],
        "consistency_proofs_checked": len(harness.restarts),
        "unacknowledged": len(load.unacknowledged),
        **{k: v for k, v in verdict.figures.items() if k not in ("lost", "duplicated_records")},
    }
    summary = {
        "ok": verdict.ok,
        "broken": verdict.broken(),
        "counts": counts,
        "checks": [c.as_json() for c in verdict.checks],
        "restarts": [r.as_json() for r in harness.restarts],
        "run": {
            "seed": run.seed,
            "scenario": str(scenario),
            "hosts": run.hosts,
            "workers": run.workers,
            "rate": run.rate,
            "elapsed_s": round(elapsed, 2),
            "core_restart_median_s": round(statistics.median(harness.restart_s), 3) if harness.restart_s else None,
        },
    }
    path = out / CRASH_JSON
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return CrashResult(verdict.ok, summary, path)
