"""Admission control: who may start an exchange now. Per-agency rate limits and quotas, and load shedding.

Every call to Crossroads/Exchange passes `Admission.enter(agency)` before the exchange is
handled, and `leave(agency)` once it is answered. Three limits, checked in this order:
1. a token bucket per authenticated sender (`Limit.rate` calls/s, bursts of `Limit.burst`):
   over it, RESOURCE_EXHAUSTED (audit outcome THROTTLED) with the time when a token will be
   there again as retry advice;
2. a quota of exchanges in flight per sender (`Limit.in_flight`): a sender waiting on slow
   agencies cannot hold the whole core; over it, RESOURCE_EXHAUSTED (THROTTLED);
3. a bound on the exchanges in flight in the whole core (`max_in_flight`): beyond it the core
   is overloaded and answers UNAVAILABLE at once (SHED), rather than queueing without bound.
Only admitted calls take a token. Retry advice is in milliseconds, in the refusal's message
and in trailing metadata RETRY_AFTER_KEY.

Limits come from an `AdmissionPolicy`: a default, per agency category, per agency (the most
specific wins). The defaults are meant never to bind in normal load (the core's whole capacity
is ~3k exchanges/s on the 2-core machine, spread over hundreds of senders) and to cut off one
sender that floods: an agency gets at most ~1/6 of the core's capacity, the access points
(portal, batch channel), which carry many employers' and citizens' traffic, ~2/3.
A policy file (JSON, `AdmissionPolicy.load`):
    {"default": {"rate": 500, "burst": 1000, "in_flight": 128},
     "categories": {"portal": {"rate": 2000}},
     "agencies": {"CPAS-1": {"rate": 5, "burst": 5, "in_flight": 2}}}
where a limit that names only some fields takes the others from the default.

Cost: `enter` + `leave` are a monotonic clock read, two dict lookups and a few float
operations, with no locks (the core's event loop is the only caller); docs/PERFORMANCE.md has
the measured figure.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import grpc

from crossroads.outcomes import AuditOutcome

__all__ = [
    "DEFAULT_AGENCY_IN_FLIGHT",
    "DEFAULT_BURST",
    "DEFAULT_BUSY_RETRY_MS",
    "DEFAULT_CATEGORY_LIMITS",
    "DEFAULT_LIMIT",
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_RATE",
    "LIMITS_FILE",
    "RETRY_AFTER_KEY",
    "Admission",
    "AdmissionConfigError",
    "AdmissionPolicy",
    "Limit",
    "Turned",
    "retry_after_of",
]

# Every default of admission control, in one place.
DEFAULT_RATE = 500.0  # calls per second per sender: ~1/6 of the core's capacity
DEFAULT_BURST = 1000.0  # calls a sender may send at once after a quiet spell
DEFAULT_AGENCY_IN_FLIGHT = 128  # exchanges in flight per sender
# Exchanges in flight in the whole core. By Little's law the time a call waits in the core is
# about in-flight / throughput: 1,024 at ~2.8k/s is ~0.35 s, well within the senders' patience
# and the forward deadline, while the core saturates from ~128 in flight (see crossroads.server).
DEFAULT_MAX_IN_FLIGHT = 1024
DEFAULT_BUSY_RETRY_MS = 100  # advice when a quota or the core is full: no better estimate is at hand
RETRY_AFTER_KEY = "retry-after-ms"  # trailing metadata of a THROTTLED or SHED refusal
LIMITS_FILE = "limits.json"  # in the state folder: the core's policy, if present


class AdmissionConfigError(ValueError):
    """A limit or policy file is wrong; the message names the field (JSON path) and what was expected."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limit:
    """What one sender may do: `rate` calls/s with bursts of `burst`, `in_flight` exchanges at once."""

    rate: float = DEFAULT_RATE
    burst: float = DEFAULT_BURST
    in_flight: int = DEFAULT_AGENCY_IN_FLIGHT

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and self.rate > 0):
            raise AdmissionConfigError(f"rate: expected calls per second > 0, got {self.rate!r}")
        if not (math.isfinite(self.burst) and self.burst >= 1):
            raise AdmissionConfigError(f"burst: expected a number of calls >= 1, got {self.burst!r}")
        if self.in_flight < 1:
            raise AdmissionConfigError(f"in_flight: expected an integer >= 1, got {self.in_flight!r}")


