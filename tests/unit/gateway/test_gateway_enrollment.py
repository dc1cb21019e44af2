"""The agent CA, agent certificates and enrollment tokens (single use, also concurrently),
against a SQLite state store in a temporary folder."""

from __future__ import annotations

import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ferry.gateway.ca import AgentCA, CAError, CSRError, agent_id_of, check_csr
from ferry.gateway.enrollment import (
    EnrollmentRefused,
    create_token,
    enroll,
    parse_ttl,
    token_hash,
)
from ferry.state.store import StateStore
from ferry_agent.protocol import EnrollRequest, ProtocolError


def csr_pem(name: str = "dc-01", key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None
            = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
           .sign(key, hashes.SHA256()))
    return csr.public_bytes(serialization.Encoding.PEM).decode()


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(str(tmp_path / "state.sqlite"))


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> AgentCA:
    return AgentCA.load_or_create(tmp_path_factory.mktemp("ca"))


def request(token: str, name: str = "dc-01", csr: str | None = None) -> EnrollRequest:
    return EnrollRequest(token=token, name=name, host="dc-01.corp.example", version="0.1.0",
                         csr=csr if csr is not None else csr_pem(name))


def test_the_ca_is_created_once_with_an_owner_only_key(tmp_path: Path) -> None:
    folder = tmp_path / "ca"
    made = AgentCA.load_or_create(folder)
    assert stat.S_IMODE((folder / "ca.key").stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    again = AgentCA.load_or_create(folder)
    assert again.cert == made.cert
    assert AgentCA.load(folder / "ca.crt", folder / "ca.key").cert == made.cert
    constraints = made.cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca


def test_a_ca_with_a_missing_or_foreign_key_is_refused(tmp_path: Path) -> None:
    first, second = AgentCA.load_or_create(tmp_path / "a"), AgentCA.load_or_create(tmp_path / "b")
    assert first.cert != second.cert
    with pytest.raises(CAError, match="does not belong"):
        AgentCA.load(tmp_path / "a" / "ca.crt", tmp_path / "b" / "ca.key")
    (tmp_path / "a" / "ca.key").unlink()
    with pytest.raises(CAError, match="missing"):
        AgentCA.load_or_create(tmp_path / "a")


def test_an_agent_certificate_names_the_agent_for_client_auth_only(ca: AgentCA) -> None:
    cert = ca.sign_agent(check_csr(csr_pem("whatever-the-agent-asked")), "agent-0123")
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "agent-0123"
    assert agent_id_of(cert) == "agent-0123"
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - datetime.now(UTC)
    assert timedelta(days=364) < lifetime <= timedelta(days=365)
    cert.verify_directly_issued_by(ca.cert)


def test_unusable_csrs_are_refused() -> None:
    with pytest.raises(CSRError, match="not a PEM"):
        check_csr("hello")
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(CSRError, match="too small"):
        check_csr(csr_pem(key=weak))


def test_ttls() -> None:
    assert parse_ttl("24h") == timedelta(hours=24)
    assert parse_ttl("90s") == timedelta(seconds=90)
    assert parse_ttl("7d") == timedelta(days=7)
    for bad in ("", "24", "1w", "0m", "-1h", "31d"):
        with pytest.raises(ValueError):
            parse_ttl(bad)


def test_a_token_enrolls_exactly_once_and_is_stored_only_as_a_hash(
        store: StateStore, ca: AgentCA, tmp_path: Path) -> None:
    token, expires = create_token(store, "corp-ad", timedelta(hours=1))
    assert expires > datetime.now(UTC)
    assert token.encode() not in (tmp_path / "state.sqlite").read_bytes()
    response, agent = enroll(store, ca, request(token), "BUNDLE")
    assert (response.environment, response.ca, agent.name) == ("corp-ad", "BUNDLE", "dc-01")
    cert = x509.load_pem_x509_certificate(response.certificate.encode())
    assert agent_id_of(cert) == response.agent_id == agent.id
    stored = store.agents.get(agent.id)
    assert stored is not None and stored.host == "dc-01.corp.example"
    with pytest.raises(EnrollmentRefused) as refused:
        enroll(store, ca, request(token, "dc-02"), "BUNDLE")
    assert refused.value.reason == "used"
    assert [a.name for a in store.agents.enrolled("corp-ad")] == ["dc-01"]


def test_a_token_used_concurrently_enrolls_one_agent(store: StateStore, ca: AgentCA) -> None:
    token, _ = create_token(store, "corp-ad", timedelta(hours=1))
    requests = [request(token, f"dc-{n:02}") for n in range(8)]
    outcomes: list[str] = []
    start = threading.Barrier(len(requests))

    def attempt(message: EnrollRequest) -> None:
        start.wait()
        try:
            enroll(store, ca, message, "BUNDLE")
            outcomes.append("enrolled")
        except EnrollmentRefused as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=attempt, args=(m,)) for m in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes) == ["enrolled"] + ["used"] * 7
    assert len(store.agents.enrolled("corp-ad")) == 1


def test_expired_and_unknown_tokens_are_refused(store: StateStore, ca: AgentCA) -> None:
    store.agents.add_token(token_hash("old"), "corp-ad",
                            datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(EnrollmentRefused) as refused:
        enroll(store, ca, request("old"), "BUNDLE")
    assert refused.value.reason == "expired"
    with pytest.raises(EnrollmentRefused) as refused:
        enroll(store, ca, request("never-made"), "BUNDLE")
    assert refused.value.reason == "unknown"
    assert store.agents.enrolled() == []


def test_a_malformed_request_does_not_use_up_the_token(store: StateStore, ca: AgentCA) -> None:
    token, _ = create_token(store, "corp-ad", timedelta(hours=1))
    with pytest.raises(ProtocolError, match="csr"):
        enroll(store, ca, request(token, csr="not a csr"), "BUNDLE")
    with pytest.raises(ProtocolError, match="name"):
        enroll(store, ca, request(token, name="no spaces please"), "BUNDLE")
    enroll(store, ca, request(token), "BUNDLE")


def test_revoking_and_finding_agents(store: StateStore, ca: AgentCA) -> None:
    ids = []
    for _ in range(2):
        token, _ = create_token(store, "corp-ad", timedelta(hours=1))
        ids.append(enroll(store, ca, request(token, "dc-01"), "BUNDLE")[1].id)
    assert [a.id for a in store.agents.find("dc-01")] == ids
    assert [a.id for a in store.agents.find(ids[1])] == [ids[1]]
    assert store.agents.any_active("corp-ad") and not store.agents.any_active("other")
    assert store.agents.revoke(ids[0]).revoked and not store.agents.revoke(ids[0]).revoked
    revoked = store.agents.get(ids[0])
    assert revoked is not None and revoked.revoked
    assert store.agents.revoke(ids[1]).revoked
    assert not store.agents.any_active("corp-ad")
