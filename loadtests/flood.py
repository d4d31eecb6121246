"""A flooding client: one sender (or a few) sending as fast as it can, recording how it was turned away.

    python -m loadtests.flood --pki DIR/pki --target ADDR --requests FILE --concurrency C --seconds S --out FILE

Keeps `concurrency` calls in flight (closed loop, no pause, retry advice ignored: a flood), or
with --rate sends that many calls per second answered or not (open loop), for `seconds`, over
`channels` channels per identity, and writes one JSON object to --out. Each Exchange call gets
a message id of its own (the envelope's, plus "~N"), so that the core handles every admitted
call rather than answering a resend from its memory.
    {"calls": N, "ok": N, "codes": {"RESOURCE_EXHAUSTED": N, ...},
     "refusals": [[code, audit_index or null, retry_after_ms or null, advice_in_message], ...],
     "ok_ms": [latency of each OK call, ms], "refused_ms": [latency of each refusal, ms],
     "details": {"CODE: what the refusal said (numbers as N)": N, ...},
     "started": time.monotonic() at the start, "ended": ... once the last call came back}
The requests file is the load generator's (loadtests.loadgen.write_requests). Run it in a process
of its own, so that the flood and the server under test never share an event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from crossroads.admission import retry_after_of
from crossroads.exchange import audit_index_of
from crossroads.methods import EXCHANGE as EXCHANGE_METHOD
from crossroads.pki import channel_credentials
from loadtests.loadgen import Prepared, read_requests, with_message_id

__all__ = ["FloodResult", "flood", "main"]

CALL_TIMEOUT_S = 30.0
DETAIL_CHARS = 60


def _digits_out(text: str) -> str:
    """`text` with its numbers spelled N, so that refusals that say the same thing count together."""
    return re.sub(r"\d+", "N", text)


@dataclass
class FloodResult:
    """What a flood got back, call by call (see the module docstring for the JSON form)."""

    calls: int = 0
    ok: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    refusals: list[tuple[str, int | None, int | None, bool]] = field(default_factory=list)
    ok_ms: list[float] = field(default_factory=list)
    refused_ms: list[float] = field(default_factory=list)
    details: dict[str, int] = field(default_factory=dict)  # how many refusals said what (first DETAIL_CHARS)
    started: float = 0.0  # time.monotonic() (system-wide on Linux: comparable across processes)
    ended: float = 0.0

    def record_error(self, exc: Any, elapsed_ms: float) -> None:
        code = exc.code().name if isinstance(exc, aio.AioRpcError) else "UNKNOWN"
        trailing = exc.trailing_metadata() if isinstance(exc, aio.AioRpcError) else None
        advice = "retry after" in (exc.details() or "") if isinstance(exc, aio.AioRpcError) else False
        self.codes[code] = self.codes.get(code, 0) + 1
        said = (
            f"{code}: {_digits_out(exc.details() or '')[:DETAIL_CHARS]}" if isinstance(exc, aio.AioRpcError) else code
        )
        self.details[said] = self.details.get(said, 0) + 1
        self.refusals.append((code, audit_index_of(trailing), retry_after_of(trailing), advice))
        self.refused_ms.append(elapsed_ms)

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


async def flood(
    pki: Path,
    target: str,
    requests: Sequence[Prepared],
    *,
    concurrency: int,
    seconds: float,
    channels: int = 1,
    rate: float | None = None,
) -> FloodResult:
    """Send `requests` (in turn) for `seconds`; what came back.

    Closed loop (`rate` None): `concurrency` calls always in flight. Open loop: `rate` calls
    per second whether or not earlier ones were answered, at most `concurrency` in flight
    (beyond, a send is skipped and not counted): a flood that does not slow down when the
    server does, so that a server that queues would hold more and more.
    """
    opened = _open_channels(pki, target, requests, channels)
    result = FloodResult(started=time.monotonic())
    send = _sender(opened, channels, requests, result)
    try:
        if rate is None:
            await _closed_loop(send, concurrency, seconds)
        else:
            await _open_loop(send, concurrency, seconds, rate)
        result.ended = time.monotonic()
    finally:
        for channel in opened.values():
            await channel.close()
    return result


_Channels = dict[tuple[str, int], aio.Channel]  # (identity, k): the k-th channel of that identity


def _open_channels(pki: Path, target: str, requests: Sequence[Prepared], channels: int) -> _Channels:
    """`channels` mutual-TLS channels to `target` for each identity that sends one of `requests`."""
    identities = sorted({r.identity for r in requests})
    # a local subchannel pool per channel: else gRPC shares one connection among equal channels
    options = [("grpc.use_local_subchannel_pool", 1)]
    return {
        (i, k): aio.secure_channel(target, channel_credentials(pki, i), options=options)
        for i in identities
        for k in range(channels)
    }


def _sender(
    opened: _Channels, channels: int, requests: Sequence[Prepared], result: FloodResult
) -> Callable[[int], Awaitable[None]]:
    """`send(i)`: request i (in turn) on channel i of its identity's `channels`, its answer recorded in `result`."""
    callables = {key: {m: c.unary_unary(m) for m in {r.method for r in requests}} for key, c in opened.items()}
    run_id = f"flood{time.time_ns():x}"

    async def send(i: int) -> None:
        request = requests[i % len(requests)]
        call = callables[(request.identity, i % channels)][request.method]
        result.calls += 1
        fresh = request.method == EXCHANGE_METHOD  # the core answers a message id once: each call its own
        body = with_message_id(request.body, f"{run_id}-{result.calls}") if fresh else request.body
        started = time.perf_counter()
        try:
            await call(body, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            result.record_error(exc, (time.perf_counter() - started) * 1000)
            return
        result.ok += 1
        result.ok_ms.append((time.perf_counter() - started) * 1000)

    return send


async def _closed_loop(send: Callable[[int], Awaitable[None]], concurrency: int, seconds: float) -> None:
    stop_at = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        i = offset
        while time.perf_counter() < stop_at:
            await send(i)
            i += concurrency

    await asyncio.gather(*(worker(k) for k in range(concurrency)))


async def _open_loop(send: Callable[[int], Awaitable[None]], most: int, seconds: float, rate: float) -> None:
    started = time.perf_counter()
    in_flight: set[asyncio.Task[None]] = set()
    due = 0
    while (elapsed := time.perf_counter() - started) < seconds:
        while due <= elapsed * rate:  # catch up in bursts: asyncio.sleep is coarser than 1/rate
            if len(in_flight) < most:
                task = asyncio.ensure_future(send(due))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            due += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*in_flight)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pki", required=True, type=Path, help="the network PKI folder (DIR/pki)")
    parser.add_argument("--target", required=True, help="host:port of the core")
    parser.add_argument("--requests", required=True, type=Path, help="file written by loadtests.loadgen.write_requests")
    parser.add_argument("--concurrency", type=int, default=200, help="calls in flight")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to flood")
    parser.add_argument("--channels", type=int, default=1, help="channels (connections) per identity")
    parser.add_argument(
        "--rate", type=float, help="open loop: calls per second, answered or not (default: closed loop)"
    )
    parser.add_argument("--out", required=True, type=Path, help="write the JSON result here")
    args = parser.parse_args(argv)
    result = asyncio.run(
        flood(
            args.pki,
            args.target,
            read_requests(args.requests),
            concurrency=args.concurrency,
            seconds=args.seconds,
            channels=args.channels,
            rate=args.rate,
        )
    )
    args.out.write_text(json.dumps(result.as_json()), encoding="utf-8")


if __name__ == "__main__":
    main()
