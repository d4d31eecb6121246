"""Where the core is now, for the load generator and the audit watcher: channels that follow restarts.

Each life of the core gets fresh channels (`point_to`): a channel to a killed core would wait out
gRPC's reconnect backoff (a second and more) before it tried the new one. Calls made on the old
channels fail (UNAVAILABLE or CANCELLED) and their messages are sent again on the new ones.
Old channels are closed only at the end (`close`): a call may still be using one.
"""

from __future__ import annotations

import threading
from pathlib import Path

from loadtests.client import Call, Channels

__all__ = ["CONNECT_TIMEOUT_S", "Target"]

CONNECT_TIMEOUT_S = 1.0  # a fresh channel's first handshake; a core that is down shows on the call


class Target:
    """Mutual-TLS channels to the current core, one per identity (certificates from `pki`). Thread-safe."""

    def __init__(self, pki: Path) -> None:
        self.pki = Path(pki)
        self._lock = threading.Lock()
        self._current: Channels | None = None
        self._retired: list[Channels] = []
        self.generation = 0  # how many cores it has pointed at

    def point_to(self, address: str) -> None:
        """From now on, calls go to the core at `address` (over new channels)."""
        with self._lock:
            if self._current is not None:
                self._retired.append(self._current)
            self._current = Channels(address, self.pki)
            self.generation += 1

    def call(self, identity: str, method: str) -> Call:
        """The unary call `method` (bytes in, bytes out) as `identity` on the current core."""
        with self._lock:
            channels = self._current
        if channels is None:
            raise RuntimeError("the target has no core yet: call point_to first")
        call, _ = channels.call(identity, method, connect_timeout=CONNECT_TIMEOUT_S)
        return call

    def close(self) -> None:
        with self._lock:
            everything = [*self._retired, *([self._current] if self._current else [])]
            self._retired, self._current = [], None
        for channels in everything:
            channels.close()
