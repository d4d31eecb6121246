"""Forwarding to agency hosts: one mutual-TLS channel per host, reused by every message.

The core knows agencies only as addresses (DIR/hosts.json, written before it starts):
    {"hosts": [{"name": "host-0", "address": "127.0.0.1:PORT", "agencies": ["ONSS", ...]}, ...]}
Each host answers `crossroads.v1.Agency/Deliver(Forward) -> AgencyReply` for many agencies.

`deliver_raw` sends already-serialized `Forward` bytes (the outbox stores exactly those) and
raises one `ForwardError` subclass per way a delivery can fail, so the caller can tell a host
that is down (queue it) from one that answered with an error (do not). Channels are created
lazily, on first use, so that they belong to the running event loop (and to the process after
any fork).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import grpc

from crossroads.domain import AgencyId
from crossroads.methods import DELIVER
from protos import messages_pb2

__all__ = [
    "LOOPBACK_HTTP2_OPTIONS",
    "AgencyFailed",
    "AgencyTimeout",
    "AgencyUnavailable",
    "ForwardError",
    "Forwarder",
    "HostsFileError",
    "NoHost",
    "load_hosts",
]

# HTTP/2 settings for the testbed's own hops (all on loopback). BDP probing pings the peer as
# data arrives to size flow-control windows for long fat links; on loopback it only adds a
# PING and its ACK to a call now and then: ~10-20 us of CPU per call on each side (measured
# on the raw proxy and the agency host). It changes no semantics.
LOOPBACK_HTTP2_OPTIONS: tuple[tuple[str, Any], ...] = (("grpc.http2.bdp_probe", 0),)
# A host that was down must be reachable again within a second or two of coming back, not
# after gRPC's default reconnect backoff (which grows to two minutes).
_CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
    *LOOPBACK_HTTP2_OPTIONS,
)


class HostsFileError(ValueError):
    """hosts.json is unreadable or malformed; the message names the file and the JSON path."""


class ForwardError(Exception):
    """A delivery to `agency` did not get an answer."""

    def __init__(self, agency: str, detail: str) -> None:
        super().__init__(f"{agency}: {detail}")
        self.agency = agency
        self.detail = detail


class NoHost(ForwardError):
    """No host serves this agency (it is not in hosts.json)."""


class AgencyUnavailable(ForwardError):
    """The agency's host could not be reached (gRPC UNAVAILABLE): worth retrying later."""


class AgencyTimeout(ForwardError):
    """The host did not answer before the deadline (DEADLINE_EXCEEDED); it may have got it."""


class AgencyFailed(ForwardError):
    """The host answered with an error status other than the two above."""


def load_hosts(path: Path) -> dict[AgencyId, str]:
    """agency id -> host address ("127.0.0.1:PORT") from a hosts.json file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        hosts = data["hosts"]
        result: dict[AgencyId, str] = {}
        for i, host in enumerate(hosts):
            address = host["address"]
            if not isinstance(address, str) or ":" not in address:
                raise HostsFileError(f"{path}: $.hosts[{i}].address: expected HOST:PORT, got {address!r}")
            for agency in host["agencies"]:
                result[AgencyId(str(agency))] = address
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, HostsFileError):
            raise
        raise HostsFileError(f"{path}: expected {{'hosts': [{{'address', 'agencies'}}, ...]}}: {exc!r}") from exc
    return result


class Forwarder:
    """Delivers `Forward` messages to the hosts of agencies, one reused channel per host."""

    def __init__(self, hosts: Mapping[AgencyId, str], credentials: grpc.ChannelCredentials) -> None:
        self._hosts = dict(hosts)
        self._credentials = credentials
        self._channels: dict[str, tuple[Any, Any]] = {}  # address -> (channel, Deliver call)
        self._calls: dict[str, Any] = {}

    def knows(self, agency: str) -> bool:
        return agency in self._hosts

    async def deliver(
        self, destination: AgencyId, forward: messages_pb2.Forward, timeout: float
    ) -> messages_pb2.AgencyReply:
        """Deliver `forward` to `destination`'s host within `timeout` seconds; see `deliver_raw`."""
        return await self.deliver_raw(destination, forward.SerializeToString(), timeout)

    async def deliver_raw(self, destination: AgencyId, data: bytes, timeout: float) -> messages_pb2.AgencyReply:
        """Send the serialized `Forward` `data` to the host of `destination`; its reply.

        Raises NoHost, AgencyUnavailable, AgencyTimeout or AgencyFailed; never anything else
        for a failed call.
        """
        call = self._calls.get(destination)
        if call is None:
            call = self._call_for(destination)
        try:
            reply: messages_pb2.AgencyReply = await call(data, timeout=timeout)
        except grpc.aio.AioRpcError as exc:
            raise _error(destination, exc) from None
        return reply

    def _call_for(self, agency: AgencyId) -> Any:
        address = self._hosts.get(agency)
        if address is None:
            raise NoHost(agency, "no host serves this agency (not in hosts.json)")
        pair = self._channels.get(address)
        if pair is None:
            channel = grpc.aio.secure_channel(address, self._credentials, options=_CHANNEL_OPTIONS)
            call = channel.unary_unary(
                DELIVER,
                request_serializer=None,  # the bytes are already a serialized Forward
                response_deserializer=messages_pb2.AgencyReply.FromString,
                _registered_method=True,
            )
            pair = self._channels[address] = (channel, call)
        self._calls[agency] = pair[1]
        return pair[1]

    async def close(self) -> None:
        """Close every channel (calls in flight are cancelled)."""
        channels, self._channels, self._calls = self._channels, {}, {}
        for channel, _ in channels.values():
            await channel.close()


def _error(agency: str, exc: Any) -> ForwardError:
    code = exc.code()
    detail = f"{code.name}: {exc.details()}"
    if code == grpc.StatusCode.UNAVAILABLE:
        return AgencyUnavailable(agency, detail)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return AgencyTimeout(agency, detail)
    return AgencyFailed(agency, detail)
