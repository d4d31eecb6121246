"""Bringing the live network up and down: world files, certificates, agency hosts, the core.

`bring_up(scenario, state)` makes the state folder ready and starts the processes:
1. the world files (testbed.world_files): DIR/knowledge.json and DIR/directory.sqlite, built
   only when absent or when the scenario or the world builder changed;
2. certificates from the network CA (DIR/pki) for the core, the hosts, the admin tools and
   every agency (those already issued are kept), and the synthetic federal authentication
   service's Ed25519 key pair (DIR/pki/fas/: crossroads.citizen);
3. a few agency host processes (`python -m agencies.host`), each answering for a share of
   the agencies (dealt round-robin in catalogue order, so the busy primary-network agencies
   are spread over the hosts); then DIR/hosts.json with their addresses;
4. the core (`python -m crossroads.server`), which reads the files above;
5. a wait until the core and every host answer grpc.health.v1 Check with SERVING (over
   mutual TLS, as "admin"); then DIR/endpoints.json.

Processes are started as each server module's `command` says, by testbed.processes: this
Python, logs in DIR/logs/NAME.log, sessions of their own, so a Ctrl-C in the terminal reaches
only this process, which stops the core first (no forwards left in flight) and then the hosts.
The core and the hosts also stop by themselves if this process dies. If a process dies during
start-up, the others are stopped and `LiveNetworkError` quotes the tail of its log.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib.util
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, Unpack

import grpc
from grpc_health.v1 import health_pb2

from agencies import host
from crossroads import server
from crossroads.atomic_file import write_json_atomic
from crossroads.citizen import ensure_fas
from crossroads.domain import AgencyId
from crossroads.methods import HEALTH_CHECK as _HEALTH
from crossroads.pki import ADMIN, CORE, NetworkPki, channel_credentials, host_identity
from testbed import processes
from testbed.processes import Child, ChildError
from testbed.world_files import WorldFiles, prepare_world

__all__ = [
    "DEFAULT_HOSTS",
    "DEFAULT_SERVICE_TIME_MS",
    "LiveNetwork",
    "LiveNetworkError",
    "NetworkOptions",
    "bring_up",
    "check_health",
    "start_network",
    "status",
]

DEFAULT_HOSTS = 4  # ~750 agencies each for the ~3,000 of the demo world; 2 cores carry 4 well
DEFAULT_SERVICE_TIME_MS = 0.0
START_TIMEOUT_S = 120.0  # a generous ceiling for a loaded machine, not a target
STOP_TIMEOUT_S = 15.0
HEALTH_TIMEOUT_S = 2.0

_STATUS_NAMES = {
    health_pb2.HealthCheckResponse.SERVING: "SERVING",
    health_pb2.HealthCheckResponse.NOT_SERVING: "NOT_SERVING",
}
UNREACHABLE = "UNREACHABLE"


class LiveNetworkError(RuntimeError):
    """The live network could not be brought up (the message says which process and why)."""


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"crossroads up: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------ processes


def _spawn_host(index: int, agencies: Sequence[AgencyId], state: Path, seed: int, service_time_ms: float) -> Child:
    name = host_identity(index)
    agencies_file = state / "hosts" / f"{name}.agencies.json"
    write_json_atomic(agencies_file, list(agencies))
    command = host.command(state, name, agencies_file, seed, service_time_ms=service_time_ms)
    return processes.start_server(command, state / "logs" / f"{name}.log")


def _spawn_core(state: Path, env: Mapping[str, str] | None) -> Child:
    if importlib.util.find_spec("crossroads.server") is None:
        raise LiveNetworkError("the core module crossroads.server is not installed")
    return processes.start_server(server.command(state, env=env), state / "logs" / f"{CORE}.log")


def _wait_for_ports(children: Sequence[Child], deadline: float) -> None:
    """Wait until every process wrote its port file (it writes it once serving)."""
    try:
        processes.wait_serving(children, deadline)
    except ChildError as exc:
        raise LiveNetworkError(str(exc)) from exc


# ------------------------------------------------------------------ health


def check_health(address: str, credentials: grpc.ChannelCredentials, timeout_s: float = HEALTH_TIMEOUT_S) -> str:
    """grpc.health.v1 Check of the whole server: "SERVING", "NOT_SERVING" or "UNREACHABLE"."""
    try:
        with grpc.secure_channel(address, credentials) as channel:
            check = channel.unary_unary(
                _HEALTH,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            reply = check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
    except grpc.RpcError:
        return UNREACHABLE
    return _STATUS_NAMES.get(reply.status, "NOT_SERVING")


def _serving_all(children: Sequence[Child], credentials: grpc.ChannelCredentials, deadline: float) -> None:
    def serving(child: Child) -> bool:
        return check_health(str(child.address), credentials) == "SERVING"

    try:
        processes.wait_until(children, serving, deadline=deadline, what="answer SERVING")
    except ChildError as exc:
        raise LiveNetworkError(str(exc)) from exc


# ------------------------------------------------------------------ the network


@dataclass
class LiveNetwork:
    """The running processes of a live network. `stop()` ends them; also a context manager."""

    state: Path
    hosts: list[Child]
    core: Child | None
    endpoints: dict[str, Any] = field(default_factory=dict)
    _stopped: bool = False

    @property
    def endpoints_path(self) -> Path:
        return self.state / "endpoints.json"

    def processes(self) -> list[Child]:
        """The core first, then the hosts: the order they are stopped in."""
        return ([self.core] if self.core else []) + self.hosts

    def dead(self) -> list[str]:
        """Names of processes that have exited (a running network has none)."""
        return [p.name for p in self.processes() if p.exited() is not None]

    def rss_bytes(self) -> dict[str, int]:
        """Resident memory of each live process (Linux /proc), by name."""
        return {p.name: rss for p in self.processes() if (rss := _rss_bytes(p.pid)) is not None}

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """Stop the core, then the hosts (SIGTERM, then SIGKILL after `timeout_s`). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        if self.core is not None:
            processes.stop([self.core], timeout_s)
        processes.stop(self.hosts, timeout_s)
        if self.endpoints:
            self.endpoints["up"] = False
            write_json_atomic(self.endpoints_path, self.endpoints)

    def __enter__(self) -> LiveNetwork:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def _rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _share(agencies: Sequence[AgencyId], hosts: int) -> list[list[AgencyId]]:
    return [list(agencies[k::hosts]) for k in range(hosts)]


