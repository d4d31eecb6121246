"""Citizens acting through the portal: the authentication service's assertions, and the core's gate.

Citizens authenticate with their eID card or, through the federal authentication service
(CSAM/FAS), other keys (DOMAIN.md). The testbed's synthetic FAS holds an Ed25519 key pair
(`PKI/fas/fas.key`, `PKI/fas/fas.pub`); after a citizen authenticated, it signs a short-lived
`CitizenAssertion` (protos/messages.proto): this NISS, until `expires`, for this `audience`
(the access point that will present it, e.g. "PORTAL"). The portal attaches it to what it
sends on the citizen's behalf: `Envelope.citizen`, `WhoAccessedRequest.citizen`.

The core holds a `CitizenGate` (the FAS public key, and the access points: the identities a
deliberation grants purpose CITIZEN_PURPOSE). Its rules, each a `routing.Denied` whose rule
names what was wrong (PERMISSION_DENIED, audited as DENIED by the exchange):
- an exchange with purpose CITIZEN_PURPOSE passes only with a valid assertion, unexpired, not
  expiring more than MAX_LIFETIME ahead, addressed to the sender's certificate identity, for
  the one person the exchange names;
- an assertion on any other purpose is refused: the core forwards the envelope's bytes as they
  are, so an ignored assertion would still reach agencies that have no business with the
  citizen's authentication, and a sender attaching one is confused about whom it acts for;
- who-accessed a NISS: only an access point, with such an assertion for that NISS. Nobody
  else: the operator reads the log on its own disk (`crossroads audit who-accessed`), and a
  network identity allowed to list anyone's accesses would be a standing hole.
Verifying an Ed25519 signature costs ~50-70 us, so verified assertions are kept in a bounded
LRU keyed by their exact bytes; expiry, audience and person are checked on every call.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from crossroads.atomic_file import write_atomic
from crossroads.domain import AgencyId, Knowledge, Purpose
from crossroads.identifiers import Niss, niss_problem
from crossroads.routing import Denied, Request
from protos import messages_pb2

__all__ = [
    "CITIZEN_PURPOSE",
    "DEFAULT_CACHE",
    "DEFAULT_MEANS",
    "DEFAULT_TTL",
    "MAX_ASSERTION_BYTES",
    "MAX_LIFETIME",
    "Citizen",
    "CitizenGate",
    "Fas",
    "FasError",
    "citizen_access_points",
    "ensure_fas",
    "fas_paths",
    "issue_assertion",
    "signed_text",
    "verify_assertion",
]

CITIZEN_PURPOSE = Purpose("citizen_access")  # the deliberations say it: agencies.authorizations
DEFAULT_TTL = 600  # seconds an assertion lives: a portal session, not a standing credential
MAX_LIFETIME = 3600  # seconds ahead an expiry may lie: a longer-lived bearer token is refused
DEFAULT_CACHE = 16_384  # verified assertions kept (~300 bytes each)
DEFAULT_MEANS = "eid"
MAX_ASSERTION_BYTES = 512  # serialized; a well-formed assertion is ~140 bytes
MAX_ID, MAX_AUDIENCE, MAX_MEANS = 64, 64, 32
SIGNATURE_BYTES = 64
FAS_DIR, FAS_KEY, FAS_PUBLIC = "fas", "fas.key", "fas.pub"
_CONTEXT = b"crossroads.v1.CitizenAssertion\n"  # domain separation: this key signs nothing else

# the rules a refusal names
NO_FAS = "citizen_no_fas_key"
NOT_ACCESS_POINT = "citizen_not_access_point"
NO_ASSERTION = "citizen_no_assertion"
MALFORMED = "citizen_assertion_malformed"
FORGED = "citizen_assertion_forged"
EXPIRED = "citizen_assertion_expired"
TOO_LONG = "citizen_assertion_too_long"
NOT_ADDRESSED = "citizen_assertion_not_for_sender"
OTHER_PERSON = "citizen_other_person"
UNEXPECTED = "citizen_assertion_unexpected"


class FasError(Exception):
    """The FAS key is missing or unusable (the message names the file)."""


@dataclass(frozen=True, slots=True)
class Citizen:
    """What a verified assertion states."""

    niss: Niss
    expires: int  # UNIX seconds; valid strictly before
    audience: AgencyId
    assertion_id: str
    means: str


# ---------------------------------------------------------------- the assertion itself (pure)
def signed_text(niss: str, expires: int, audience: str, assertion_id: str, means: str) -> bytes:
    """The bytes the FAS signs. Injective for fields without line breaks, which `verify_assertion` demands."""
    return _CONTEXT + f"{niss}\n{expires}\n{audience}\n{assertion_id}\n{means}".encode()


def issue_assertion(
    key: Ed25519PrivateKey,
    niss: str,
    now: float,
    ttl: int = DEFAULT_TTL,
    *,
    audience: str,
    assertion_id: str | None = None,
    means: str = DEFAULT_MEANS,
) -> messages_pb2.CitizenAssertion:
    """The FAS's signed statement that citizen `niss` authenticated, valid `ttl` seconds from `now`.

    `assertion_id` None draws a random one (the OS generator, as for keys). ValueError if a
    field would make an assertion the gate refuses as malformed.
    """
    expires = int(now) + ttl
    ident = secrets.token_hex(8) if assertion_id is None else assertion_id
    assertion = messages_pb2.CitizenAssertion(
        niss=niss, expires=expires, audience=audience, assertion_id=ident, means=means
    )
    problem = _shape_problem(assertion, signed=False)
    if problem is not None or ttl <= 0:
        raise ValueError(problem or f"ttl must be positive, got {ttl}")
    assertion.signature = key.sign(signed_text(niss, expires, audience, ident, means))
    return assertion


def verify_assertion(key: Ed25519PublicKey, assertion: messages_pb2.CitizenAssertion) -> Citizen | Denied:
    """What `assertion` states if it is well-formed and `key` signed it, else the rule it breaks.

    Checks no clock, audience or person: `CitizenGate` does, on every use.
    """
    problem = _shape_problem(assertion, signed=True)
    if problem is not None:
        return Denied(MALFORMED, problem)
    a = assertion
    try:
        key.verify(a.signature, signed_text(a.niss, a.expires, a.audience, a.assertion_id, a.means))
    except InvalidSignature:
        return Denied(FORGED, "the signature is not the FAS's over these fields (forged or altered)")
    return Citizen(Niss(a.niss), a.expires, AgencyId(a.audience), a.assertion_id, a.means)


def _shape_problem(a: messages_pb2.CitizenAssertion, *, signed: bool) -> str | None:
    problem = niss_problem(a.niss)
    if problem is not None:
        return f"niss: {problem[:80]}"
    if a.expires <= 0:
        return f"expires must be positive UNIX seconds, got {a.expires}"
    for name, value, most, least in (
        ("audience", a.audience, MAX_AUDIENCE, 1),
        ("assertion_id", a.assertion_id, MAX_ID, 0),
        ("means", a.means, MAX_MEANS, 0),
    ):
        if not least <= len(value) <= most or not value.isprintable():
            return f"{name} must be {least}..{most} printable characters"
    if signed and len(a.signature) != SIGNATURE_BYTES:
        return f"signature must be {SIGNATURE_BYTES} bytes, got {len(a.signature)}"
    return None


def _judge(citizen: Citizen, niss: str, peer: str, now: float) -> Denied | None:
    """Whether a verified assertion lets `peer` act now for the person `niss` (pure)."""
    if now >= citizen.expires:
        return Denied(EXPIRED, f"the assertion expired at {_utc(citizen.expires)} (now {_utc(now)})")
    if citizen.expires > now + MAX_LIFETIME:
        return Denied(TOO_LONG, f"the assertion expires {_utc(citizen.expires)}, over {MAX_LIFETIME} s ahead")
    if citizen.audience != peer:
        return Denied(NOT_ADDRESSED, f"the assertion is for {citizen.audience!r} to present, not {peer!r}")
    if citizen.niss != niss:
        return Denied(OTHER_PERSON, f"the assertion is for citizen {citizen.niss}, not for {niss}")
    return None


def _utc(seconds: float) -> str:
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):  # int64 reaches far past the year 9999
        return f"{seconds} UNIX seconds"


def citizen_access_points(knowledge: Knowledge) -> frozenset[AgencyId]:
    """The agencies some deliberation grants purpose CITIZEN_PURPOSE: those that act for citizens."""
    categories = {c for d in knowledge.deliberations if CITIZEN_PURPOSE in d.purposes for c in d.requesters}
    return frozenset(x for c in categories for x in knowledge.by_category.get(c, ()))


# ---------------------------------------------------------------- the core's gate
class CitizenGate:
    """The core's check of citizen assertions. Not thread-safe: use it from one event loop.

    `public_key` None (the network has no FAS) refuses every citizen act (NO_FAS).
    """

    def __init__(
        self, public_key: Ed25519PublicKey | None, access_points: Iterable[str], *, cache_size: int = DEFAULT_CACHE
    ) -> None:
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self._key = public_key
        self.access_points = frozenset(access_points)
        self._cache: OrderedDict[bytes, Citizen] = OrderedDict()
        self._cache_size = cache_size

    @classmethod
    def load(cls, pki_dir: Path, knowledge: Knowledge, *, cache_size: int = DEFAULT_CACHE) -> CitizenGate:
        """The gate for the network whose PKI is `pki_dir` (its FAS public key, if any) and `knowledge`."""
        public = fas_paths(pki_dir)[1]
        key = _load_public(public) if public.exists() else None
        return cls(key, citizen_access_points(knowledge), cache_size=cache_size)

    @property
    def cached(self) -> int:
        """How many verified assertions are kept."""
        return len(self._cache)

    def check_exchange(self, env: messages_pb2.Envelope, request: Request, now: float) -> Denied | None:
        """None if the exchange may go on as far as citizens are concerned, else the rule it breaks.

        `request` is the validated envelope (its sender from the certificate); `now` UNIX seconds.
        """
        carries = env.HasField("citizen")
        if request.purpose != CITIZEN_PURPOSE:
            if not carries:  # the common case: one field test
                return None
            return Denied(UNEXPECTED, f"a citizen assertion travels only with purpose {CITIZEN_PURPOSE}")
        if len(request.subjects) != 1:
            return Denied(OTHER_PERSON, f"a citizen's exchange names the citizen alone, not {len(request.subjects)}")
        return self._admit(env.citizen if carries else None, request.subjects[0], request.sender, now)

    def check_who_accessed(
        self, peer: str | None, niss: str, assertion: messages_pb2.CitizenAssertion | None, now: float
    ) -> Denied | None:
        """None if `peer` may list who accessed `niss` (a well-formed NISS), else the rule it breaks."""
        return self._admit(assertion, niss, peer, now)

    def _admit(
        self, assertion: messages_pb2.CitizenAssertion | None, niss: str, peer: str | None, now: float
    ) -> Denied | None:
        """Whether `peer` may act now for citizen `niss` on the strength of `assertion`."""
        if peer is None or peer not in self.access_points:
            who = "a caller without a client certificate" if peer is None else repr(peer)
            return Denied(NOT_ACCESS_POINT, f"{who} is no citizen access point (no deliberation grants it)")
        if assertion is None:
            return Denied(NO_ASSERTION, f"acting for citizen {niss} needs their FAS assertion (field citizen)")
        verified = self._verified(assertion)
        if isinstance(verified, Denied):
            return verified
        return _judge(verified, niss, peer, now)

    def _verified(self, assertion: messages_pb2.CitizenAssertion) -> Citizen | Denied:
        if self._key is None:
            return Denied(NO_FAS, "the core has no FAS public key, so no citizen assertion can be checked")
        raw = assertion.SerializeToString()  # the same bytes state the same fields: a safe cache key
        found = self._cache.get(raw)
        if found is not None:
            self._cache.move_to_end(raw)
            return found
        if len(raw) > MAX_ASSERTION_BYTES:
            return Denied(MALFORMED, f"{len(raw)} bytes, more than {MAX_ASSERTION_BYTES}")
        verified = verify_assertion(self._key, assertion)
        if isinstance(verified, Citizen) and self._cache_size:
            self._cache[raw] = verified
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return verified


# ---------------------------------------------------------------- the synthetic FAS's key
def fas_paths(pki_dir: Path) -> tuple[Path, Path]:
    """Where the FAS's private key (PKCS#8 PEM) and public key (SubjectPublicKeyInfo PEM) are kept."""
    folder = Path(pki_dir) / FAS_DIR
    return folder / FAS_KEY, folder / FAS_PUBLIC


