"""Bad requests to a real `ferry gateway`: malformed JSON, wrong versions, unknown fields,
wrong types and oversized bodies get a short JSON 400/413, never a traceback, and the gateway
keeps serving."""

from __future__ import annotations

import http.client
import json
import ssl
import uuid

import pytest
from tests.integration.gateway.harness import REQUEST_SECONDS, FakeAgent, RunningGateway

from ferry_agent.protocol import MAX_BODY_BYTES


@pytest.fixture(scope="module")
def agent(gateway: RunningGateway, tmp_path_factory: pytest.TempPathFactory) -> FakeAgent:
    """One agent for the module: bad requests must leave it (and the gateway) usable."""
    return gateway.fake_agent(f"env-{uuid.uuid4().hex[:8]}", "dc-01",
                              tmp_path_factory.mktemp("robustness"))


def _refused(answer: tuple[int, dict[str, str], bytes], status: int, error: str) -> None:
    code, headers, body = answer
    assert code == status, body
    assert headers["Content-Type"].startswith("application/json")
    assert headers["Server"] == "ferry-gateway"
    message = json.loads(body)
    assert set(message) == {"v", "error"} and error in message["error"], message
    assert b"Traceback" not in body


@pytest.mark.parametrize(("body", "error"), [
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 30_000 + b"]" * 30_000, "not valid JSON"),
    (b'"just a string"', "expected a JSON object"),
    (b'{"wait": 0}', "protocol version None is not 1"),
    (b'{"v": 2, "wait": 0}', "protocol version 2 is not 1"),
    (b'{"v": 1, "wait": 0, "environment": "someone-else"}', "unknown field(s) environment"),
    (b'{"v": 1, "wait": "soon"}', "PollRequest.wait: expected float"),
    (b'{"v": 1, "wait": -1}', "must not be negative"),
])
def test_bad_polls_get_400(gateway: RunningGateway, agent: FakeAgent, body: bytes,
                           error: str) -> None:
    _refused(gateway.raw("/v1/agent/poll", body, cert=agent.identity), 400, error)
    assert agent.poll() is None  # and the gateway serves on


@pytest.mark.parametrize(("body", "error"), [
    ({"v": 1, "leaseId": "x", "workId": "y", "seq": "0", "final": True},
     "WorkResult.seq: expected int"),
    ({"v": 1, "leaseId": "x", "workId": "y", "seq": True, "final": True},
     "WorkResult.seq: expected int"),
    ({"v": 1, "leaseId": "x", "workId": "y", "seq": -1, "final": True}, "must not be negative"),
    ({"v": 1, "leaseId": "x", "seq": 0, "final": True}, "missing 1 required"),
    ({"v": 1, "version": "1", "host": "h", "leases": "abc"}, "Heartbeat.leases"),
])
def test_bad_agent_messages_get_400(gateway: RunningGateway, agent: FakeAgent,
                                    body: dict[str, object], error: str) -> None:
    path = "/v1/agent/heartbeat" if "leases" in body else "/v1/agent/result"
    _refused(gateway.raw(path, json.dumps(body).encode(), cert=agent.identity), 400, error)


def test_bad_work_requests_get_400(gateway: RunningGateway, agent: FakeAgent) -> None:
    auth = {"Authorization": f"Bearer {gateway.credential(agent.environment)}"}
    for body, error in [
        ({"v": 1, "environment": agent.environment, "operation": "format_c", "arguments": {}},
         "unknown operation"),
        ({"v": 1, "environment": agent.environment, "operation": "exists", "arguments": []},
         "WorkRequest.arguments: expected dict"),
        ({"v": 1, "environment": "has spaces", "operation": "exists", "arguments": {}},
         "WorkRequest.environment"),
        ({"v": 1, "environment": agent.environment, "operation": "exists"}, "missing"),
    ]:
        _refused(gateway.raw("/v1/work", json.dumps(body).encode(), auth), 400, error)
    _refused(gateway.raw("/v1/work/any/results", b'{"v": 1, "after": -2}', auth), 400,
             "after >= -1")


def test_oversized_bodies_get_413(gateway: RunningGateway, agent: FakeAgent) -> None:
    # Declared too large: refused before a byte of the body is read.
    context = ssl.create_default_context(cafile=str(gateway.ca_file))
    context.load_cert_chain(agent.identity.cert_file, agent.identity.key_file)
    conn = http.client.HTTPSConnection(gateway.host, gateway.port, timeout=REQUEST_SECONDS,
                                      context=context)
    try:
        conn.putrequest("POST", "/v1/agent/result")
        conn.putheader("Content-Length", str(MAX_BODY_BYTES + 1))
        conn.endheaders(b'{"v": 1')
        response = conn.getresponse()
        _refused((response.status, dict(response.getheaders()), response.read()), 413,
                 "larger than")
    finally:
        conn.close()
    # Streamed without a length (chunked): refused once the limit is crossed.
    big = b'{"v": 1, "leaseId": "' + b"x" * MAX_BODY_BYTES + b'"}'
    _refused(gateway.raw("/v1/agent/result", iter([big]), cert=agent.identity), 413,
             "larger than")
    # Exactly as much as allowed is read (and then refused for what it says): results may
    # be large, polls (like everything else an agent sends) are small.
    padding = b" " * (MAX_BODY_BYTES - 66)
    _refused(gateway.raw("/v1/agent/result", b'{"v": 1, "leaseId": "x", "workId": "y",'
                         b' "seq": "0", "final": true}' + padding, cert=agent.identity),
             400, "WorkResult.seq: expected int")
    padding = b" " * ((64 << 10) - 21)
    _refused(gateway.raw("/v1/agent/poll", b'{"v": 1, "wait": "x"}' + padding,
                         cert=agent.identity), 400, "expected float")
    _refused(gateway.raw("/v1/agent/poll", b'{"v": 1, "wait": "x"}' + padding + b" ",
                         cert=agent.identity), 413, "larger than 65536 bytes")
    assert agent.poll() is None


def test_unknown_routes_and_methods(gateway: RunningGateway) -> None:
    _refused(gateway.raw("/v1/nothing", b"{}"), 404, "not found")
    _refused(gateway.raw("/v1/agent/poll", b"", method="GET"), 405, "method not allowed")
    _refused(gateway.raw("/", b"", method="GET"), 404, "not found")


def test_the_gateway_survived_and_logged_no_failure(gateway: RunningGateway,
                                                    agent: FakeAgent) -> None:
    assert gateway.alive()
    assert agent.heartbeat() is not None
    log = gateway.log_text()
    assert '"status": 500' not in log and "Traceback" not in log
