"""Work through a real `ferry gateway`: a job submits, a fake agent polls and posts chunks, the
job collects them; an expired lease is re-issued with attempt 2 and a new generation; the job
side of ferry.connectors.agent_session works against it; job routes need the bearer token.

Leases that must last are kept alive by heartbeats, as a working agent keeps them; one that must
expire is left without. No check assumes how fast anything happens."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from tests.integration.gateway.harness import (
    FakeAgent,
    RunningGateway,
    start_gateway,
)
from tests.support.polling import eventually

from ferry.connectors.agent_session import GatewayWorkError, RemoteDirectory
from ferry.settings import GatewaySettings
from ferry_agent.directory.errors import DirectoryError
from ferry_agent.directory.read import Entry, ReadScope
from ferry_agent.protocol import ErrorInfo, WorkResult, decode, encode_entry
from ferry_agent.transport import GatewayRefused, GatewayUnavailable

SECRET = "Pa55-never-in-a-log"
LEASE_SECONDS = 5  # what a stall must outlast to lose a lease kept alive by heartbeats


@pytest.fixture(scope="module")
def short_leases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """A gateway whose leases last 5 s (agents time out after 60 s), on 127.0.0.101."""
    running = start_gateway(tmp_path_factory.mktemp("short-leases"), "127.0.0.101",
                            "--lease-seconds", str(LEASE_SECONDS), "--agent-timeout", "60")
    try:
        yield running
    finally:
        running.stop()


@contextmanager
def kept_alive(gateway: RunningGateway, agent: FakeAgent, lease_id: str) -> Iterator[None]:
    """Heartbeat the lease every 0.2 s on a connection of its own while the block runs."""
    client = gateway.agent(agent.identity)
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            with contextlib.suppress(GatewayUnavailable):  # a slow answer: beat again
                client.post("/v1/agent/heartbeat", {"v": 1, "version": "0.1.0",
                                                    "host": "test-host", "leases": [lease_id]})
            stop.wait(0.2)

    beating = threading.Thread(target=beat, daemon=True)
    beating.start()
    try:
        yield
    finally:
        stop.set()
        beating.join(60)


def test_a_work_item_round_trips(gateway: RunningGateway, environment: str,
                                 tmp_path: Path) -> None:
    agent = gateway.fake_agent(environment, "dc-01", tmp_path)
    job = gateway.job()
    status, body = job.submit(environment, "write", {"writes": [{
        "kind": "create", "objectType": "user", "dn": "CN=Ann,OU=Staff,DC=tgt,DC=test",
        "attributes": {"sn": ["Lee"]}, "password": SECRET}]})
    assert status == 200 and body is not None
    work_id = body["workId"]
    assert job.results(work_id, wait=0)[1] == {"v": 1, "state": "queued", "generation": 1,
                                               "chunks": []}
    item = agent.poll(wait=5)
    assert item is not None
    assert (item.work_id, item.operation, item.attempt) == (work_id, "write", 1)
    assert item.arguments["writes"][0]["password"] == SECRET
    assert agent.post(item, 0, "part one") == (200, {"accepted": True, "v": 1})
    assert agent.post(item, 0, "part one") == (200, {"accepted": False, "v": 1})  # a retry
    assert agent.post(item, 1, SECRET + "-in-a-result", final=True)[0] == 200

    status, progress = job.results(work_id, after=-1, wait=5, generation=1)
    assert status == 200 and progress is not None
    assert (progress["state"], progress["generation"]) == ("done", 1)
    chunks = [decode(WorkResult, c) for c in progress["chunks"]]
    assert [(c.seq, c.value, c.final) for c in chunks] == \
        [(0, "part one", False), (1, SECRET + "-in-a-result", True)]
    # Acknowledging the final chunk ends it: the work is forgotten.
    assert job.results(work_id, after=1, generation=1)[1] == {
        "v": 1, "state": "done", "generation": 1, "chunks": []}
    status, gone = job.results(work_id, after=1, generation=1)
    assert status == 404 and gone == {"v": 1, "error": "unknown work id"}

    log = gateway.log_text()
    assert f'"work": "{work_id}"' in log
    assert SECRET not in log
    assert "eyJ" not in log   # how every job credential (a JWT) begins


def test_a_job_waiting_for_results_is_woken_by_the_agent(gateway: RunningGateway,
                                                         environment: str,
                                                         tmp_path: Path) -> None:
    agent = gateway.fake_agent(environment, "dc-01", tmp_path)
    job = gateway.job()
    work_id = job.submit(environment, "exists", {"dn": "CN=x"})[1]["workId"]  # type: ignore[index]
    answers: list[Any] = []
    waiter = threading.Thread(target=lambda: answers.append(job.results(work_id, wait=20)))
    waiter.start()
    item = agent.poll(wait=5)
    assert item is not None
    agent.post(item, 0, True, final=True)
    waiter.join(30)
    status, progress = answers[0]
    assert status == 200 and progress["state"] == "done"
    assert [c["value"] for c in progress["chunks"]] == [True]


def test_an_agent_that_hangs_up_mid_poll_takes_no_work(gateway: RunningGateway,
                                                       environment: str,
                                                       tmp_path: Path) -> None:
    gone = gateway.fake_agent(environment, "dc-gone", tmp_path)
    other = gateway.fake_agent(environment, "dc-other", tmp_path)
    gone.heartbeat()  # connected first: the poll below goes out at once, not after a handshake
    with pytest.raises(GatewayUnavailable):  # it gives up after 5 s of a 25 s poll
        gone.client.post("/v1/agent/poll", {"v": 1, "wait": 25}, timeout=5)
    gone.client.close()
    eventually(lambda: f'"status": 499, "who": "agent:{gone.id}"' in gateway.log_text(),
               "the gateway to notice the hang-up")
    work_id = gateway.job().submit(environment, "exists", {"dn": "CN=x"})[1]["workId"]  # type: ignore[index]
    item = other.poll(wait=5)
    assert item is not None and (item.work_id, item.attempt) == (work_id, 1)


def test_an_expired_lease_is_reissued_with_attempt_2_and_a_new_generation(
        short_leases: RunningGateway, environment: str, tmp_path: Path) -> None:
    first = short_leases.fake_agent(environment, "dc-dies", tmp_path)
    second = short_leases.fake_agent(environment, "dc-takes-over", tmp_path)
    job = short_leases.job()
    work_id = job.submit(environment, "read_full", {})[1]["workId"]  # type: ignore[index]
    item = first.poll(wait=5)
    assert item is not None and item.attempt == 1
    with kept_alive(short_leases, first, item.lease_id):
        assert first.post(item, 0, ["half a read"])[0] == 200
        progress = job.results(work_id, wait=5)[1]
        assert progress is not None
        assert (progress["generation"], len(progress["chunks"])) == (1, 1)

    # `first` now goes quiet: its lease expires and `second` gets the work.
    again = eventually(lambda: second.poll(wait=25), "the expired lease to be re-issued")
    with kept_alive(short_leases, second, again.lease_id):
        assert (again.work_id, again.attempt) == (work_id, 2)
        assert again.lease_id != item.lease_id
        status, _ = first.post(item, 1, ["the other half"], final=True)
        assert status == 409  # too late: the lease is gone

        status, progress = job.results(work_id, after=0, generation=1)
        assert status == 200 and progress is not None
        assert (progress["state"], progress["generation"], progress["chunks"]) == \
            ("leased", 2, [])
        assert second.post(again, 0, ["all of it"], final=True)[0] == 200
    progress = job.results(work_id, after=-1, generation=2, wait=5)[1]
    assert progress is not None
    assert [c["value"] for c in progress["chunks"]] == [["all of it"]]


def test_the_job_side_connector_collects_through_the_gateway(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    """ferry.connectors.agent_session (what sync Jobs use) against the gateway and a fake agent."""
    agent = gateway.fake_agent(environment, "dc-01", tmp_path)
    remote = RemoteDirectory(GatewaySettings(url=gateway.url, ca_file=str(gateway.ca_file),
                                             token=gateway.credential(environment)),
                             environment, call_timeout=300)
    entries = [Entry(guid=f"g{n}", dn=f"CN=u{n},DC=src,DC=test", object_type="user",
                     attributes={"cn": [f"u{n}"]}) for n in range(5)]
    served = threading.Thread(target=_serve_reads, args=(agent, entries))
    served.start()
    try:
        found = list(remote.read_full(ReadScope(["DC=src,DC=test"], ["user"]), ["cn"]))
        assert [e.guid for e in found] == [e.guid for e in entries]
        with pytest.raises(DirectoryError, match="no such object"):
            remote.exists("CN=missing,DC=src,DC=test")
    finally:
        served.join(30)
        remote.close()


def _serve_reads(agent: FakeAgent, entries: list[Entry]) -> None:
    """Answer one read_full in pages of two, then fail one call with a DirectoryError."""
    item = agent.poll(wait=20)
    assert item is not None and item.operation == "read_full"
    pages = [entries[i:i + 2] for i in range(0, len(entries), 2)]
    for seq, page in enumerate(pages):
        agent.post(item, seq, [encode_entry(e) for e in page], final=seq == len(pages) - 1)
    item = agent.poll(wait=20)
    assert item is not None and item.operation == "exists"
    agent.post(item, 0, final=True, error=ErrorInfo(
        "DirectoryError", "no such object", dn=item.arguments["dn"], operation="exists",
        code=32))


def test_a_restarted_gateway_has_lost_its_work_and_says_so(tmp_path: Path) -> None:
    """Queued and leased work lives in memory: after a restart jobs get 404 (the connector
    fails the call with a reason) and agents 409, while identities and the registry remain."""
    gateway = start_gateway(tmp_path / "gateway", "127.0.0.102")
    try:
        agent = gateway.fake_agent("env-restart", "dc-01", tmp_path)
        job = gateway.job()
        leased_id = job.submit("env-restart", "exists", {"dn": "CN=a"})[1]["workId"]  # type: ignore[index]
        queued_id = job.submit("env-restart", "exists", {"dn": "CN=b"})[1]["workId"]  # type: ignore[index]
        item = agent.poll(wait=5)
        assert item is not None and item.work_id == leased_id
        remote = RemoteDirectory(GatewaySettings(url=gateway.url, ca_file=str(gateway.ca_file),
                                                 token=gateway.credential("env-restart")),
                                 "env-restart",
                                 call_timeout=300)
        failures: list[Exception] = []

        def call_in_flight() -> None:
            try:
                remote.exists("CN=c")
            except GatewayWorkError as exc:
                failures.append(exc)

        caller = threading.Thread(target=call_in_flight)
        caller.start()
        eventually(lambda: gateway.log_text().count('"path": "/v1/work"') == 3,
                   "the connector's submission")

        gateway.kill_and_restart()

        caller.join(300)
        assert len(failures) == 1 and "was it restarted?" in str(failures[0])
        for work_id in (leased_id, queued_id):
            status, body = job.results(work_id)
            assert (status, body) == (404, {"v": 1, "error": "unknown work id"})
        assert agent.post(item, 0, True, final=True)[0] == 409
        assert agent.heartbeat() is not None  # the agent's identity outlives the restart
        assert agent.poll() is None
        fresh = job.submit("env-restart", "exists", {"dn": "CN=d"})[1]["workId"]  # type: ignore[index]
        again = agent.poll(wait=5)
        assert again is not None and again.work_id == fresh
        remote.close()
    finally:
        gateway.stop()


def test_job_routes_need_the_bearer_token(gateway: RunningGateway, environment: str) -> None:
    for token in ("", "wrong-" + gateway.credential(environment)):
        with pytest.raises(GatewayRefused) as refused:
            gateway.job(token).submit(environment, "exists", {"dn": "CN=x"})
        assert (refused.value.status, refused.value.message) == (401, "unauthorized")
        with pytest.raises(GatewayRefused) as refused:
            gateway.job(token).results("any-id")
        assert refused.value.status == 401
    status, headers, body = gateway.raw("/v1/work", b'{"v": 1}',
                                        {"Authorization": "Basic "
                                         + gateway.credential(environment)})
    assert (status, body) == (401, b'{"v": 1, "error": "unauthorized"}')
    assert headers["WWW-Authenticate"] == "Bearer"
    # An unknown work id with the right token is a plain 404.
    status, body = gateway.job().results("no-such-work")
    assert status == 404 and body == {"v": 1, "error": "unknown work id"}
