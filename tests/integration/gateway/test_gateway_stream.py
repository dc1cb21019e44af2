"""The work stream: agents ask for work over one WebSocket instead of a request per item; a
stranger is refused before the upgrade; a gateway without it sends agents back to long-polls."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.integration.gateway.harness import RunningGateway, start_gateway
from tests.support.polling import eventually

from ferry_agent.protocol import POLL_WAIT_SECONDS, WorkItem, decode
from ferry_agent.stream import StreamUnavailable, WorkStream
from ferry_agent.transport import GatewayClient, GatewayRefused, GatewayUnavailable


def test_work_arrives_over_the_stream_and_the_lease_is_the_agents(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    agent = gateway.fake_agent(environment, "dc-01", tmp_path)
    stream = WorkStream.open(agent.client)
    try:
        assert stream.ask({"v": 1, "wait": 0}, timeout=120) == {"v": 1, "work": None}
        job = gateway.job()
        ids = [job.submit(environment, "exists", {"dn": f"CN={n}"})[1]["workId"]  # type: ignore[index]
               for n in range(3)]
        got = []
        for _ in ids:
            answer = stream.ask({"v": 1, "wait": 5}, timeout=120)
            item = decode(WorkItem, answer["work"])
            assert agent.post(item, 0, True, final=True)[0] == 200
            got.append(item.work_id)
        assert got == ids  # in order, each leased to this agent (its result was accepted)
        # A long wait on the stream is answered when work comes, not when the wait runs out:
        # the gateway's wait starts after `started`, so an answer only at its end would come
        # POLL_WAIT_SECONDS after `started` or later, however fast or slow the machine.
        sent = threading.Event()
        send = stream._send

        def send_and_tell(opcode: int, payload: bytes) -> None:
            send(opcode, payload)
            sent.set()  # the work is submitted only after the ask is on its way

        stream._send = send_and_tell
        with ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            asked = pool.submit(stream.ask, {"v": 1, "wait": POLL_WAIT_SECONDS},
                                POLL_WAIT_SECONDS + 30)
            assert sent.wait(60), "the ask was never sent"
            job.submit(environment, "exists", {"dn": "CN=late"})
            assert asked.result()["work"] is not None
            assert time.monotonic() - started < POLL_WAIT_SECONDS
    finally:
        stream.close()

    def logged() -> bool:  # the gateway logs the stream once its handler has ended
        lines = [json.loads(line) for line in gateway.log_text().splitlines()
                 if line.startswith("{")]
        return any(e.get("path") == "/v1/agent/stream" and e.get("items") == 4 for e in lines)

    eventually(logged, "the stream's log line with its 4 items")


def test_a_malformed_message_closes_the_stream_and_the_gateway_goes_on(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    agent = gateway.fake_agent(environment, "dc-02", tmp_path)
    stream = WorkStream.open(agent.client)
    with pytest.raises(GatewayUnavailable, match="closed the work stream"):
        stream.ask({"v": 1, "wait": "soon"}, timeout=120)
    stream.close()
    again = WorkStream.open(agent.client)
    assert again.ask({"v": 1, "wait": 0}, timeout=120)["work"] is None
    again.close()


def test_only_enrolled_agents_may_open_it(gateway: RunningGateway) -> None:
    with pytest.raises(GatewayRefused) as refused:
        WorkStream.open(GatewayClient(gateway.url, ca_file=gateway.ca_file))
    assert refused.value.status == 401


def test_without_the_stream_the_gateway_says_so_before_any_upgrade(
        tmp_path: Path, environment: str) -> None:
    running = start_gateway(tmp_path / "gateway", "127.0.0.106", "--no-agent-stream")
    try:
        agent = running.fake_agent(environment, "dc-03", tmp_path)
        with pytest.raises(StreamUnavailable, match="404"):
            WorkStream.open(agent.client)
        assert agent.poll(wait=0) is None  # long-polling still works
    finally:
        running.stop()
