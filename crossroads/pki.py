"""The network PKI: one synthetic certificate authority, and a key and certificate per identity.

Every process on the live network (the core, each agency host, each agency acting as a
client, the operator's admin tools) proves who it is with a certificate issued by the
network CA, and accepts only peers whose certificates chain to that CA (mutual TLS). An
identity is the certificate's subject common name: the agency id for agencies, "core" for
the crossroads core, "host-K" for agency hosts. Identity always comes from the verified
certificate (`peer_identity`), never from a field the sender fills in.

Keys are ECDSA on P-256: a key pair and a signature each cost tens of microseconds, so issuing
the ~3,000 identities of a national network takes a second or two, where RSA-2048 key
generation alone would take minutes. P-256 is supported by every TLS stack gRPC uses.
Keys come from the operating system's generator: a PKI is never seeded.

Layout of `pki_dir`:
    ca.pem                 the CA certificate (what peers trust)
    ca.key                 the CA private key (PKCS#8, unencrypted: a testbed, not a vault)
    identities/NAME.pem    the identity's private key followed by its certificate (names outside
                           A-Z a-z 0-9 . _ - are spelled "~" + hex of their UTF-8)
    crl.pem                the certificate revocation list, signed by the CA (`NetworkPki.revoke`);
                           absent until the first revocation
Each file is written to a temporary name and renamed into place, so a reader sees either no
file or a whole one.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crossroads.atomic_file import write_atomic

__all__ = [
    "ADMIN",
    "CORE",
    "CRL_FILE",
    "Identity",
    "NetworkPki",
    "PkiError",
    "RevocationList",
    "Revoked",
    "channel_credentials",
    "channel_credentials_from",
    "foreign_identity",
    "host_identity",
    "load_identity",
    "peer_identity",
    "peer_name",
    "read_crl",
    "server_credentials",
    "server_credentials_from",
]

CORE = "core"  # the identity of the crossroads core: the only caller agency hosts accept
ADMIN = "admin"  # the operator's tools (health checks, status)
CA_VALIDITY = dt.timedelta(days=3650)
LEAF_VALIDITY = dt.timedelta(days=825)
CLOCK_SKEW = dt.timedelta(days=1)  # back-date certificates so small clock differences do not matter
NETWORK_NAME = "crossroads testbed network"
CRL_FILE = "crl.pem"
# A CRL must name its next update (RFC 5280 5.1.2.5); the testbed's CRL is a local file rewritten
# on every revocation, not fetched, so freshness is not enforced and a long horizon is harmless.
CRL_VALIDITY = dt.timedelta(days=365)

_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 64  # the X.509 upper bound for a common name
_CERT_MARK = b"-----BEGIN CERTIFICATE-----"


class PkiError(Exception):
    """The PKI folder is missing, or an identity or name is unusable."""


@dataclass(frozen=True, slots=True)
class Identity:
    """A private key and its certificate, both PEM."""

    key_pem: bytes
    cert_pem: bytes

    @property
    def name(self) -> str:
        """The subject common name of the certificate."""
        return _common_name(x509.load_pem_x509_certificate(self.cert_pem))


@dataclass(frozen=True, slots=True)
class Revoked:
    """One revoked certificate: its serial, when, and the identity it was issued to (None if unknown)."""

    serial: int
    revoked_at: dt.datetime
    name: str | None


@dataclass(frozen=True, slots=True)
class RevocationList:
    """A CRL whose signature was checked against the network CA."""

    number: int  # the CRL number: grows with every new list, so an older list can be told apart
    updated: dt.datetime
    serials: frozenset[int]
    entries: tuple[tuple[int, dt.datetime], ...]  # (serial, revocation date), in the list's order


@dataclass(frozen=True, slots=True)
class _Ca:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def host_identity(index: int) -> str:
    """The identity name of agency host number `index` ("host-0", "host-1", ...)."""
    return f"host-{index}"


def _stem(name: str) -> str:
    """The file name stem of identity `name`: the name itself, or a hex spelling of odd names."""
    if not 1 <= len(name) <= MAX_NAME:
        raise PkiError(f"identity name {name!r} must be 1 to {MAX_NAME} characters")
    # "~" is not a plain-name character, so a hex stem never collides with a plain one
    return name if _PLAIN_NAME.fullmatch(name) else "~" + name.encode().hex()


def _identity_path(pki_dir: Path, name: str) -> Path:
    return pki_dir / "identities" / f"{_stem(name)}.pem"


def _common_name(cert: x509.Certificate) -> str:
    values = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(values[0].value) if values else ""


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    encoding, form = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    return key.private_bytes(encoding, form, serialization.NoEncryption())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _make_ca(label: str) -> _Ca:
    key = _new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, NETWORK_NAME),
            x509.NameAttribute(NameOID.COMMON_NAME, label),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return _Ca(key, cert)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


# Built once: every leaf carries the same SAN and EKU (one certificate serves as server and client).
_LEAF_SAN = x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
_LEAF_EKU = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])


def _issue_with(ca: _Ca, name: str) -> Identity:
    key = _new_key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(_LEAF_EKU, critical=False)
        .add_extension(_LEAF_SAN, critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return Identity(_key_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def foreign_identity(name: str) -> tuple[Identity, bytes]:
    """An identity called `name` issued by a throwaway CA that is NOT the network CA.

    Returns the identity and that foreign CA's certificate (PEM). For tests showing that a
    certificate with the right common name but the wrong issuer is refused.
    """
    ca = _make_ca("foreign CA")
    _stem(name)
    return _issue_with(ca, name), ca.cert.public_bytes(serialization.Encoding.PEM)


def _split_identity(blob: bytes, path: Path) -> Identity:
    at = blob.find(_CERT_MARK)
    if at <= 0:
        raise PkiError(f"{path} holds no private key followed by a certificate")
    return Identity(blob[:at], blob[at:])


@contextmanager
def _locked(pki_dir: Path) -> Iterator[None]:
    # several processes may open the same folder at once: only one may create the CA
    with open(pki_dir / ".lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class NetworkPki:
    """The network CA kept in a folder, issuing and caching identities there."""

    def __init__(self, pki_dir: Path, ca: _Ca) -> None:
        self.dir = pki_dir
        self._ca = ca
        self._ca_pem = ca.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def open(cls, pki_dir: Path) -> NetworkPki:
        """The PKI in `pki_dir`, creating the folder and a new CA on first use.

        Creating a CA discards any identity left in the folder, since none could chain to it.
        """
        pki_dir = Path(pki_dir)
        (pki_dir / "identities").mkdir(parents=True, exist_ok=True)
        with _locked(pki_dir):
            if not (pki_dir / "ca.pem").exists():
                return cls(pki_dir, cls._create_ca(pki_dir))
        return cls(pki_dir, cls._load_ca(pki_dir))

    @staticmethod
    def _create_ca(pki_dir: Path) -> _Ca:
        for stale in (pki_dir / "identities").glob("*.pem"):
            stale.unlink()
        ca = _make_ca(f"{NETWORK_NAME} CA")
        write_atomic(pki_dir / "ca.key", _key_pem(ca.key), private=True)
        write_atomic(pki_dir / "ca.pem", ca.cert.public_bytes(serialization.Encoding.PEM))
        return ca

    @staticmethod
    def _load_ca(pki_dir: Path) -> _Ca:
        key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise PkiError(f"{pki_dir / 'ca.key'} is not an EC private key")
        return _Ca(key, x509.load_pem_x509_certificate((pki_dir / "ca.pem").read_bytes()))

    def ca_pem(self) -> bytes:
        """The network CA certificate, PEM: the only root any peer trusts."""
        return self._ca_pem

    def path_of(self, name: str) -> Path:
        """Where the identity `name` is (or would be) kept."""
        return _identity_path(self.dir, name)

    def issue(self, name: str) -> Identity:
        """The identity `name`: read from the folder if issued before, else issued and saved.

        Idempotent: a second call returns the same key and certificate. The certificate has
        subject CN = `name`, SAN DNS:localhost and IP:127.0.0.1, and EKU serverAuth+clientAuth.
        """
        path = self.path_of(name)
        if path.exists():
            return _split_identity(path.read_bytes(), path)
        identity = _issue_with(self._ca, name)
        write_atomic(path, identity.key_pem + identity.cert_pem, private=True)
        return identity

    def issue_many(self, names: Iterable[str], *, progress: bool = False) -> int:
        """Make sure every identity in `names` exists; returns how many were newly issued.

        The fast path for thousands of agencies: one directory listing decides which exist,
        and existing files are not read.
        """
        have = {p.stem for p in (self.dir / "identities").glob("*.pem")}
        missing = [n for n in dict.fromkeys(names) if _stem(n) not in have]
        for name in _progress(missing, progress, "certificates"):
            identity = _issue_with(self._ca, name)
            write_atomic(self.path_of(name), identity.key_pem + identity.cert_pem, private=True)
        return len(missing)

    @property
    def crl_path(self) -> Path:
        """Where the certificate revocation list is kept (absent until the first revocation)."""
        return self.dir / CRL_FILE

    def revoke(self, name: str) -> int:
        """Revoke the certificate of identity `name`: rewrite the signed CRL with its serial added.

        Returns the serial. Idempotent: a certificate already revoked leaves the CRL as it is.
        The new CRL (CRL number one more than the last) is written to a temporary file, synced
        and renamed over `crl.pem`, under the folder's lock, so concurrent revocations are all
        kept and a reader sees the old list or the new one. The identity file stays: revoking
        does not issue a replacement. PkiError if `name` was never issued.
        """
        path = self.path_of(name)
        if not path.exists():
            raise PkiError(f"no identity {name!r} in {self.dir / 'identities'}: nothing to revoke")
        serial = x509.load_pem_x509_certificate(_split_identity(path.read_bytes(), path).cert_pem).serial_number
        with _locked(self.dir):
            current = self.revocation_list()
            if current is not None and serial in current.serials:
                return serial
            entries = (*(current.entries if current else ()), (serial, _now()))
            number = current.number + 1 if current else 1
            write_atomic(self.crl_path, self._signed_crl(entries, number), durable=True)
        return serial

    def revocation_list(self) -> RevocationList | None:
        """The current CRL, checked against the CA (PkiError if it is not valid); None if there is none."""
        try:
            pem = self.crl_path.read_bytes()
        except FileNotFoundError:
            return None
        return read_crl(pem, self._ca.cert)

    def revoked(self) -> list[Revoked]:
        """Every revoked certificate, oldest first, named by the identity file it was issued in."""
        current = self.revocation_list()
        if current is None:
            return []
        names = self._names_of(current.serials)
        return [Revoked(serial, when, names.get(serial)) for serial, when in current.entries]

    def _names_of(self, serials: frozenset[int]) -> dict[int, str]:
        found: dict[int, str] = {}
        for path in (self.dir / "identities").glob("*.pem"):
            cert = x509.load_pem_x509_certificate(_split_identity(path.read_bytes(), path).cert_pem)
            if cert.serial_number in serials:
                found[cert.serial_number] = _common_name(cert)
        return found

    def _signed_crl(self, entries: Iterable[tuple[int, dt.datetime]], number: int) -> bytes:
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self._ca.cert.subject)
            .last_update(now - CLOCK_SKEW)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
        )
        for serial, when in entries:
            revoked = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            builder = builder.add_revoked_certificate(revoked)
        return builder.sign(self._ca.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def read_crl(pem: bytes, ca: x509.Certificate) -> RevocationList:
    """Parse a PEM CRL and check that the network CA `ca` issued and signed it.

    Raises PkiError saying what is wrong (not a CRL, another issuer, a bad signature, no CRL
    number). Freshness (next update) is not checked: see CRL_VALIDITY.
    """
    try:
        crl = x509.load_pem_x509_crl(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate revocation list: {exc}") from exc
    if crl.issuer != ca.subject:
        raise PkiError(f"CRL issued by {crl.issuer.rfc4514_string()!r}, not the network CA")
    public_key = ca.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not crl.is_signature_valid(public_key):
        raise PkiError("CRL signature does not verify against the network CA")
    try:
        number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    except x509.ExtensionNotFound as exc:
        raise PkiError("CRL has no CRL number") from exc
    entries = tuple((r.serial_number, r.revocation_date_utc) for r in crl)
    return RevocationList(number, crl.last_update_utc, frozenset(s for s, _ in entries), entries)


def _progress(items: list[str], show: bool, what: str) -> Iterable[str]:
    if not show or not items:
        return items
    from tqdm import tqdm  # imported only when a bar is wanted

    bar: Iterable[str] = tqdm(items, desc=what, unit="id", leave=False)
    return bar


def load_identity(pki_dir: Path, name: str) -> tuple[Identity, bytes]:
    """The identity `name` and the network CA certificate, for a process that serves or calls.

    Issues the identity if the CA exists but the identity does not. Never creates a CA: a
    process pointed at a folder without one fails here (PkiError naming the folder) rather
    than trusting a CA nobody else knows.
    """
    pki_dir = Path(pki_dir)
    if not (pki_dir / "ca.pem").exists():
        raise PkiError(f"no network CA in {pki_dir} (expected {pki_dir / 'ca.pem'}); bring the network up first")
    path = _identity_path(pki_dir, name)
    if path.exists():
        return _split_identity(path.read_bytes(), path), (pki_dir / "ca.pem").read_bytes()
    pki = NetworkPki.open(pki_dir)
    return pki.issue(name), pki.ca_pem()


def server_credentials_from(identity: Identity, ca_pem: bytes) -> grpc.ServerCredentials:
    """Server TLS credentials that demand a client certificate chaining to `ca_pem`."""
    return grpc.ssl_server_credentials(
        [(identity.key_pem, identity.cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )


def channel_credentials_from(identity: Identity | None, ca_pem: bytes) -> grpc.ChannelCredentials:
    """Client TLS credentials trusting only `ca_pem`; presenting `identity` unless None."""
    if identity is None:
        return grpc.ssl_channel_credentials(root_certificates=ca_pem)
    return grpc.ssl_channel_credentials(
        root_certificates=ca_pem, private_key=identity.key_pem, certificate_chain=identity.cert_pem
    )


def server_credentials(pki_dir: Path, name: str) -> grpc.ServerCredentials:
    """Mutual-TLS server credentials for identity `name` of the network in `pki_dir`."""
    return server_credentials_from(*load_identity(pki_dir, name))


def channel_credentials(pki_dir: Path, name: str) -> grpc.ChannelCredentials:
    """Mutual-TLS channel credentials for identity `name` of the network in `pki_dir`."""
    return channel_credentials_from(*load_identity(pki_dir, name))


def peer_identity(context: Any) -> str | None:
    """The caller's identity: the common name of its verified client certificate, or None.

    `context` is a grpc (aio or sync) ServicerContext. On a server made with
    `server_credentials`, the TLS handshake has already checked the chain to the network CA,
    so the name can be trusted; without a client certificate there is no name.
    """
    return peer_name(context.auth_context())


def peer_name(auth: Mapping[str, Sequence[bytes]]) -> str | None:
    """`peer_identity` from an auth context already read (`context.auth_context()` costs ~1.5 us)."""
    values = auth.get("x509_common_name")
    return values[0].decode() if values else None
