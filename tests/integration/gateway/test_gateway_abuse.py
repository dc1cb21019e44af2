"""A real `ferry gateway` under abuse: floods of large bodies from strangers, clients that
trickle their requests, too many connections, one agent holding many polls or streams, a
revoked agent's open stream, malformed requests fishing for the server's version."""

from __future__ import annotations

import http.client
import queue
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.gateway.harness import (
    REQUEST_SECONDS,
    FakeAgent,
    RunningGateway,
    body_json,
    start_gateway,
)
from tests.support.polling import eventually

from ferry_agent.identity import Identity
from ferry_agent.protocol import MAX_BODY_BYTES, WorkItem
from ferry_agent.stream import StreamUnavailable, WorkStream
from ferry_agent.transport import GatewayUnavailable

FLOOD = 28                       # connections, each posting a body of MAX_BODY_BYTES
FLOOD_GROWTH_LIMIT = 100 << 20   # what the flood may add to the gateway's resident memory
POLLS_PER_AGENT = 3              # the gateway's default limit of long-polls per agent


@pytest.fixture
def agent(gateway: RunningGateway, environment: str, tmp_path: Path) -> FakeAgent:
    return gateway.fake_agent(environment, "dc-01", tmp_path)


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway that keeps idle connections 3 s and gives a request 2 s for its headers and
    2 s for its body."""
    running = start_gateway(tmp_path_factory.mktemp("slow"), "127.0.0.107", "--idle-timeout",
                            "3", "--header-timeout", "2", "--body-timeout", "2")
    try:
        yield running
    finally:
        running.stop()


def _tls(gateway: RunningGateway, cert: Identity | None = None) -> ssl.SSLSocket:
    """A connection that completed its TLS handshake; tried again while handshakes fail
    (a stalled machine can miss the gateway's handshake deadline)."""
    context = ssl.create_default_context(cafile=str(gateway.ca_file))
    if cert is not None:
        context.load_cert_chain(cert.cert_file, cert.key_file)

    def connected() -> ssl.SSLSocket | None:
        sock = socket.create_connection((gateway.host, gateway.port), timeout=REQUEST_SECONDS)
        try:
            return context.wrap_socket(sock, server_hostname=gateway.host)
        except OSError:
            sock.close()
            return None

    return eventually(connected, f"a TLS handshake with the gateway at {gateway.url}", 120)


def _read_until_closed(sock: ssl.SSLSocket, received: bytearray) -> bool:
    """Read what the gateway sent into `received`; True once it closed the connection."""
    sock.settimeout(0.2)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
            received += data
    except TimeoutError:
        return False
    except OSError:  # reset, or TLS torn down: closed as well
        return True


def _status_line(answer: bytes) -> bytes:
    return answer.split(b"\r\n", 1)[0]


def _headers(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head)}


def _status(gateway: RunningGateway, path: str = "/healthz") -> int | None:
    """The status of a GET on a new connection; None when the connection broke (a stalled
    client can miss the small timeouts of the `slow` gateway)."""
    try:
        return gateway.raw(path, b"", method="GET")[0]
    except (OSError, http.client.HTTPException):
        return None


def _healthy(gateway: RunningGateway) -> bool:
    return _status(gateway) == 200


def _served(gateway: RunningGateway, agent: FakeAgent) -> bool:
    """Whether a short poll of the agent is answered 200 (429 while it holds too much)."""
    return gateway.raw("/v1/agent/poll", b'{"v": 1, "wait": 0}', cert=agent.identity)[0] == 200