DEFAULT_LIMIT = Limit()
_ACCESS_POINT = Limit(rate=2000.0, burst=4000.0, in_flight=512)
# The access points send for many employers and citizens under one identity (agencies.catalogue).
DEFAULT_CATEGORY_LIMITS: Mapping[str, Limit] = MappingProxyType(
    {"portal": _ACCESS_POINT, "batch_channel": _ACCESS_POINT}
)


def _frozen(mapping: Mapping[str, Limit]) -> Mapping[str, Limit]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, kw_only=True)
class AdmissionPolicy:
    """The limits of every sender: per agency, else per category, else `default`."""

    default: Limit = DEFAULT_LIMIT
    categories: Mapping[str, Limit] = field(default_factory=lambda: DEFAULT_CATEGORY_LIMITS)
    agencies: Mapping[str, Limit] = field(default_factory=lambda: _frozen({}))

    def limit_for(self, agency: str, category: str | None) -> Limit:
        """The limit of `agency` (of `category`, None if unknown): the most specific one given."""
        found = self.agencies.get(agency)
        if found is None and category is not None:
            found = self.categories.get(category)
        return self.default if found is None else found

    @classmethod
    def from_mapping(cls, data: object, where: str) -> AdmissionPolicy:
        """Validate a policy read from JSON (see the module docstring), then build it.

        Categories given are added to (or replace) DEFAULT_CATEGORY_LIMITS. AdmissionConfigError
        names `where` and the JSON path of the first problem.
        """
        top = _object(data, where, ("default", "categories", "agencies"))
        default = _limit(top.get("default", {}), f"{where}.default", DEFAULT_LIMIT)
        categories = dict(DEFAULT_CATEGORY_LIMITS)
        for name, value in _object(top.get("categories", {}), f"{where}.categories").items():
            categories[name] = _limit(value, f"{where}.categories.{name}", default)
        agencies = {
            name: _limit(value, f"{where}.agencies.{name}", default)
            for name, value in _object(top.get("agencies", {}), f"{where}.agencies").items()
        }
        return cls(default=default, categories=_frozen(categories), agencies=_frozen(agencies))

    @classmethod
    def load(cls, path: Path) -> AdmissionPolicy:
        """The policy in JSON file `path` (AdmissionConfigError naming the file if it is not one)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AdmissionConfigError(f"{path}: expected a JSON admission policy: {exc}") from exc
        return cls.from_mapping(data, f"{path}: $")


def _object(value: object, where: str, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AdmissionConfigError(f"{where}: expected an object, got {type(value).__name__}")
    unknown = sorted(set(value) - set(keys)) if keys is not None else []
    if unknown:
        raise AdmissionConfigError(f"{where}: unknown key {unknown[0]!r} (expected one of {', '.join(keys or ())})")
    return value


def _limit(value: object, where: str, base: Limit) -> Limit:
    fields = _object(value, where, ("rate", "burst", "in_flight"))
    for key, number in fields.items():
        wanted = int if key == "in_flight" else (int, float)
        if isinstance(number, bool) or not isinstance(number, wanted):
            raise AdmissionConfigError(f"{where}.{key}: expected a number, got {number!r}")
    try:
        return replace(base, **fields)
    except AdmissionConfigError as exc:
        raise AdmissionConfigError(f"{where}.{exc}") from None


@dataclass(frozen=True, slots=True)
class Turned:
    """A call turned away before it is handled: answer `code` with `message`, audit `outcome`."""

    outcome: AuditOutcome  # THROTTLED or SHED
    message: str
    retry_after_ms: int

    @property
    def code(self) -> grpc.StatusCode:
        return self.outcome.status_code


class _Bucket:
    """One sender's token bucket and its exchanges in flight."""

    __slots__ = ("burst", "in_flight", "quota", "rate", "stamp", "tokens")

    def __init__(self, limit: Limit, now: float) -> None:
        self.rate = limit.rate
        self.burst = limit.burst
        self.quota = limit.in_flight
        self.tokens = limit.burst  # a sender starts with a full bucket
        self.stamp = now
        self.in_flight = 0