def _hosts_json(hosts: Sequence[Child], shares: Sequence[Sequence[AgencyId]]) -> dict[str, Any]:
    return {
        "hosts": [
            {"name": p.name, "address": p.address, "agencies": list(share)}
            for p, share in zip(hosts, shares, strict=True)
        ]
    }


def _endpoints(network: LiveNetwork, world: WorldFiles, shares: Sequence[Sequence[AgencyId]]) -> dict[str, Any]:
    return {
        "up": True,
        "core": network.core.address if network.core else None,
        "agencies": len(world.agencies),
        "hosts": [
            {"name": p.name, "address": p.address, "agencies": len(share), "pid": p.pid}
            for p, share in zip(network.hosts, shares, strict=True)
        ],
        "pids": {p.name: p.pid for p in network.processes()},
        "pki": str(network.state / "pki"),
        "admin_identity": ADMIN,
        "seed": world.seed,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _prepare_folder(state: Path) -> None:
    for sub in ("logs", "hosts"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / "endpoints.json").unlink(missing_ok=True)  # nobody may mistake an old network for this one


def start_network(
    state: Path,
    world: WorldFiles,
    *,
    hosts: int = DEFAULT_HOSTS,
    service_time_ms: float = DEFAULT_SERVICE_TIME_MS,
    start_core: bool = True,
    core_env: Mapping[str, str] | None = None,
    progress: bool = False,
    timeout_s: float = START_TIMEOUT_S,
) -> LiveNetwork:
    """Issue certificates, start the hosts and the core, wait until all serve; write endpoints.json.

    `start_core=False` brings up the hosts alone (for tests of the hosts and of this module);
    `core_env` is added to the core's environment (e.g. crossroads.diagnostics' variables).
    On any failure or interrupt the processes started so far are stopped before raising.
    """
    if not 1 <= hosts <= max(1, len(world.agencies)):
        raise ValueError(f"hosts must be 1..{len(world.agencies)} (one agency at least each), got {hosts}")
    state = Path(state).resolve()
    _prepare_folder(state)
    pki = NetworkPki.open(state / "pki")
    pki.issue_many([CORE, ADMIN, *(host_identity(k) for k in range(hosts))])
    ensure_fas(state / "pki")  # the synthetic FAS: the core trusts its public key, citizen senders sign with it
    network = LiveNetwork(state, [], None)
    atexit.register(network.stop)  # a forgotten network does not outlive its Python
    try:
        plan = _Plan(hosts, service_time_ms, start_core, core_env, time.monotonic() + timeout_s, progress)
        _start_all(network, pki, world, plan)
    except BaseException:
        network.stop()
        raise
    return network


@dataclass(frozen=True, slots=True)
class _Plan:
    hosts: int
    service_time_ms: float
    start_core: bool
    core_env: Mapping[str, str] | None
    deadline: float
    progress: bool


def _start_all(network: LiveNetwork, pki: NetworkPki, world: WorldFiles, plan: _Plan) -> None:
    state, hosts = network.state, plan.hosts
    shares = _share(world.agencies, hosts)
    for k, share in enumerate(shares):
        network.hosts.append(_spawn_host(k, share, state, world.seed, plan.service_time_ms))
    # the agencies' own certificates are for clients: issue them while the hosts boot
    issued = pki.issue_many(world.agencies, progress=plan.progress)
    _say(plan.progress, f"agency certificates: {issued} issued, {len(set(world.agencies)) - issued} kept")
    _wait_for_ports(network.hosts, plan.deadline)
    write_json_atomic(state / "hosts.json", _hosts_json(network.hosts, shares))
    then = "; starting the core" if plan.start_core else ""
    _say(plan.progress, f"{hosts} agency hosts listening{then}")
    if plan.start_core:
        network.core = _spawn_core(state, plan.core_env)
        _wait_for_ports(network.processes(), plan.deadline)
    _serving_all(network.processes(), channel_credentials(state / "pki", ADMIN), plan.deadline)
    network.endpoints = _endpoints(network, world, shares)
    write_json_atomic(network.endpoints_path, network.endpoints)


class NetworkOptions(TypedDict, total=False):
    """The options of `start_network` that `bring_up` passes on (their defaults are start_network's)."""

    hosts: int
    service_time_ms: float
    start_core: bool
    core_env: Mapping[str, str] | None
    timeout_s: float


def bring_up(scenario: Path, state: Path, *, progress: bool = True, **options: Unpack[NetworkOptions]) -> LiveNetwork:
    """Bring the live network of `scenario` up with its state in `state`; see the module doc.
    `options` are `start_network`'s.

    Returns once the core and every host answer SERVING and DIR/endpoints.json is written.
    Raises LiveNetworkError (quoting the failing process's log) if a process dies or does not
    serve in time; nothing is left running then.
    """
    state = Path(state).resolve()
    state.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    world = prepare_world(Path(scenario), state, progress=progress)
    network = start_network(state, world, progress=progress, **options)
    network.endpoints["startup_s"] = round(time.perf_counter() - started, 3)
    write_json_atomic(network.endpoints_path, network.endpoints)
    _say(progress, f"{len(world.agencies)} agencies serving in {network.endpoints['startup_s']:.1f} s")
    return network


# ------------------------------------------------------------------ status


def _pid_alive(pid: int | None, state: Path) -> bool:
    """Whether `pid` still runs a process of this network (its command line names `state`).

    Checking the command line keeps a recycled pid from passing for one of ours.
    """
    if pid is None:
        return False
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        return False
    return fields[0] != "Z" and str(state).encode() in cmdline  # a zombie has exited already


def _process_status(
    name: str, address: str | None, pid: int | None, state: Path, credentials: grpc.ChannelCredentials
) -> dict[str, Any]:
    alive = _pid_alive(pid, state)
    rss = _rss_bytes(pid) if alive and pid is not None else None
    return {
        "name": name,
        "address": address,
        "pid": pid,
        "pid_alive": alive,
        "health": check_health(address, credentials) if address else UNREACHABLE,
        "rss_mb": round(rss / 2**20, 1) if rss is not None else None,
    }


def status(state: Path) -> dict[str, Any]:
    """Health of the core and of every host of the network in `state`, as JSON-ready data.

    Asks each for grpc.health.v1 Check over mutual TLS as "admin". Each process reports
    health SERVING / NOT_SERVING / UNREACHABLE and whether its pid is alive; "serving" is
    true only when all of them are SERVING. Without DIR/endpoints.json nothing was brought up.
    """
    state = Path(state).resolve()
    path = state / "endpoints.json"
    if not path.exists():
        return {"state": str(state), "serving": False, "error": f"no {path}: the network was not brought up here"}
    endpoints = json.loads(path.read_text())
    credentials = channel_credentials(state / "pki", ADMIN)
    pids = endpoints.get("pids", {})
    core = (
        _process_status(CORE, endpoints.get("core"), pids.get(CORE), state, credentials)
        if endpoints.get("core")
        else None
    )
    hosts = [
        _process_status(h["name"], h["address"], h.get("pid"), state, credentials) for h in endpoints.get("hosts", [])
    ]
    everyone = ([core] if core else []) + hosts
    return {
        "state": str(state),
        "endpoints": str(path),
        "up": bool(endpoints.get("up")),
        "serving": bool(everyone) and all(p["health"] == "SERVING" for p in everyone),
        "agencies": endpoints.get("agencies"),
        "core": core,
        "hosts": hosts,
    }