def _memory(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, in bytes."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0]) * 1024
    return found


# -- memory ------------------------------------------------------------------------------------

def test_a_flood_of_large_unauthenticated_bodies_leaves_memory_bounded(tmp_path: Path) -> None:
    running = start_gateway(tmp_path / "gateway", "127.0.0.108")
    try:
        before = _memory(running.process.pid)
        body = b'{"v": 1, "token": "' + b"x" * (MAX_BODY_BYTES - 40) + b'"}'
        answers: list[int] = []
        failures: list[BaseException] = []

        def post(chunked: bool) -> None:
            conn = http.client.HTTPSConnection(
                running.host, running.port, timeout=120,
                context=ssl.create_default_context(cafile=str(running.ca_file)))
            try:
                # Half declare their length, half stream the body without one.
                conn.request("POST", "/v1/enroll", body=iter([body]) if chunked else body,
                             headers={"Content-Type": "application/json"})
                answers.append(conn.getresponse().status)
            except OSError:  # the gateway hung up before the whole body was sent
                answers.append(0)
            except BaseException as exc:  # the test fails with it below, not this thread
                failures.append(exc)
            finally:
                conn.close()

        threads = [threading.Thread(target=post, args=(n % 2 == 1,)) for n in range(FLOOD)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        assert not [t for t in threads if t.is_alive()], "the flood did not end in 600 s"
        assert not failures, failures
        assert len(answers) == FLOOD, answers
        after = _memory(running.process.pid)
        growth = after["VmHWM"] - before["VmRSS"]
        print(f"gateway RSS before {before['VmRSS'] >> 20} MB, peak during the flood"
              f" {after['VmHWM'] >> 20} MB, after {after['VmRSS'] >> 20} MB")
        assert growth < FLOOD_GROWTH_LIMIT, (
            f"{FLOOD} unauthenticated {MAX_BODY_BYTES >> 20} MB bodies grew the gateway from"
            f" {before['VmRSS'] >> 20} MB to a peak of {after['VmHWM'] >> 20} MB")
        assert set(answers) <= {413, 0}, answers
        eventually(lambda: _healthy(running), "the gateway to serve after the flood", 60)
    finally:
        running.stop()


def test_an_enrollment_body_is_capped_small_whether_or_not_it_declares_its_length(
        gateway: RunningGateway) -> None:
    big = b'{"v": 1, "token": "' + b"x" * (128 << 10) + b'"}'
    for body in (big, iter([big])):
        status, _, answer = gateway.raw("/v1/enroll", body)
        assert status == 413, answer
        assert "larger than 65536 bytes" in body_json(answer)["error"]


# -- slow clients ------------------------------------------------------------------------------

def test_a_client_that_trickles_its_headers_is_cut_off(slow: RunningGateway) -> None:
    with _tls(slow) as sock:
        sock.sendall(b"POST /v1/enroll HTTP/1.1\r\nHost: gateway\r\nX-Slow: ")
        received = bytearray()

        def cut() -> bool:
            try:
                sock.sendall(b"a")  # a byte now and then, never the end of the headers
            except OSError:
                return True
            return _read_until_closed(sock, received)

        eventually(cut, "the gateway to close a connection whose headers never end", 60)
    with _tls(slow) as idle:  # a connection that sends nothing at all goes the same way
        eventually(lambda: _read_until_closed(idle, bytearray()),
                   "the gateway to close a connection that sends no request", 60)
    # The point is that it serves again; a single request could itself miss the 2-3 s
    # timeouts if this machine stalls, so ask until one is answered.
    eventually(lambda: _healthy(slow), "the gateway to serve after cutting those off", 60)


def test_a_client_that_trickles_its_body_is_cut_off(slow: RunningGateway) -> None:
    with _tls(slow) as sock:
        sock.sendall(b"POST /v1/enroll HTTP/1.1\r\nHost: gateway\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 4000\r\n\r\n{")
        received = bytearray()

        def cut() -> bool:
            try:
                sock.sendall(b" ")
            except OSError:
                return True
            return _read_until_closed(sock, received)

        eventually(cut, "the gateway to close a connection whose body never ends", 60)
    if received:  # it may have said why before hanging up
        assert _status_line(bytes(received)) == b"HTTP/1.1 408 Request Timeout", received
    eventually(lambda: _healthy(slow), "the gateway to serve after cutting it off", 60)


# -- connection limits -------------------------------------------------------------------------

def test_strangers_cannot_take_every_connection_and_agents_are_still_served(
        tmp_path: Path, environment: str) -> None:
    running = start_gateway(tmp_path / "gateway", "127.0.0.109",
                            "--max-anonymous-connections", "4", "--idle-timeout", "300")
    held: list[ssl.SSLSocket] = []
    try:
        agent = running.fake_agent(environment, "dc-01", tmp_path)
        held = [_tls(running) for _ in range(4)]

        def refused() -> tuple[dict[str, str], bytes] | None:
            try:
                status, headers, body = running.raw("/healthz", b"", method="GET")
            except (OSError, http.client.HTTPException):
                return None
            return (headers, body) if status == 503 else None

        headers, body = eventually(refused, "a fifth connection without a certificate to be"
                                   " refused", 60)
        assert "too many connections" in body_json(body)["error"]
        assert headers["Retry-After"] and headers["Server"] == "ferry-gateway"
        assert agent.heartbeat() is not None  # agents have their own budget
        for sock in held:
            sock.close()
        eventually(lambda: _healthy(running),
                   "connections to be served again once the strangers left", 60)
    finally:
        for sock in held:
            sock.close()
        running.stop()


def test_one_agent_cannot_hold_more_than_a_few_connections(
        gateway: RunningGateway, agent: FakeAgent) -> None:
    held: list[ssl.SSLSocket] = []
    try:
        held = [_tls(gateway, agent.identity) for _ in range(16)]

        def refused() -> bytes | None:
            status, _, body = gateway.raw("/v1/agent/poll", b'{"v": 1, "wait": 0}',
                                          cert=agent.identity)
            return body if status == 429 else None

        body = eventually(refused, "the agent's 17th connection to be refused", 60)
        assert "connections open" in body_json(body)["error"]
    finally:
        for sock in held:
            sock.close()
    eventually(lambda: _served(gateway, agent), "the agent to be served again", 60)


def _outcome(outcomes: queue.Queue[WorkItem | BaseException], timeout: float) -> WorkItem:
    """The next long-poll thread's outcome: the work it got, or its failure raised here."""
    try:
        found = outcomes.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no long-poll got work within {timeout:.0f} s")
    if isinstance(found, BaseException):
        raise found
    return found


def test_one_agent_gets_a_few_long_polls_and_then_429(
        gateway: RunningGateway, agent: FakeAgent, environment: str) -> None:
    outcomes: queue.Queue[WorkItem | BaseException] = queue.Queue()
    stop = threading.Event()

    def long_poll() -> None:
        """Poll until work comes, as an agent does: again when a poll ran out, and again
        when refused (the probe below holds one of the slots for a moment now and then)."""
        try:
            while not stop.is_set():
                try:
                    item = agent.poll(wait=25)
                except GatewayUnavailable as exc:
                    if exc.status != 429:
                        raise
                    stop.wait(0.2)
                    continue
                if item is not None:
                    outcomes.put(item)
                    return
        except BaseException as exc:  # the main thread fails the test with it
            outcomes.put(exc)

    polls = [threading.Thread(target=long_poll, daemon=True) for _ in range(POLLS_PER_AGENT)]
    for poll in polls:
        poll.start()
    try:
        def refused() -> bytes | None:
            if not outcomes.empty():  # no work yet: a poll can only have ended by failing
                pytest.fail(f"a long-poll ended before any work came: {_outcome(outcomes, 0)}")
            status, _, body = gateway.raw("/v1/agent/poll", b'{"v": 1, "wait": 0}',
                                          cert=agent.identity)
            return body if status == 429 else None

        # Only the threads poll this agent, so a refused probe means all of theirs are held.
        body = eventually(refused, "a fourth long-poll of one agent to be refused", 120)
        assert f"{POLLS_PER_AGENT} long-polls open" in body_json(body)["error"]
        job = gateway.job()
        submitted = set()
        for n in range(POLLS_PER_AGENT):  # work ends the waiting polls
            status, answer = job.submit(environment, "exists", {"dn": f"CN={n}"})
            assert status == 200 and answer is not None, answer
            submitted.add(answer["workId"])
        got = {_outcome(outcomes, 120).work_id for _ in polls}
        assert got == submitted
        for poll in polls:
            poll.join(REQUEST_SECONDS)
        assert not [p for p in polls if p.is_alive()]
    finally:
        stop.set()  # no thread polls on once the test has failed
    eventually(lambda: _served(gateway, agent), "the agent's polls to be served again", 60)


def test_one_agent_gets_a_couple_of_streams_and_then_429(
        gateway: RunningGateway, agent: FakeAgent) -> None:
    streams = [WorkStream.open(agent.client, REQUEST_SECONDS) for _ in range(2)]
    try:
        with pytest.raises(StreamUnavailable, match="429"):
            WorkStream.open(agent.client, REQUEST_SECONDS)
        streams.pop().close()

        def opened() -> WorkStream | None:
            try:
                return WorkStream.open(agent.client, REQUEST_SECONDS)
            except StreamUnavailable:
                return None

        streams.append(eventually(opened, "a stream once another one closed", 60))
        assert streams[-1].ask({"v": 1, "wait": 0}, timeout=REQUEST_SECONDS)["work"] is None
    finally:
        for stream in streams:
            stream.close()


# -- revocation --------------------------------------------------------------------------------

def test_a_revoked_agents_open_stream_is_closed(gateway: RunningGateway,
                                                agent: FakeAgent) -> None:
    stream = WorkStream.open(agent.client, REQUEST_SECONDS)
    try:
        assert stream.ask({"v": 1, "wait": 0}, timeout=REQUEST_SECONDS)["work"] is None
        assert gateway.cli("agent", "revoke", agent.id).returncode == 0
        # Waiting for work on the open stream, the gateway closes it instead of answering:
        # within its 5 s sweep, or later on a stalled machine, so wait as an agent does
        # (again whenever a wait ran out) for up to a minute.
        deadline = time.monotonic() + 60
        with pytest.raises(GatewayUnavailable, match=r"closed the work stream.*agent revoked"):
            while time.monotonic() < deadline:
                answer = stream.ask({"v": 1, "wait": 10}, timeout=10 + REQUEST_SECONDS)
                assert answer["work"] is None, answer
            pytest.fail("the revoked agent's work stream was still open after 60 s")
    finally:
        stream.close()


# -- no version disclosed ----------------------------------------------------------------------

@pytest.mark.parametrize("request_bytes", [
    b"HZ / HTTP/1.1\r\nHost: gateway\r\n\r\n",                    # not a method
    b"GET / HTTP/9.9\r\nHost: gateway\r\n\r\n",                   # not a version
    b"GET /\x00 HTTP/1.1\r\nHost: gateway\r\n\r\n",               # not a path
    b"GET / HTTP/1.1\r\nHost: gateway\r\nno colon here\r\n\r\n",  # not a header
    b"GET / HTTP/1.1\r\nHost: gateway\r\nX-Long: " + b"a" * 10_000 + b"\r\n\r\n",
    b"POST /v1/enroll HTTP/1.1\r\nHost: gateway\r\nContent-Length: x\r\n\r\n",
], ids=["method", "version", "path", "header", "long-header", "length"])
def test_a_malformed_request_gets_no_version(gateway: RunningGateway,
                                             request_bytes: bytes) -> None:
    with _tls(gateway) as sock:
        sock.sendall(request_bytes)
        received = bytearray()
        eventually(lambda: _read_until_closed(sock, received), "the answer", 60)
    answer = bytes(received)
    assert _status_line(answer).split(b" ")[1].startswith(b"4"), answer
    assert _headers(answer)["server"] == "ferry-gateway"
    for disclosed in (b"aiohttp", b"Python", b"Traceback"):
        assert disclosed not in answer, answer
