"""The gateway's TLS settings and the CA bundle it hands agents at enrollment."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from tests.integration.gateway.harness import issue_server_cert

from ferry.gateway.ca import AgentCA
from ferry.gateway.tls import TLSConfigError, agent_trust_bundle, peer_agent_id, server_context


@pytest.fixture
def ca(tmp_path: Path) -> AgentCA:
    return AgentCA.load_or_create(tmp_path / "ca")


def test_the_server_asks_for_agent_certificates_without_requiring_them(
        ca: AgentCA, tmp_path: Path) -> None:
    cert, key = issue_server_cert(ca, "127.0.0.100", tmp_path)
    context = server_context(cert, key, ca)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert context.verify_mode == ssl.CERT_OPTIONAL
    # Only the agent CA is trusted for client certificates, nothing from the system store.
    assert [c["subject"] for c in context.get_ca_certs()] == \
        [((("organizationName", "Ferry"),), (("commonName", "Ferry Agent CA"),))]
    assert peer_agent_id(None, ca) is None


def test_unusable_server_files_are_named(ca: AgentCA, tmp_path: Path) -> None:
    cert, _ = issue_server_cert(ca, "127.0.0.100", tmp_path)
    with pytest.raises(TLSConfigError, match=r"nothing\.key"):
        server_context(cert, tmp_path / "nothing.key", ca)


def test_the_bundle_for_agents_must_anchor_the_server_certificate(
        ca: AgentCA, tmp_path: Path) -> None:
    cert, _ = issue_server_cert(ca, "127.0.0.100", tmp_path)
    bundle, anchored = agent_trust_bundle(cert, None, ca)
    assert anchored and bundle == ca.pem.decode()
    other = AgentCA.load_or_create(tmp_path / "other-ca")
    (tmp_path / "public").mkdir()
    foreign, _ = issue_server_cert(other, "127.0.0.100", tmp_path / "public")
    assert not agent_trust_bundle(foreign, None, ca)[1]
    bundle, anchored = agent_trust_bundle(foreign, tmp_path / "other-ca" / "ca.crt", ca)
    assert anchored and bundle == other.pem.decode()
