"""The network PKI: identities are issued once, named by their CN, and only the network CA is trusted."""

from __future__ import annotations

import asyncio
import ipaddress
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from crossroads.pki import (
    Identity,
    NetworkPki,
    PkiError,
    channel_credentials,
    channel_credentials_from,
    foreign_identity,
    load_identity,
    peer_identity,
    server_credentials,
)

WHOAMI = "/test.Whoami/Who"


def _cert(identity: Identity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.cert_pem)


def test_issue_names_the_identity_in_the_certificate(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    cert = _cert(pki.issue("ONSS"))
    ca = x509.load_pem_x509_certificate(pki.ca_pem())

    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ONSS"
    cert.verify_directly_issued_by(ca)  # raises if not signed by the network CA
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_issue_is_idempotent_across_reopening(tmp_path: Path) -> None:
    first = NetworkPki.open(tmp_path / "pki")
    identity = first.issue("core")
    again = NetworkPki.open(tmp_path / "pki")

    assert again.ca_pem() == first.ca_pem()
    assert again.issue("core") == identity
    assert first.issue("host-0") != identity


def test_issue_many_issues_only_what_is_missing(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    kept = pki.issue("AG-0001")
    names = [f"AG-{i:04d}" for i in range(1, 51)]

    assert pki.issue_many(names) == 49
    assert pki.issue_many([*names, "core"]) == 1
    assert pki.issue("AG-0001") == kept
    assert {_cert(pki.issue(n)).subject.rfc4514_string() for n in names} == {f"CN={n}" for n in names}


def test_odd_names_are_kept_under_a_safe_file_name(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    assert pki.issue("NIC/CIN").name == "NIC/CIN"
    assert pki.path_of("NIC/CIN").parent == tmp_path / "pki" / "identities"
    with pytest.raises(PkiError, match="1 to 64"):
        pki.issue("x" * 65)


def test_load_identity_never_invents_a_ca(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="no network CA"):
        load_identity(tmp_path / "nowhere", "core")
    NetworkPki.open(tmp_path / "pki")
    identity, ca_pem = load_identity(tmp_path / "pki", "core")  # issued on demand once a CA exists
    assert identity.name == "core"
    assert ca_pem == NetworkPki.open(tmp_path / "pki").ca_pem()


def test_a_new_ca_discards_identities_that_cannot_chain_to_it(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    old = pki.issue("ONSS")
    (tmp_path / "pki" / "ca.pem").unlink()

    fresh = NetworkPki.open(tmp_path / "pki")
    assert fresh.issue("ONSS") != old
    _cert(fresh.issue("ONSS")).verify_directly_issued_by(x509.load_pem_x509_certificate(fresh.ca_pem()))


# ------------------------------------------------------------------ over real mutual TLS


async def _who(request: bytes, context: Any) -> bytes:
    return (peer_identity(context) or "").encode()


def _whoami_server(pki_dir: Path) -> tuple[Any, int]:
    server = grpc.aio.server(options=(("grpc.so_reuseport", 0),))
    handler = grpc.unary_unary_rpc_method_handler(_who)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Whoami", {"Who": handler}),))
    port = server.add_secure_port("127.0.0.1:0", server_credentials(pki_dir, "core"))
    return server, port


def _ask(pki_dir: Path, *clients: grpc.ChannelCredentials) -> list[bytes | grpc.StatusCode]:
    """Each client's answer from one whoami server with identity "core": its CN, or the error code."""

    async def one(port: int, client: grpc.ChannelCredentials) -> bytes | grpc.StatusCode:
        try:
            async with grpc.aio.secure_channel(f"127.0.0.1:{port}", client) as channel:
                reply: bytes = await channel.unary_unary(WHOAMI)(b"", timeout=5)
                return reply
        except grpc.aio.AioRpcError as exc:
            return exc.code()

    async def run() -> list[bytes | grpc.StatusCode]:
        server, port = _whoami_server(pki_dir)
        await server.start()
        try:
            return [await one(port, c) for c in clients]
        finally:
            await server.stop(None)

    return asyncio.run(run())


def test_the_server_reads_the_caller_from_its_certificate(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    pki.issue("RVA-ONEM")
    assert _ask(pki.dir, channel_credentials(pki.dir, "RVA-ONEM"), channel_credentials(pki.dir, "core")) == [
        b"RVA-ONEM",
        b"core",
    ]


def test_a_certificate_from_a_foreign_ca_is_refused(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    impostor, _ = foreign_identity("RVA-ONEM")  # same CN, wrong issuer
    assert impostor.name == "RVA-ONEM"
    genuine = channel_credentials(pki.dir, "RVA-ONEM")
    assert _ask(pki.dir, channel_credentials_from(impostor, pki.ca_pem()), genuine) == [
        grpc.StatusCode.UNAVAILABLE,
        b"RVA-ONEM",
    ]


def test_a_client_without_a_certificate_is_refused(tmp_path: Path) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    genuine = channel_credentials(pki.dir, "ONSS")
    assert _ask(pki.dir, channel_credentials_from(None, pki.ca_pem()), genuine) == [
        grpc.StatusCode.UNAVAILABLE,
        b"ONSS",
    ]


def test_a_client_refuses_a_server_of_a_foreign_ca(tmp_path: Path) -> None:
    ours = NetworkPki.open(tmp_path / "ours")
    theirs = NetworkPki.open(tmp_path / "theirs")
    theirs.issue("core")
    ours.issue("ONSS")
    # the server runs with the other network's "core"; our client trusts only our CA
    theirs.issue("ONSS")
    assert _ask(theirs.dir, channel_credentials(ours.dir, "ONSS"), channel_credentials(theirs.dir, "ONSS")) == [
        grpc.StatusCode.UNAVAILABLE,
        b"ONSS",
    ]
