"""TLS handshakes with no, foreign-CA, expired and not-yet-valid client certificates, beside a good one."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import tempfile
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import strategies as st

from crossroads.methods import DELIVER as DELIVER_METHOD
from crossroads.methods import EXCHANGE as EXCHANGE_METHOD
from crossroads.pki import CORE, Identity, NetworkPki, channel_credentials_from, foreign_identity
from loadtests.fuzz.cases import Batch, Case
from loadtests.fuzz.checks import CASE_DEADLINE_S, Result, _with_batch_problems
from loadtests.fuzz.core import CoreTarget
from loadtests.fuzz.world import FuzzError, FuzzWorld, _canary_raw


def issue_with_validity(pki_dir: Path, name: str, not_before: dt.datetime, not_after: dt.datetime) -> Identity:
    """An identity `name` issued by the network CA in `pki_dir`, valid only from `not_before` to `not_after`.

    For expired and not-yet-valid certificates; nothing is written to `pki_dir`.
    """
    ca_key = serialization.load_pem_private_key((pki_dir / "ca.key").read_bytes(), password=None)
    ca = x509.load_pem_x509_certificate((pki_dir / "ca.pem").read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise FuzzError(f"{pki_dir / 'ca.key'} is not an EC key")
    key = ec.generate_private_key(ec.SECP256R1())
    usage = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Identity(key_pem, cert.public_bytes(serialization.Encoding.PEM))


CREDENTIALS = ("none", "foreign", "expired", "not_yet_valid", "good")
_H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def tls_cases() -> st.SearchStrategy[Case]:
    """Handshakes: (endpoint, credential, TLS version) in `Case.label`, e.g. "core/expired/1.3"."""
    parts = st.tuples(st.sampled_from(("core", "host")), st.sampled_from(CREDENTIALS), st.sampled_from(("1.2", "1.3")))
    return parts.map(lambda p: Case("/".join(p), CORE if p[0] == "host" else "CPAS-fuzz", b"", method="tls"))


def _handshake(port: int, ca_pem: bytes, identity: Identity | None, version: str, folder: Path) -> str:
    """REFUSED_AT_HANDSHAKE if the server drops the connection before its first HTTP/2 byte, else ACCEPTED."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca_pem.decode())
    context.set_alpn_protocols(["h2"])
    context.maximum_version = ssl.TLSVersion.TLSv1_2 if version == "1.2" else ssl.TLSVersion.TLSv1_3
    if identity is not None:
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".pem") as pem:
            pem.write(identity.key_pem + identity.cert_pem)
            pem.flush()
            context.load_cert_chain(pem.name)
    with socket.create_connection(("127.0.0.1", port), timeout=CASE_DEADLINE_S) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(_H2_PREFACE)  # under TLS 1.3 the server judges the certificate after the client's Finished
                return "ACCEPTED" if tls.recv(9) else "REFUSED_AT_HANDSHAKE"
        except (ssl.SSLError, ConnectionError):
            return "REFUSED_AT_HANDSHAKE"


class TlsTarget:
    """Handshakes with bad client certificates to the core and the host: refused, and nothing audited."""

    name = "tls"

    def __init__(self, world: FuzzWorld, state: Path) -> None:
        self.world, self.state = world, state

    async def start(self) -> None:
        self.core_target = CoreTarget(self.world, self.state)
        await self.core_target.start()
        pki = self.state / "pki"
        now = dt.datetime.now(dt.UTC)
        day = dt.timedelta(days=1)
        self.ca_pem = (pki / "ca.pem").read_bytes()
        self.identities: dict[tuple[str, str], Identity | None] = {}
        for endpoint, name in (("core", "CPAS-fuzz"), ("host", CORE)):
            self.identities[endpoint, "none"] = None
            self.identities[endpoint, "foreign"] = foreign_identity(name)[0]
            self.identities[endpoint, "expired"] = issue_with_validity(pki, name, now - 30 * day, now - day)
            self.identities[endpoint, "not_yet_valid"] = issue_with_validity(pki, name, now + day, now + 30 * day)
            self.identities[endpoint, "good"] = NetworkPki.open(pki).issue(name)

    async def _one(self, case: Case) -> Result:
        endpoint, credential, version = case.label.split("/")
        port = self.core_target.core.port if endpoint == "core" else self.core_target.host.port
        identity = self.identities[endpoint, credential]
        try:
            seen = await asyncio.to_thread(_handshake, port, self.ca_pem, identity, version, self.state)
        except TimeoutError:
            return Result("HANG", f"{endpoint} neither accepted nor refused a {credential} certificate", "hang")
        wanted = "ACCEPTED" if credential == "good" else "REFUSED_AT_HANDSHAKE"
        if seen != wanted:
            return Result(seen, f"a {credential} certificate was {seen} by the {endpoint}", "tls")
        if credential == "good":
            return Result(seen)
        status = await self._grpc_call(endpoint, identity)
        ok = status == "UNAVAILABLE"
        return Result(
            seen, None if ok else f"gRPC call with a {credential} certificate got {status}", None if ok else "tls"
        )

    async def _grpc_call(self, endpoint: str, identity: Identity | None) -> str:
        target = self.core_target.core.address if endpoint == "core" else self.core_target.host.address
        method = EXCHANGE_METHOD if endpoint == "core" else DELIVER_METHOD
        async with grpc.aio.secure_channel(target, channel_credentials_from(identity, self.ca_pem)) as channel:
            try:
                await channel.unary_unary(method)(_canary_raw(self.world, 0), timeout=CASE_DEADLINE_S)
            except grpc.aio.AioRpcError as exc:
                return str(exc.code().name)
        return "OK"

    async def run(self, batch: Batch) -> list[Result]:
        before = self.core_target.core.audit.size
        results = list(await asyncio.gather(*(self._one(c) for c in batch.cases)))
        after = self.core_target.core.audit.size
        problems = [("growth", f"refused handshakes wrote {after - before} audit records")] if after != before else []
        return _with_batch_problems(results, problems)

    async def canary(self) -> str:
        return await self.core_target.canary()

    async def close(self) -> None:
        await self.core_target.close()
