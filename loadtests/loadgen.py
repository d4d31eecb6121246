"""A closed-loop gRPC load generator for benchmarks: the same client for every target.

It sends prepared unary requests (raw bytes, one mutual-TLS channel per sender identity) with
a fixed number of calls in flight for a fixed time, and reports throughput and latency
percentiles. Run it in its own process so that it never shares an event loop with a server:
`python -m loadtests.loadgen --pki DIR/pki --target ADDR --requests FILE --concurrency C --seconds S`
prints one JSON line with the figures.

Every call to Crossroads/Exchange carries a message id of its own: the core answers a message
id it has seen from its journal without forwarding it again (exactly once), so cycling
through the same prepared envelopes would measure that instead. The id is appended to the
prepared bytes as a second `message_id` field (a protobuf parser keeps the last one), so the
envelope is not re-encoded per call.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc import aio

from crossroads.methods import EXCHANGE as EXCHANGE_METHOD
from crossroads.pki import channel_credentials

DEFAULT_CONCURRENCY = 64
DEFAULT_SECONDS = 10.0
DEFAULT_WARMUP_S = 1.0
_MESSAGE_ID_TAG = b"\x0a"  # Envelope field 1 (message_id), length-delimited


@dataclass(frozen=True, slots=True)
class Prepared:
    """One request to send: as which identity, to which method, with which bytes."""

    identity: str
    method: str
    body: bytes


def write_requests(path: Path, requests: Sequence[Prepared]) -> None:
    with path.open("w") as out:
        for r in requests:
            out.write(
                json.dumps({"identity": r.identity, "method": r.method, "body": base64.b64encode(r.body).decode()})
            )
            out.write("\n")


def read_requests(path: Path) -> list[Prepared]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return [Prepared(r["identity"], r["method"], base64.b64decode(r["body"])) for r in rows]


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) by the nearest-rank method; 0.0 for no values."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


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
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "ok": float(len(latencies)),
        "errors": float(sum(errors.values())),
        "calls": float(sent),
        "cpu_s": time.process_time() - cpu_started,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        **{f"error_{k}": float(v) for k, v in errors.items()},
    }


def with_message_id(envelope: bytes, message_id: str) -> bytes:
    """Serialized Envelope bytes with `message_id` (< 128 bytes) appended: a protobuf parser keeps the last."""
    data = message_id.encode()
    if len(data) > 127:
        raise ValueError(f"message id of {len(data)} bytes: at most 127 here (a one-byte length)")
    return envelope + _MESSAGE_ID_TAG + bytes([len(data)]) + data


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pki", required=True, help="the network PKI folder (DIR/pki)")
    parser.add_argument("--target", required=True, help="host:port of the server under test")
    parser.add_argument("--requests", required=True, help="file written by write_requests()")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="calls in flight")
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS, help="measured time")
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_S, help="unmeasured time first")
    args = parser.parse_args(argv)
    figures = asyncio.run(
        run_load(
            Path(args.pki),
            args.target,
            read_requests(Path(args.requests)),
            concurrency=args.concurrency,
            seconds=args.seconds,
            warmup_s=args.warmup,
        )
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
