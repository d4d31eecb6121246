"""Certificate revocation: a CRL signed by the network CA, honoured by the running core without a restart.

First the PKI's CRL (crossroads.pki), then the core's view of it with a hand-driven clock
(crossroads.revocation), then the CLI, then the core over gRPC: once an agency is revoked,
even its open connection is refused UNAUTHENTICATED, on Exchange (audited) and on Audit.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from crossroads.audit_record import AuditRecord
from crossroads.exchange import audit_index_of
from crossroads.pki import CRL_FILE, NetworkPki, PkiError, foreign_identity, read_crl
from crossroads.revocation import Revocation
from protos import messages_pb2 as pb
from protos import services_pb2, services_pb2_grpc
from testbed.cli import main as cli
from tests.small_network import BOB
from tests.test_admission import exchange, live_core, records, refused
from tests.test_exchange import consultation, dmfa


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _pki(tmp_path: Path, *names: str) -> NetworkPki:
    pki = NetworkPki.open(tmp_path / "pki")
    pki.issue_many(names)
    return pki


def _auth(pki: NetworkPki, name: str) -> dict[str, list[bytes]]:
    """The auth context gRPC gives a handler for a peer presenting `name`'s certificate (fresh bytes)."""
    return {"x509_common_name": [name.encode()], "x509_pem_cert": [bytes(bytearray(pki.issue(name).cert_pem))]}


def _serial(pki: NetworkPki, name: str) -> int:
    return x509.load_pem_x509_certificate(pki.issue(name).cert_pem).serial_number


# --- the CRL ----------------------------------------------------------------------------------


def test_revoke_writes_a_crl_signed_by_the_network_ca(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "CPAS-1", "ONSS")
    assert pki.revocation_list() is None and pki.revoked() == []
    serial = pki.revoke("CPAS-1")
    assert serial == _serial(pki, "CPAS-1")
    crl = x509.load_pem_x509_crl((tmp_path / "pki" / CRL_FILE).read_bytes())
    ca = x509.load_pem_x509_certificate(pki.ca_pem())
    assert crl.issuer == ca.subject and crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert [r.serial_number for r in crl] == [serial]
    assert [(r.name, r.serial) for r in pki.revoked()] == [("CPAS-1", serial)]


def test_revoking_adds_to_the_list_numbers_it_and_is_idempotent(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "A", "B")
    pki.revoke("A")
    first = (tmp_path / "pki" / CRL_FILE).read_bytes()
    pki.revoke("A")
    assert (tmp_path / "pki" / CRL_FILE).read_bytes() == first  # nothing new: not rewritten
    pki.revoke("B")
    current = NetworkPki.open(tmp_path / "pki").revocation_list()
    assert current is not None and current.number == 2
    assert current.serials == {_serial(pki, "A"), _serial(pki, "B")}
    assert [r.name for r in pki.revoked()] == ["A", "B"]


def test_revoking_an_identity_never_issued_is_an_error(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "A")
    with pytest.raises(PkiError, match="no identity 'NOBODY'"):
        pki.revoke("NOBODY")
    assert not (tmp_path / "pki" / CRL_FILE).exists()


