"""One open-loop sender: sends its share of a level when each request is due, answered or not.

It opens one mutual-TLS channel per sender identity and connects them all before the schedule
starts (so that no TLS handshake falls inside it), then hands each request to gRPC at its
intended time, or as soon as it can when it is behind. A request's latency runs from its
intended time, not from when it was sent: a sender that falls behind makes latency worse, it
does not hide it (no coordinated omission), and its lag is recorded per request.

Arrival i of sender k (of K) is prepared request (i * K + k) modulo their number; an Exchange
carries message id RUN-k-i, RUN unique per level: the core handles every call instead of
answering a resend from its exactly-once register.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
from grpc import aio
from numpy.typing import NDArray

from crossroads.pki import channel_credentials
from loadtests.level import NOT_SENT, RECORD, Level
from loadtests.prepared import Prepared, fresh_body

__all__ = ["CONNECT_TIMEOUT_S", "LoadgenError", "SenderPart", "send_part"]

CONNECT_TIMEOUT_S = 30.0  # every channel of a sender connects before its schedule starts
YIELD_EVERY = 64  # a sender behind schedule still lets the calls in flight run, every so many sends
_UNKNOWN = grpc.StatusCode.UNKNOWN.value[0]


class LoadgenError(RuntimeError):
    """The load generator could not run a level (no connection, a sender process failed)."""


@dataclass(frozen=True)
class SenderPart:
    """What one sender sends: its share `k` of `level`, as run `run_id`, to `target`."""

    pki: Path
    target: str
    requests: tuple[Prepared, ...]
    level: Level
    k: int
    run_id: str


def send_part(part: SenderPart, start_at: Callable[[], float]) -> tuple[NDArray[np.void], float]:
    """Connect, then send `part` with its schedule starting at the time.monotonic() instant
    `start_at()` returns (it may block: a child process waits there for its siblings).

    Returns one RECORD per scheduled request and the CPU seconds this process spent from the
    start to the last answer. Runs its own event loop: not from inside a running one.
    LoadgenError if the channels do not connect within CONNECT_TIMEOUT_S.
    """
    return asyncio.run(_send_part(part, start_at))


async def _send_part(part: SenderPart, start_at: Callable[[], float]) -> tuple[NDArray[np.void], float]:
    identities = sorted({r.identity for r in part.requests})
    channels = {i: aio.secure_channel(part.target, channel_credentials(part.pki, i)) for i in identities}
    try:
        await _connect(part.target, channels)
        t0 = await asyncio.to_thread(start_at)
        cpu = time.process_time()
        records = await _send(part, channels, t0)
        return records, time.process_time() - cpu
    finally:
        for channel in channels.values():
            await channel.close()


async def _connect(target: str, channels: dict[str, aio.Channel]) -> None:
    ready = asyncio.gather(*(c.channel_ready() for c in channels.values()))
    try:
        await asyncio.wait_for(ready, CONNECT_TIMEOUT_S)
    except TimeoutError as exc:
        raise LoadgenError(f"could not connect to {target} within {CONNECT_TIMEOUT_S:g} s") from exc


async def _send(part: SenderPart, channels: dict[str, aio.Channel], t0: float) -> NDArray[np.void]:
    level, k, requests = part.level, part.k, part.requests
    intended = level.schedule(k)
    n = intended.size
    due = (t0 + level.warmup_s + intended).tolist()  # the time.monotonic() at which each is due
    lag, latency, code = [math.nan] * n, [math.nan] * n, [NOT_SENT] * n
    callables = {(r.identity, r.method): channels[r.identity].unary_unary(r.method) for r in requests}
    in_flight: set[asyncio.Task[None]] = set()

    async def one(i: int, call: aio.UnaryUnaryMultiCallable, body: bytes) -> None:
        lag[i] = time.monotonic() - due[i]  # handed to gRPC now
        try:
            await call(body, timeout=level.timeout_s)
            code[i] = 0
        except grpc.RpcError as exc:
            code[i] = exc.code().value[0] if isinstance(exc, aio.AioRpcError) else _UNKNOWN
        latency[i] = time.monotonic() - due[i]

    for i in range(n):
        if (ahead := due[i] - time.monotonic()) > 0:
            await asyncio.sleep(ahead)
        elif i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        if len(in_flight) >= level.max_in_flight:
            continue  # stays NOT_SENT
        request = requests[(i * level.processes + k) % len(requests)]
        task = asyncio.create_task(
            one(i, callables[(request.identity, request.method)], fresh_body(request, f"{part.run_id}-{k}-{i}"))
        )
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    await asyncio.gather(*in_flight)
    records = np.empty(n, dtype=RECORD)
    records["intended_s"], records["latency_s"], records["lag_s"] = intended, latency, lag
    records["code"], records["process"] = code, k
    return records