class Fas:
    """The synthetic federal authentication service: signs assertions for citizens who authenticated."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self.key = key

    @classmethod
    def open(cls, pki_dir: Path) -> Fas:
        """The FAS of the network whose PKI is `pki_dir`; FasError if `ensure_fas` never ran there."""
        private = fas_paths(pki_dir)[0]
        if not private.exists():
            raise FasError(f"no FAS key {private}: bring the network up first (`crossroads up` creates it)")
        key = serialization.load_pem_private_key(private.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise FasError(f"{private} is not an Ed25519 private key")
        return cls(key)

    def issue(self, niss: str, audience: str, now: float, ttl: int = DEFAULT_TTL) -> messages_pb2.CitizenAssertion:
        """An assertion that citizen `niss` authenticated, for `audience` to present (see `issue_assertion`)."""
        return issue_assertion(self.key, niss, now, ttl, audience=audience)

    def vouch(self, envelope: messages_pb2.Envelope, audience: str, now: float, ttl: int = DEFAULT_TTL) -> None:
        """What the portal does for its citizen: attach an assertion for `subject_niss` to an envelope
        with purpose CITIZEN_PURPOSE that carries none. Other envelopes, and one whose subject_niss
        is malformed (the core will say so), are left as they are."""
        if envelope.purpose != CITIZEN_PURPOSE or envelope.HasField("citizen"):
            return
        if niss_problem(envelope.subject_niss) is None:
            envelope.citizen.CopyFrom(self.issue(envelope.subject_niss, audience, now, ttl))


def ensure_fas(pki_dir: Path) -> Fas:
    """The network's FAS: its key pair read from `pki_dir`/fas, or created there on first use.

    Safe when several processes call it at once: the private key is linked into place only if
    none is there (the first wins, the others read it), and the public key is derived from it.
    """
    private, public = fas_paths(pki_dir)
    private.parent.mkdir(parents=True, exist_ok=True)
    if not private.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _create_once(private, pem)
    fas = Fas.open(pki_dir)
    if not public.exists():
        pem = fas.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        write_atomic(public, pem)
    return fas


def _create_once(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        os.link(tmp, path)  # fails if another process got there first: keep theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _load_public(path: Path) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(path.read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise FasError(f"{path} is not an Ed25519 public key")
    return key
