"""The gRPC load generator for benchmarks: the same client for every target, closed or open loop.

It sends prepared unary requests (loadtests.prepared: raw bytes, one mutual-TLS channel per
sender identity, a fresh message id on every Exchange) and reports throughput and latency
percentiles (crossroads.statistics: nearest rank). Run it in a process of its own so that it
never shares an event loop with a server; it prints its figures as one JSON line.

Closed loop (`run_load`): a fixed number of calls in flight for a fixed time; latency from
each call's start. What `crossroads bench core` drives:
    python -m loadtests.loadgen --pki DIR/pki --target ADDR --requests FILE --concurrency C --seconds S
Open loop (`run_level`, one level of a staircase: loadtests.level): `--rate R` requests per
second in all, on a seeded schedule (Poisson, or `--arrivals uniform`), from `--processes K`
sender processes, answered or not; latency from each request's intended send time (no
coordinated omission), the send lag, and whether the generator kept its schedule
(loadtests.level_figures); `--records FILE` keeps one record per request (.npy):
    python -m loadtests.loadgen --pki DIR/pki --target ADDR --requests FILE --rate R --seconds S [--processes K]
A benchmark in another process builds that command line with `level_args`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc import aio
from numpy.typing import NDArray

from crossroads.atomic_file import write_atomic
from crossroads.pki import channel_credentials
from crossroads.statistics import percentile
from loadtests.level import ARRIVALS, CALL_TIMEOUT_S, DEFAULT_MAX_IN_FLIGHT, Level, write_records
from loadtests.level_figures import figures_of
from loadtests.prepared import EXCHANGE_METHOD, Prepared, read_requests, with_message_id, write_requests
from loadtests.sender import SenderPart, send_part
from loadtests.sender_pool import START_LEAD_S, send_in_processes

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_SECONDS",
    "DEFAULT_WARMUP_S",
    "EXCHANGE_METHOD",
    "LevelResult",
    "Prepared",
    "level_args",
    "main",
    "read_requests",
    "run_level",
    "run_load",
    "with_message_id",
    "write_requests",
]

DEFAULT_CONCURRENCY = 64
DEFAULT_SECONDS = 10.0
DEFAULT_WARMUP_S = 1.0


async def run_load(
    pki: Path, target: str, requests: Sequence[Prepared], *, concurrency: int, seconds: float, warmup_s: float
) -> dict[str, float]:
    """Keep `concurrency` calls in flight for `warmup_s + seconds`; count only after warm-up."""
    channels = {i: aio.secure_channel(target, channel_credentials(pki, i)) for i in {r.identity for r in requests}}
    calls = [(channels[r.identity].unary_unary(r.method), r.body, r.method == EXCHANGE_METHOD) for r in requests]
    run_id = f"lg{time.time_ns():x}"
    latencies: list[float] = []
    errors: dict[str, int] = {}
    sent = 0  # every call made, warm-up included: to divide a server's CPU time by
    cpu_started = time.process_time()
    start = time.perf_counter()
    counting_from = start + warmup_s
    stop_at = counting_from + seconds

    async def worker(offset: int) -> None:
        nonlocal sent
        i = offset
        while (now := time.perf_counter()) < stop_at:
            call, body, fresh_id = calls[i % len(calls)]
            if fresh_id:
                body = with_message_id(body, f"{run_id}-{i}")
            i += concurrency
            sent += 1
            try:
                await call(body, timeout=10.0)
            except grpc.RpcError as exc:
                if now >= counting_from:
                    code = exc.code().name if isinstance(exc, aio.AioRpcError) else "UNKNOWN"
                    errors[code] = errors.get(code, 0) + 1
                continue
            if now >= counting_from:
                latencies.append(time.perf_counter() - now)

    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    for channel in channels.values():
        await channel.close()
    return {
        "rps": len(latencies) / seconds,
        "ok": float(len(latencies)),
        "errors": float(sum(errors.values())),
        "calls": float(sent),
        "cpu_s": time.process_time() - cpu_started,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        **{f"error_{k}": float(v) for k, v in errors.items()},
    }


@dataclass(frozen=True)
class LevelResult:
    """What one open-loop level gave: its figures (strict JSON) and one RECORD per scheduled
    request, in the order of their intended times (loadtests.level)."""

    figures: dict[str, Any]
    records: NDArray[np.void]


def run_level(
    pki: Path, target: str, requests: Sequence[Prepared], level: Level, start_file: Path | None = None
) -> LevelResult:
    """Offer `level` to `target` (mutual TLS with the identities of `pki`), open loop.

    With one sender process, sends from this one (so not from inside a running event loop);
    with K, from K child processes (loadtests.sender_pool) while this one waits. Takes the
    level's warm-up and seconds, plus the time for the last answers to come back (at most
    `level.timeout_s`). LoadgenError (loadtests.sender) if a sender cannot connect or fails.
    `start_file`, if given, gets the UNIX time of the measured window's start (intended time 0)
    as soon as the schedule's start is fixed, before anything is sent: what a fault injector
    waits for to place its faults in the window (the senders' start-up takes seconds).
    """
    if not requests:
        raise ValueError("no requests to send")
    run_id = f"ol{time.time_ns():x}"
    parts = [SenderPart(pki, target, tuple(requests), level, k, run_id) for k in range(level.processes)]
    started: list[float] = []

    def on_start(t0: float) -> None:
        started.append(t0)
        if start_file is not None:
            write_atomic(start_file, f"{_unix(t0 + level.warmup_s):.4f}\n".encode())

    if level.processes == 1:
        sent = [send_part(parts[0], lambda: _start_at(on_start))]
    else:
        sent = send_in_processes(parts, on_start)
    records = np.concatenate([r for r, _ in sent])
    records = records[np.argsort(records["intended_s"], kind="stable")]
    figures = figures_of(records, level, [cpu for _, cpu in sent])
    # the UNIX time of intended time 0 (the window's start), to place it beside other clocks
    figures["window_start_unix"] = round(_unix(started[0] + level.warmup_s), 4)
    return LevelResult(figures, records)


def _unix(monotonic: float) -> float:
    """The UNIX time of a time.monotonic() instant."""
    return monotonic + time.time() - time.monotonic()


def _start_at(on_start: Callable[[float], None]) -> float:
    t0 = time.monotonic() + START_LEAD_S
    on_start(t0)
    return t0


def level_args(
    pki: Path,
    target: str,
    requests_file: Path,
    level: Level,
    records: Path | None = None,
    start_file: Path | None = None,
) -> list[str]:
    """The Python arguments (for testbed.processes.run) of `python -m loadtests.loadgen` offering
    `level`: its last line of output is the figures (JSON); with `records`, it writes them there
    (loadtests.level.read_records reads them); with `start_file`, the window's start (`run_level`)."""
    args = ["-m", "loadtests.loadgen", "--pki", str(pki), "--target", target, "--requests", str(requests_file)]
    args += level.argv() + ([] if records is None else ["--records", str(records)])
    return args + ([] if start_file is None else ["--start-file", str(start_file)])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pki", required=True, help="the network PKI folder (DIR/pki)")
    parser.add_argument("--target", required=True, help="host:port of the server under test")
    parser.add_argument("--requests", required=True, help="file written by write_requests()")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured time")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, help="unmeasured time first")
    closed = parser.add_argument_group("closed loop (without --rate)")
    closed.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="calls in flight")
    opened = parser.add_argument_group("open loop")
    opened.add_argument("--rate", type=float, help="requests per second in all, answered or not")
    opened.add_argument("--arrivals", choices=ARRIVALS, default="poisson", help="the schedule's kind")
    opened.add_argument("--processes", type=int, default=1, help="sender processes, each rate/K")
    opened.add_argument("--seed", type=int, default=0, help="seeds the schedule")
    opened.add_argument("--max-in-flight", type=int, default=DEFAULT_MAX_IN_FLIGHT, help="per sender process")
    opened.add_argument("--timeout", type=float, default=CALL_TIMEOUT_S, help="seconds a call may take")
    opened.add_argument("--records", help="write one record per request here (.npy)")
    opened.add_argument("--start-file", help="write the measured window's start here (UNIX time) before sending")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    requests = read_requests(Path(args.requests))
    if args.rate is None:
        figures = asyncio.run(
            run_load(
                Path(args.pki), args.target, requests, concurrency=args.concurrency, seconds=args.seconds,
                warmup_s=args.warmup,
            )
        )  # fmt: skip
        print(json.dumps(figures))
        return
    level = Level(
        rate=args.rate, seconds=args.seconds, warmup_s=args.warmup, arrivals=args.arrivals,
        processes=args.processes, seed=args.seed, max_in_flight=args.max_in_flight, timeout_s=args.timeout,
    )  # fmt: skip
    start_file = None if args.start_file is None else Path(args.start_file)
    result = run_level(Path(args.pki), args.target, requests, level, start_file)
    if args.records:
        write_records(Path(args.records), result.records)
    print(json.dumps(result.figures, allow_nan=False))


if __name__ == "__main__":
    main()