def test_a_crl_from_another_ca_or_tampered_with_is_refused(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "A")
    ca = x509.load_pem_x509_certificate(pki.ca_pem())
    other = _pki(tmp_path / "other", "A")  # another CA of the very same name
    other.revoke("A")
    with pytest.raises(PkiError, match="signature does not verify against the network CA"):
        read_crl(other.crl_path.read_bytes(), ca)
    with pytest.raises(PkiError, match="CRL issued by 'CN=someone else', not the network CA"):
        read_crl(_crl_of_another_issuer(), ca)
    pki.revoke("A")
    good = pki.crl_path.read_bytes()
    assert read_crl(good, ca).number == 1
    der = x509.load_pem_x509_crl(good).public_bytes(serialization.Encoding.DER)
    flipped = bytearray(der)
    flipped[-5] ^= 0x01  # a bit of the signature
    tampered = x509.load_der_x509_crl(bytes(flipped)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(PkiError, match="signature does not verify"):
        read_crl(tampered, ca)
    with pytest.raises(PkiError, match="not a PEM certificate revocation list"):
        read_crl(b"-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n", ca)


def _crl_of_another_issuer() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else")]))
        .last_update(now)
        .next_update(now + dt.timedelta(days=1))
        .add_extension(x509.CRLNumber(1), critical=False)
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


# --- the core's view: Revocation ----------------------------------------------------------------


def test_a_revoked_certificate_is_refused_once_the_new_crl_is_looked_at(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "A", "B")
    clock = Clock()
    revocation = Revocation(pki.dir, check_every=0.5, clock=clock)
    assert revocation.refusal(_auth(pki, "A")) is None  # no CRL yet
    pki.revoke("A")
    clock.now += 0.4
    assert revocation.refusal(_auth(pki, "A")) is None  # not looked at again yet: at most every 0.5 s
    clock.now += 0.1
    reason = revocation.refusal(_auth(pki, "A"))
    assert reason == f"certificate serial {_serial(pki, 'A'):#x} revoked (CRL number 1)"
    assert revocation.refusal(_auth(pki, "B")) is None
    assert revocation.refusal({}) is None  # no certificate: the exchange refuses that itself


def test_a_crl_that_does_not_verify_leaves_the_list_in_force_and_says_why(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    pki = _pki(tmp_path, "A", "B")
    pki.revoke("A")
    clock = Clock()
    revocation = Revocation(pki.dir, clock=clock)
    other = _pki(tmp_path / "other", "B")
    other.revoke("B")
    with caplog.at_level(logging.WARNING, logger="crossroads.revocation"):
        os.replace(other.crl_path, pki.crl_path)  # a list signed by someone else
        clock.now += 1.0
        assert revocation.refusal(_auth(pki, "A")) is not None  # the old list still holds
    assert revocation.revoked == {_serial(pki, "A")}
    assert "not taken" in caplog.text and "does not verify against the network CA" in caplog.text


def test_an_older_crl_does_not_replace_a_newer_one(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    pki = _pki(tmp_path, "A", "B")
    pki.revoke("A")
    older = pki.crl_path.read_bytes()
    pki.revoke("B")
    clock = Clock()
    revocation = Revocation(pki.dir, clock=clock)
    assert revocation.number == 2
    with caplog.at_level(logging.WARNING, logger="crossroads.revocation"):
        pki.crl_path.write_bytes(older)  # a rollback: B would be let in again
        clock.now += 1.0
        assert revocation.refusal(_auth(pki, "B")) is not None
    assert "older than 2" in caplog.text


def test_a_crl_that_disappears_does_not_undo_revocations(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "A")
    pki.revoke("A")
    clock = Clock()
    revocation = Revocation(pki.dir, clock=clock)
    pki.crl_path.unlink()
    clock.now += 1.0
    assert revocation.refusal(_auth(pki, "A")) is not None


def test_a_certificate_is_parsed_once_however_many_calls_present_it(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "A", "B")
    pki.revoke("B")
    revocation = Revocation(pki.dir, clock=Clock())
    for _ in range(100):
        assert revocation.refusal(_auth(pki, "A")) is None
    assert len(revocation._serials) == 1


# --- the CLI ----------------------------------------------------------------------------------


def test_the_cli_revokes_and_lists(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = NetworkPki.open(tmp_path / "pki")
    pki.issue_many(["CPAS-1", "ONSS"])
    assert cli(["pki", "revoke", "CPAS-1", "--state", str(tmp_path)]) == 0
    said = json.loads(capsys.readouterr().out)
    assert said["serial"] == f"{_serial(pki, 'CPAS-1'):#x}" and said["crl_number"] == 1
    assert cli(["pki", "list-revoked", "--state", str(tmp_path)]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["crl_number"] == 1 and [r["name"] for r in listed["revoked"]] == ["CPAS-1"]
    assert cli(["pki", "revoke", "NOBODY", "--state", str(tmp_path)]) == 2
    assert "no identity 'NOBODY'" in capsys.readouterr().err


def test_the_cli_never_creates_a_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["pki", "list-revoked", "--state", str(tmp_path)]) == 2
    assert "no network CA" in capsys.readouterr().err and not (tmp_path / "pki").exists()


# --- the core over gRPC -----------------------------------------------------------------------


def test_the_core_refuses_a_revoked_agency_on_its_open_connection_without_a_restart(tmp_path: Path) -> None:
    async def scenario() -> Path:
        async with (
            live_core(tmp_path, crl_check_every=0.05) as net,
            net.channel("CPAS-1") as channel,
            net.channel("PORTAL") as portal,
        ):
            assert (await exchange(channel, consultation(message_id="before"))).outcome == pb.DELIVERED
            assert cli(["pki", "revoke", "CPAS-1", "--state", str(net.state)]) == 0
            await asyncio.sleep(0.2)  # > crl_check_every
            error = await refused(exchange(channel, consultation(message_id="after")))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            serial = _serial(NetworkPki.open(net.state / "pki"), "CPAS-1")
            assert f"certificate serial {serial:#x} revoked" in (error.details() or "")
            assert audit_index_of(error.trailing_metadata()) == 1
            audit = services_pb2_grpc.AuditStub(channel)  # type: ignore[no-untyped-call]
            head = await refused(audit.Head(services_pb2.AuditHeadRequest(), timeout=10))
            assert head.code() == grpc.StatusCode.UNAUTHENTICATED  # the Audit service too
            assert (await exchange(portal, dmfa(BOB, message_id="d-2"))).outcome == pb.DELIVERED  # others go on
            portal_audit = services_pb2_grpc.AuditStub(portal)  # type: ignore[no-untyped-call]
            assert (await portal_audit.Head(services_pb2.AuditHeadRequest(), timeout=10)).size == 3
            forwarded = {pb.Envelope.FromString(f.envelope).message_id for f in net.host.got}
            assert forwarded == {"before", "d-2"}  # the refused call was never forwarded
            return net.state

    state = asyncio.run(scenario())
    outcomes: list[AuditRecord] = records(state)
    assert [(r.outcome, r.sender, r.message_id) for r in outcomes] == [
        ("DELIVERED", "CPAS-1", "before"),
        ("UNAUTHENTICATED", "CPAS-1", "after"),
        ("DELIVERED", "PORTAL", "d-2"),
    ]
    assert "revoked" in outcomes[1].detail


def test_a_certificate_of_another_ca_is_still_refused_by_the_handshake(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with live_core(tmp_path) as net:
            identity, _ = foreign_identity("CPAS-1")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=(net.state / "pki" / "ca.pem").read_bytes(),
                private_key=identity.key_pem,
                certificate_chain=identity.cert_pem,
            )
            async with grpc.aio.secure_channel(net.core.address, credentials) as channel:
                error = await refused(exchange(channel, consultation()))
                assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert net.core.audit.size == 0

    asyncio.run(scenario())
