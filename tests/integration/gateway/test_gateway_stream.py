"""The work stream: agents ask for work over one WebSocket instead of a request per item; a
stranger is refused before the upgrade; a gateway without it sends agents back to long-polls."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.integration.gateway.harness import RunningGateway, start_gateway, wait_until

from ferry_agent.protocol import WorkItem, decode
from ferry_agent.stream import StreamUnavailable, WorkStream
from ferry_agent.transport import GatewayClient, GatewayRefused, GatewayUnavailable


def test_work_arrives_over_the_stream_and_the_lease_is_the_agents(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    agent = gateway.fake_agent(environment, "dc-01", tmp_path)
    stream = WorkStream.open(agent.client)
    try:
        assert stream.ask({"v": 1, "wait": 0}, timeout=10) == {"v": 1, "work": None}
        job = gateway.job()
        ids = [job.submit(environment, "exists", {"dn": f"CN={n}"})[1]["workId"]  # type: ignore[index]
               for n in range(3)]
        got = []
        for _ in ids:
            answer = stream.ask({"v": 1, "wait": 5}, timeout=20)
            item = decode(WorkItem, answer["work"])
            assert agent.post(item, 0, True, final=True)[0] == 200
            got.append(item.work_id)
        assert got == ids  # in order, each leased to this agent (its result was accepted)
        # A long wait on the stream is answered as soon as work comes.
        started = time.monotonic()
        job.submit(environment, "exists", {"dn": "CN=late"})
        assert stream.ask({"v": 1, "wait": 20}, timeout=30)["work"] is not None
        assert time.monotonic() - started < 10
    finally:
        stream.close()


    def logged() -> bool:  # the gateway logs the stream once its handler has ended
        lines = [json.loads(line) for line in gateway.log_text().splitlines()
                 if line.startswith("{")]
        return any(e.get("path") == "/v1/agent/stream" and e.get("items") == 4 for e in lines)

    wait_until(logged, 10, "the stream's log line with its 4 items")


def test_a_malformed_message_closes_the_stream_and_the_gateway_goes_on(
        gateway: RunningGateway, environment: str, tmp_path: Path) -> None:
    agent = gateway.fake_agent(environment, "dc-02", tmp_path)
    stream = WorkStream.open(agent.client)
    with pytest.raises(GatewayUnavailable, match="closed the work stream"):
        stream.ask({"v": 1, "wait": "soon"}, timeout=10)
    stream.close()
    again = WorkStream.open(agent.client)
    assert again.ask({"v": 1, "wait": 0}, timeout=10)["work"] is None
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
