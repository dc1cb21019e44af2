"""Enrollment and agent identity against a real `ferry gateway` over real TLS: tokens work
once and expire, revocation (from the CLI, while the gateway runs) cuts an agent off at once,
environments are kept apart, and callers without a valid identity learn nothing."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tests.integration.gateway.harness import RunningGateway

from ferry.gateway.ca import AgentCA, check_csr
from ferry_agent import identity
from ferry_agent.protocol import WorkItem
from ferry_agent.transport import GatewayRefused

AGENT_ROUTES = ("/v1/agent/heartbeat", "/v1/agent/poll", "/v1/agent/result")


def test_enrollment_works_once(gateway: RunningGateway, environment: str,
                               tmp_path: Path) -> None:
    token = gateway.token(environment)
    who, response = gateway.enroll(token, "dc-01", tmp_path / "first")
    assert response.environment == environment
    assert who.ca_file is not None  # the bundle handed out verifies the gateway from now on
    agent = gateway.agent(who)
    status, body = agent.post("/v1/agent/heartbeat",
                              {"v": 1, "version": "0.1.0", "host": "dc-01", "leases": []})
    assert status == 200 and body is not None and body["heartbeatSeconds"] > 0

    with pytest.raises(GatewayRefused) as refused:
        gateway.enroll(token, "dc-02", tmp_path / "second")
    assert (refused.value.status, refused.value.message) == (403, "enrollment refused")

    listed = gateway.cli("agent", "list", "--environment", environment)
    assert listed.returncode == 0
    assert response.agent_id in listed.stdout and "dc-02" not in listed.stdout
    assert token not in gateway.log_text()


def test_an_expired_token_is_refused(gateway: RunningGateway, environment: str,
                                     tmp_path: Path) -> None:
    made = gateway.cli("agent", "token", "create", environment, "--ttl", "1s")
    assert made.returncode == 0, made.stderr
    expired = time.time() + 1.2  # it was made before the command returned
    deadline = time.monotonic() + 10
    while time.time() < expired:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    with pytest.raises(GatewayRefused) as refused:
        gateway.enroll(made.stdout.strip(), "dc-01", tmp_path / "late")
    assert (refused.value.status, refused.value.message) == (403, "enrollment refused")
    assert '"refused": "token expired"' in gateway.log_text()


def test_a_revoked_agent_is_refused_on_its_next_call(gateway: RunningGateway, environment: str,
                                                     tmp_path: Path) -> None:
    revoked = gateway.fake_agent(environment, "dc-revoked", tmp_path)
    other = gateway.fake_agent(environment, "dc-other", tmp_path)
    assert revoked.poll() is None
    done = gateway.cli("agent", "revoke", "dc-revoked")
    assert done.returncode == 0, done.stderr
    with pytest.raises(GatewayRefused) as refused:
        revoked.heartbeat()
    assert (refused.value.status, refused.value.message) == (403, "forbidden")
    listed = gateway.cli("agent", "list", "--environment", environment).stdout
    assert "revoked" in listed and "active" in listed
    assert other.heartbeat() is not None


def test_revoking_an_agent_in_a_long_poll_hands_its_work_to_another(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    revoked = gateway.fake_agent(environment, "dc-polling", tmp_path)
    other = gateway.fake_agent(environment, "dc-standby", tmp_path)
    outcome: list[object] = []

    def long_poll() -> None:
        try:
            item = None
            while item is None:  # polls again when one ran out, as an agent does
                item = revoked.poll(wait=25)
            outcome.append(item)
        except GatewayRefused as exc:
            outcome.append(exc.status)

    poller = threading.Thread(target=long_poll)
    poller.start()
    # The CLI takes about a second to start, so the poll is normally waiting by then; if not,
    # it is refused on arrival and the outcome is the same.
    assert gateway.cli("agent", "revoke", revoked.id).returncode == 0
    status, body = gateway.job().submit(environment, "exists", {"dn": "CN=x"})
    assert status == 200 and body is not None
    poller.join(120)
    assert outcome == [403]
    item = other.poll(wait=5)
    assert item is not None and item.work_id == body["workId"]
    assert item.attempt in (1, 2)  # 2: it had been leased to the revoked agent, then put back


def test_an_agent_never_receives_another_environments_work(
        gateway: RunningGateway, tmp_path: Path) -> None:
    suffix = uuid.uuid4().hex[:8]
    a = gateway.fake_agent(f"env-a-{suffix}", "dc-a", tmp_path)
    b = gateway.fake_agent(f"env-b-{suffix}", "dc-b", tmp_path)
    job = gateway.job()
    submitted = [job.submit(b.environment, "exists", {"dn": f"CN={n}"})[1] for n in range(3)]
    assert a.poll(wait=1) is None
    received: list[WorkItem] = []
    for _ in submitted:
        item = b.poll(wait=5)
        assert item is not None
        received.append(item)
    assert {i.work_id for i in received} == {s["workId"] for s in submitted if s}
    assert {i.environment for i in received} == {b.environment}
    assert a.poll(wait=0) is None


def test_work_for_an_environment_without_agents_is_refused(gateway: RunningGateway,
                                                           environment: str) -> None:
    status, body = gateway.job().submit(environment, "exists", {"dn": "CN=x"})
    assert status == 409 and body is not None
    assert "no agent is enrolled" in body["error"]


def test_no_client_certificate_gets_401_and_nothing_else(gateway: RunningGateway) -> None:
    for path in AGENT_ROUTES:
        status, _, body = gateway.raw(path, b'{"v": 1, "wait": 0}')
        assert status == 401
        assert json.loads(body) == {"v": 1, "error": "client certificate required"}


def test_a_certificate_from_another_ca_fails_the_handshake(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    real = gateway.fake_agent(environment, "dc-real", tmp_path)
    # A forged identity: the real agent's id, signed by a CA the gateway does not know.
    forger = AgentCA.load_or_create(tmp_path / "forger-ca")
    folder = tmp_path / "forged"
    csr = identity.create_key(folder, "dc-real")
    cert = forger.sign_agent(check_csr(csr.decode()), real.id)
    forged = identity.store_certificate(
        folder, cert.public_bytes(serialization.Encoding.PEM), gateway.ca_file.read_bytes())
    with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):
        gateway.raw("/v1/agent/poll", b'{"v": 1, "wait": 0}', cert=forged)
    assert gateway.alive()


def test_a_certificate_of_no_enrolled_agent_gets_403_and_nothing_else(
        gateway: RunningGateway, tmp_path: Path) -> None:
    ca = AgentCA.load_or_create(gateway.folder / "ca")
    folder = tmp_path / "ghost"
    csr = identity.create_key(folder, "ghost")
    cert = ca.sign_agent(check_csr(csr.decode()), "agent-never-enrolled")
    ghost = identity.store_certificate(
        folder, cert.public_bytes(serialization.Encoding.PEM), gateway.ca_file.read_bytes())
    for path in AGENT_ROUTES:
        status, _, body = gateway.raw(path, b'{"v": 1, "wait": 0}', cert=ghost)
        assert status == 403
        assert json.loads(body) == {"v": 1, "error": "forbidden"}


def test_tls_1_2_is_served_and_older_versions_are_refused(gateway: RunningGateway) -> None:
    tls12 = ssl.create_default_context(cafile=str(gateway.ca_file))
    tls12.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection((gateway.host, gateway.port), timeout=120) as sock, \
            tls12.wrap_socket(sock, server_hostname=gateway.host) as tls:
        assert tls.version() == "TLSv1.2"
    old = ssl.create_default_context(cafile=str(gateway.ca_file))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    old.set_ciphers("DEFAULT:@SECLEVEL=0")  # so this client really offers TLS 1.0/1.1
    with pytest.raises((ssl.SSLError, ConnectionError)) as refused, \
            socket.create_connection((gateway.host, gateway.port), timeout=120) as sock, \
            old.wrap_socket(sock, server_hostname=gateway.host):
        pass
    assert "NO_CIPHERS_AVAILABLE" not in str(refused.value)  # the server said no, not us


def test_an_environment_takes_at_most_five_agents_and_a_refused_token_is_not_burned(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    agents = [gateway.fake_agent(environment, f"a{n}", tmp_path) for n in range(5)]
    token = gateway.token(environment)
    csr = identity.create_key(tmp_path / "sixth", "sixth")
    body = {"v": 1, "token": token, "name": "sixth", "host": "h", "version": "0.1.0",
            "csr": csr.decode()}
    status, answer = gateway.client().post("/v1/enroll", body)
    assert status == 409 and "already has 5 active agents" in json.dumps(answer)
    assert gateway.cli("agent", "revoke", agents[0].id).returncode == 0
    status, answer = gateway.client().post("/v1/enroll", body)
    assert status == 200, answer
    listed = gateway.cli("agent", "list", "--environment", environment).stdout
    assert "sixth" in listed
