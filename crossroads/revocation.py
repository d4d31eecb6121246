"""Certificate revocation, honoured by the running core without a restart.

The TLS handshake only checks that a client certificate chains to the network CA; whether it
was revoked since is checked here, on every call, against the CRL the operator maintains
(`crossroads pki revoke NAME`, which rewrites DIR/pki/crl.pem atomically: crossroads.pki).

`Revocation.refusal(auth)` takes the call's auth context (`context.auth_context()`, read once
per call by the servicer) and returns the reason to refuse, or None. Its cost per call is a
clock read and, when anything is revoked, one dict lookup keyed by the peer's certificate PEM
(its serial is parsed once per distinct certificate); docs/PERFORMANCE.md has its measured cost.

The CRL file is looked at (one stat) at most every `check_every` seconds, from the call path:
when its modification time, size or inode changed it is read again and its signature checked
against the network CA. A CRL that does not verify, or that is older (smaller CRL number) than
the one in force, is not taken: the previous list stays in force and the reason is logged.
A CRL file that disappears also leaves the previous list in force (revocation is not undone
by deleting a file).

`guarded(servicer, revocation)` wraps a servicer (the Audit service) so that a revoked peer is
refused UNAUTHENTICATED before any of its methods runs.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509

from crossroads.pki import CRL_FILE, PkiError, RevocationList, read_crl

__all__ = ["DEFAULT_CHECK_EVERY", "Revocation", "guarded"]

DEFAULT_CHECK_EVERY = 0.5  # seconds between looks at the CRL file's modification time
MAX_CACHED_CERTIFICATES = 16_384  # distinct peer certificates whose serial is remembered (~3,000 agencies)

log = logging.getLogger(__name__)

_Stamp = tuple[int, int, int]  # (mtime ns, size, inode) of the CRL file


class Revocation:
    """The revocation list in force in the core, kept up to date from DIR/pki/crl.pem.

    Use from one event loop (no locks: the check runs between awaits).
    """

    def __init__(
        self,
        pki_dir: Path,
        *,
        check_every: float = DEFAULT_CHECK_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._path = Path(pki_dir) / CRL_FILE
        self._ca = x509.load_pem_x509_certificate((Path(pki_dir) / "ca.pem").read_bytes())
        self._check_every = check_every
        self._clock = clock
        self._next_check = 0.0
        self._stamp: _Stamp | None = None
        self._list: RevocationList | None = None
        self._revoked: frozenset[int] = frozenset()
        self._serials: dict[bytes, int] = {}  # certificate PEM -> serial
        self.reload_if_changed()  # the list in force from the first call on

    @property
    def revoked(self) -> frozenset[int]:
        """The serials revoked by the list in force (empty before any revocation)."""
        return self._revoked

    @property
    def number(self) -> int:
        """The CRL number of the list in force (0: none)."""
        return self._list.number if self._list else 0

    def refusal(self, auth: Mapping[str, Sequence[bytes]]) -> str | None:
        """Why the peer of a call with auth context `auth` must be refused, or None if it may go on.

        A call without a client certificate is not refused here (the exchange says so itself).
        Hot path: kept inline on purpose.
        """
        if self._clock() >= self._next_check:
            self.reload_if_changed()
        if not self._revoked:
            return None
        pems = auth.get("x509_pem_cert")
        if not pems:
            return None
        serial = self._serials.get(pems[0])
        if serial is None:
            serial = self._serial_of(pems[0])
        if serial in self._revoked:
            return f"certificate serial {serial:#x} revoked (CRL number {self.number})"
        return None

    def reload_if_changed(self) -> bool:
        """Look at the CRL file now; take it if it changed and verifies. True if a new list was taken."""
        self._next_check = self._clock() + self._check_every
        try:
            st = os.stat(self._path)
        except FileNotFoundError:
            if self._list is not None and self._stamp is not None:
                log.warning("CRL %s disappeared; the list in force (number %d) stays", self._path, self.number)
                self._stamp = None
            return False
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        return self._take(self._path)

    def _take(self, path: Path) -> bool:
        try:
            new = read_crl(path.read_bytes(), self._ca)
        except (OSError, PkiError) as exc:
            log.warning("CRL %s not taken, the list in force (number %d) stays: %s", path, self.number, exc)
            return False
        if self._list is not None and new.number < self._list.number:
            log.warning("CRL %s has number %d, older than %d in force: not taken", path, new.number, self.number)
            return False
        self._list, self._revoked = new, new.serials
        log.info("CRL number %d in force: %d revoked", new.number, len(new.serials))
        return True

    def _serial_of(self, pem: bytes) -> int:
        if len(self._serials) >= MAX_CACHED_CERTIFICATES:
            self._serials.clear()  # more distinct certificates than the network has: start afresh
        serial: int = x509.load_pem_x509_certificate(pem).serial_number
        self._serials[pem] = serial
        return serial


async def _refuse_if_revoked(revocation: Revocation, context: Any) -> None:
    reason = revocation.refusal(context.auth_context())
    if reason is not None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)


def _guard(method: Callable[..., Any], revocation: Revocation) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
            await _refuse_if_revoked(revocation, context)
            async for item in method(request, context):
                yield item

        return stream

    @functools.wraps(method)
    async def call(request: Any, context: Any) -> Any:
        await _refuse_if_revoked(revocation, context)
        result = method(request, context)
        return await result if inspect.isawaitable(result) else result

    return call


class _Guarded:
    """Stands in for a servicer: every public method refuses revoked peers first."""

    def __init__(self, inner: Any, revocation: Revocation) -> None:
        self._inner = inner
        self._revocation = revocation

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not callable(attribute):
            return attribute
        return _guard(attribute, revocation=self._revocation)


def guarded(servicer: Any, revocation: Revocation) -> Any:
    """`servicer` whose methods answer UNAUTHENTICATED to a peer with a revoked certificate.

    For servicers registered with a generated `add_XServicer_to_server`, which reads each
    method once at registration: the wrapping costs nothing per call beyond the check itself.
    """
    return _Guarded(servicer, revocation)