class Admission:
    """Admission control of one core. Use from its event loop only (no locks, on purpose).

    `category_of(agency)` names an agency's category (None if unknown); it is asked once per
    sender, when its bucket is made. `clock` is monotonic seconds.
    """

    def __init__(
        self,
        policy: AdmissionPolicy,
        *,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        category_of: Callable[[str], str | None] = lambda _agency: None,
        clock: Callable[[], float] = time.monotonic,
        busy_retry_ms: int = DEFAULT_BUSY_RETRY_MS,
    ) -> None:
        if max_in_flight < 1:
            raise AdmissionConfigError(f"max_in_flight: expected an integer >= 1, got {max_in_flight!r}")
        self.policy = policy
        self.max_in_flight = max_in_flight
        self._category_of = category_of
        self._clock = clock
        self._busy_retry_ms = busy_retry_ms
        self._buckets: dict[str, _Bucket] = {}  # one per sender: bounded by the identities the CA issued
        self.in_flight = 0
        self.peak_in_flight = 0

    def enter(self, agency: str) -> Turned | None:
        """Admit one exchange from `agency` (None), or say why not (Turned). Admitted: call `leave` once done.

        Hot path: kept inline on purpose (it runs for every call the core gets).
        """
        bucket = self._buckets.get(agency)
        if bucket is None:
            bucket = self._bucket(agency)
        now = self._clock()
        tokens = bucket.tokens + (now - bucket.stamp) * bucket.rate
        if tokens > bucket.burst:
            tokens = bucket.burst
        bucket.stamp = now
        if tokens < 1.0:
            bucket.tokens = tokens
            return self._throttled(agency, bucket, tokens)
        bucket.tokens = tokens
        if bucket.in_flight >= bucket.quota:
            return self._over_quota(agency, bucket)
        if self.in_flight >= self.max_in_flight:
            return self._shed()
        bucket.tokens = tokens - 1.0
        bucket.in_flight += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        return None

    def leave(self, agency: str) -> None:
        """The exchange `enter(agency)` admitted is over (answered, refused or cancelled)."""
        self._buckets[agency].in_flight -= 1
        self.in_flight -= 1

    def in_flight_of(self, agency: str) -> int:
        """Exchanges of `agency` in flight now."""
        bucket = self._buckets.get(agency)
        return 0 if bucket is None else bucket.in_flight

    async def idle(self, timeout: float, poll: float = 0.01) -> bool:
        """Wait until no admitted exchange is in flight, at most `timeout` s; True if none is."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(poll)  # only on shutdown: polling keeps `leave` free of any wake-up
        return self.in_flight == 0

    def _bucket(self, agency: str) -> _Bucket:
        limit = self.policy.limit_for(agency, self._category_of(agency))
        bucket = self._buckets[agency] = _Bucket(limit, self._clock())
        return bucket

    def _throttled(self, agency: str, bucket: _Bucket, tokens: float) -> Turned:
        wait_ms = max(1, math.ceil((1.0 - tokens) / bucket.rate * 1000.0))
        message = (
            f"rate limit of {agency!r} exceeded ({bucket.rate:g} calls/s, bursts of {bucket.burst:g}); "
            f"retry after {wait_ms} ms"
        )
        return Turned(AuditOutcome.THROTTLED, message, wait_ms)

    def _over_quota(self, agency: str, bucket: _Bucket) -> Turned:
        wait_ms = self._busy_retry_ms
        message = f"{agency!r} has {bucket.in_flight} exchanges in flight, its quota; retry after {wait_ms} ms"
        return Turned(AuditOutcome.THROTTLED, message, wait_ms)

    def _shed(self) -> Turned:
        wait_ms = self._busy_retry_ms
        message = f"the core is overloaded ({self.in_flight} exchanges in flight); retry after {wait_ms} ms"
        return Turned(AuditOutcome.SHED, message, wait_ms)


def retry_after_of(trailing_metadata: Any) -> int | None:
    """The retry advice (ms) a THROTTLED or SHED refusal carries in its trailing metadata, if any."""
    for key, value in trailing_metadata or ():
        if key == RETRY_AFTER_KEY:
            return int(value)
    return None
