"""Reaching a target over a real socket: mutual-TLS channels, a started agency host, gRPC errors as answers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from agencies.host import RunningHost, start_host
from crossroads.exchange import AUDIT_INDEX_KEY
from crossroads.pki import NetworkPki, channel_credentials_from
from loadtests.fuzz.checks import _Answer
from loadtests.fuzz.world import HOST, FuzzWorld


class _Channels:
    """One mutual-TLS channel per client identity, issued on first use from the network CA."""

    def __init__(self, pki: Path, address: str) -> None:
        self._pki = NetworkPki.open(pki)
        self._address = address
        self._channels: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        channel = self._channels.get(name)
        if channel is None:
            credentials = channel_credentials_from(self._pki.issue(name), self._pki.ca_pem())
            channel = self._channels[name] = grpc.aio.secure_channel(self._address, credentials)
        return channel

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


async def _start_host(world: FuzzWorld, state: Path) -> RunningHost:
    return await start_host(state, HOST, world.agencies, world.seed)


def _hosts_json(state: Path, host: RunningHost, agencies: Sequence[str]) -> None:
    hosts = [{"name": HOST, "address": host.address, "agencies": list(agencies)}]
    (state / "hosts.json").write_text(json.dumps({"hosts": hosts}), encoding="utf-8")


def _rpc_error(exc: grpc.aio.AioRpcError) -> _Answer:
    trailing = exc.trailing_metadata()
    index = trailing.get(AUDIT_INDEX_KEY) if trailing is not None else None
    code = exc.code()
    status = "HANG" if code == grpc.StatusCode.DEADLINE_EXCEEDED else code.name
    return _Answer(status, exc.details() or "", int(index) if index is not None else None)
