"""The agent's transport over real TLS on loopback: mutual TLS with an identity made by
ferry_agent.identity, CA checks, a CONNECT proxy with credentials, limits and errors."""

from __future__ import annotations

import json
import logging
import os
import ssl
import stat
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from tests.support.connect_proxy import ConnectProxy
from tests.support.pki import CertificateAuthority

from ferry_agent import identity
from ferry_agent.identity import Identity, IdentityError
from ferry_agent.transport import (
    GatewayClient,
    GatewayRefused,
    GatewayUnavailable,
    MalformedAnswer,
    ProxyError,
)

ADDRESS = "127.0.0.1"
BIG = 1024 * 1024  # what /big answers
LIMIT = 256 * 1024  # what the client accepts in the oversize tests


class _Gateway(ThreadingHTTPServer):
    """A stand-in gateway: TLS with required client certificates, handshakes in worker threads."""

    daemon_threads = True

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__((ADDRESS, 0), _Handler)
        self.context = context
        self.lock = threading.Lock()
        self.handshake_errors: list[str] = []
        self.connections = 0
        self.resumed: list[bool] = []  # per connection: whether its TLS session was resumed
        self.closed = 0
        self.release = threading.Event()  # lets /slow answer (at teardown)
        self.slow_answers = 0

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The handshake runs here, in the request's thread, so a client that stalls or fails
        # it cannot block the accept loop.
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            with self.lock:
                self.handshake_errors.append(str(exc))
            return
        with self.lock:
            self.connections += 1
            self.resumed.append(bool(tls.session_reused))
        try:
            self.RequestHandlerClass(tls, client_address, self)
        except OSError:
            pass  # a client that went away mid-request
        finally:
            tls.close()
            with self.lock:
                self.closed += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failures are recorded above; no tracebacks on stderr


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Gateway

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if status == 503:
            self.send_header("Retry-After", "7")
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        received = json.loads(self.rfile.read(length))
        subject = dict(item[0] for item in self.connection.getpeercert()["subject"])
        answer = {"agent": subject["commonName"], "echo": received, "path": self.path}
        self._send(200, json.dumps(answer).encode())

    def do_GET(self) -> None:
        if self.path == "/big":
            self._send(200, b'{"pad":"' + b"x" * BIG + b'"}')
        elif self.path == "/big-chunked":
            # No Content-Length: only counting what arrives can catch this one.
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            piece = b"x" * 65536
            self.wfile.write(b'%x\r\n{"pad":"\r\n' % len(b'{"pad":"'))
            for _ in range(BIG // len(piece)):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b'2\r\n"}\r\n0\r\n\r\n')
        elif self.path == "/refused":
            self._send(403, b'{"error": "agent revoked"}')
        elif self.path == "/busy":
            self._send(503, b'{"error": "draining"}')
        elif self.path == "/html":
            self._send(200, b"<html>login</html>", "text/html")
        elif self.path == "/slow":
            self.server.release.wait(120)
            with self.server.lock:
                self.server.slow_answers += 1
            self._send(200, b"{}")
        elif self.path == "/then-close":
            # Closes the connection after answering without saying so, as a gateway or load
            # balancer does when a kept-alive connection has been idle too long.
            self._send(200, b'{"ok": true}')
            self.close_connection = True
        else:
            self._send(404, b'{"error": "no such path"}')


@dataclass(frozen=True)
class Site:
    url: str
    ca_file: Path  # the CA that signed the server and client certificates
    other_ca_file: Path  # a CA that signed neither
    identity: Identity
    server: _Gateway


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create("Ferry Gateway CA")


@pytest.fixture
def site(ca: CertificateAuthority, tmp_path: Path) -> Iterator[Site]:
    """A gateway stand-in on 127.0.0.1 and an agent identity enrolled with its CA."""
    ca_file = ca.write(tmp_path / "ca.crt")
    other_ca_file = CertificateAuthority.create("Someone Else").write(tmp_path / "other-ca.crt")
    cert_file, key_file = ca.issue_server(ADDRESS, tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(ca_file)
    context.load_cert_chain(cert_file, key_file)

    state = tmp_path / "agent-state"
    csr = identity.create_key(state, "agent-1")
    agent = identity.store_certificate(state, ca.sign_csr(csr), ca.pem)

    server = _Gateway(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        url = f"https://{ADDRESS}:{server.server_address[1]}"
        yield Site(url, ca_file, other_ca_file, agent, server)
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _client(site: Site, **options: Any) -> GatewayClient:
    options.setdefault("environ", {})  # no proxy from this process's environment
    return GatewayClient.for_identity(site.url, site.identity, **options)


def _wait_for(condition: Any, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_request_with_the_agent_identity_succeeds(site: Site) -> None:
    with _client(site) as client:
        status, body = client.post("/v1/hello", {"version": "0.1.0", "host": "dc-01"})
        again, _ = client.post("/v1/hello", {"n": 2})
    assert status == 200 and again == 200
    assert body == {
        "agent": "agent-1",  # the CN of the CSR identity.py made, as the server saw it
        "echo": {"version": "0.1.0", "host": "dc-01"},
        "path": "/v1/hello",
    }
    assert site.server.connections == 1  # the second request reused the connection
    assert site.server.handshake_errors == []


def test_without_a_client_certificate_the_gateway_refuses_the_handshake(site: Site) -> None:
    client = GatewayClient(site.url, ca_file=site.ca_file, environ={})
    with client, pytest.raises(GatewayUnavailable) as caught:
        client.post("/v1/hello", {})
    assert f"{ADDRESS}:" in str(caught.value)
    assert _wait_for(lambda: site.server.handshake_errors)
    assert "certificate" in site.server.handshake_errors[0].lower()
    assert site.server.connections == 0


def test_a_gateway_certificate_from_another_ca_is_refused(site: Site) -> None:
    client = _client(site, ca_file=site.other_ca_file)
    with client, pytest.raises(GatewayUnavailable, match="not trusted") as caught:
        client.post("/v1/hello", {})
    assert str(site.other_ca_file) in str(caught.value)
    assert site.server.connections == 0


def test_through_a_connect_proxy_with_credentials(site: Site) -> None:
    with ConnectProxy("ferry", "s3cret:p@ss/word") as proxy:  # needs quoting in the URL
        with _client(site, environ={"HTTPS_PROXY": proxy.url}) as client:
            assert client.proxy is not None
            status, body = client.post("/v1/hello", {"via": "proxy"})
            client.post("/v1/hello", {"via": "proxy", "n": 2})
        assert status == 200 and body is not None and body["agent"] == "agent-1"
        assert proxy.tunnels == 1  # both requests went through one kept-alive tunnel
        assert proxy.refused == 0
        assert proxy.targets == [site.url.removeprefix("https://")]


def test_wrong_proxy_credentials_fail_with_407_and_no_password(
    site: Site, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Pa55word"
    with ConnectProxy("ferry", "s3cret-right") as proxy:
        environ = {"https_proxy": proxy.url_with("ferry", wrong)}
        with _client(site, environ=environ) as client:
            with pytest.raises(ProxyError) as caught:
                client.post("/v1/hello", {})
            shown = repr(client)
        assert proxy.refused == 1 and proxy.tunnels == 0
    error = caught.value
    assert error.status == 407
    assert "407" in str(error) and "HTTPS_PROXY" in str(error)
    assert isinstance(error, GatewayUnavailable)  # a reconnect loop keeps trying
    output = capsys.readouterr()
    everything = "\n".join(
        [
            str(error),
            repr(error),
            shown,
            "".join(traceback.format_exception(error)),
            output.out,
            output.err,
            caplog.text,
        ]
    )
    assert wrong not in everything and "s3cret" not in everything
    assert site.server.connections == 0


def test_no_proxy_sends_the_request_directly(site: Site) -> None:
    with ConnectProxy("ferry", "s3cret") as proxy:
        environ = {"https_proxy": proxy.url, "NO_PROXY": "localhost, 127.0.0.0/8"}
        with _client(site, environ=environ) as client:
            assert client.proxy is None
            status, _ = client.post("/v1/hello", {})
        assert status == 200
        assert proxy.tunnels == 0 and proxy.targets == []


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_an_oversized_answer_is_refused(site: Site, path: str) -> None:
    with _client(site, max_response_bytes=LIMIT) as client:
        with pytest.raises(MalformedAnswer, match="limit"):
            client.get(path)
        status, _ = client.post("/v1/hello", {})  # the client is still usable
    assert status == 200
    assert site.server.connections == 2  # the oversized answer's connection was dropped


def test_gateway_refusal_carries_the_servers_message(site: Site) -> None:
    with _client(site) as client, pytest.raises(GatewayRefused) as caught:
        client.get("/refused")
    assert caught.value.status == 403
    assert caught.value.message == "agent revoked"


def test_a_busy_gateway_is_unavailable_with_retry_after(site: Site) -> None:
    with _client(site) as client, pytest.raises(GatewayUnavailable) as caught:
        client.get("/busy")
    assert caught.value.status == 503
    assert caught.value.retry_after == 7.0
    assert "draining" in str(caught.value)


def test_other_client_errors_are_returned(site: Site) -> None:
    with _client(site) as client:
        assert client.get("/nowhere") == (404, {"error": "no such path"})


def test_an_answer_that_is_not_json_is_a_protocol_error(site: Site) -> None:
    with _client(site) as client, pytest.raises(MalformedAnswer, match="text/html"):
        client.get("/html")


def test_the_timeout_covers_the_whole_request(site: Site) -> None:
    """A call's own timeout ends it: /slow answers only at teardown (or after 120 s, before the
    client's 600 s default would end the call), so only that timeout can raise here."""
    with _client(site, timeout=600) as client, \
            pytest.raises(GatewayUnavailable, match="in time"):
        client.get("/slow", timeout=0.3)
    assert site.server.slow_answers == 0


def test_a_connection_the_gateway_closed_while_idle_is_not_reused(site: Site) -> None:
    with _client(site) as client:
        assert client.get("/then-close") == (200, {"ok": True})
        assert _wait_for(lambda: site.server.closed == 1)
        status, _ = client.post("/v1/hello", {})
    assert status == 200
    assert site.server.connections == 2


def test_a_new_connection_resumes_the_tls_session_and_still_proves_the_agent(
        site: Site) -> None:
    with _client(site) as client:
        assert client.get("/then-close") == (200, {"ok": True})
        assert _wait_for(lambda: site.server.closed == 1)
        status, body = client.post("/v1/hello", {"n": 2})
    assert status == 200 and body is not None
    assert body["agent"] == "agent-1"  # the server still sees the agent's certificate
    assert site.server.resumed == [False, True]


def test_a_resumed_session_goes_through_the_proxy_too(site: Site) -> None:
    with ConnectProxy("ferry", "s3cret") as proxy, \
            _client(site, environ={"HTTPS_PROXY": proxy.url}) as client:
        client.get("/then-close")
        assert _wait_for(lambda: site.server.closed == 1)
        status, _ = client.post("/v1/hello", {})
        assert proxy.tunnels == 2
    assert status == 200
    assert site.server.resumed == [False, True]


def test_identity_files_are_owner_only(site: Site) -> None:
    agent = site.identity
    assert stat.S_IMODE(agent.folder.stat().st_mode) == 0o700
    for path in (agent.key_file, agent.cert_file, agent.ca_file):
        assert path is not None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert sorted(p.name for p in agent.folder.iterdir()) == ["agent.crt", "agent.key", "ca.crt"]


def test_a_key_readable_by_others_is_refused(site: Site) -> None:
    os.chmod(site.identity.key_file, 0o644)
    with pytest.raises(IdentityError) as caught:
        identity.load_identity(site.identity.folder)
    assert caught.value.path == site.identity.key_file
    assert str(site.identity.key_file) in str(caught.value)
    assert "0644" in str(caught.value) and "chmod 600" in str(caught.value)
