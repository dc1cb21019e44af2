"""The gateway's Prometheus metrics, scraped from a real `ferry gateway` on its plain-HTTP
metrics port: enrollments by outcome, work items queued, leased and re-issued, agents
connected per environment, all as the test made them happen; none of it on the HTTPS port."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.gateway.harness import RunningGateway, free_port, start_gateway
from tests.support.metrics import scrape
from tests.support.polling import eventually

from ferry_agent import identity
from ferry_agent.protocol import EnrollRequest, encode
from ferry_agent.transport import GatewayRefused

HOST = "127.0.0.110"
LEASE_SECONDS = 2  # a lease left without heartbeats is re-issued within a few seconds


@pytest.fixture(scope="module")
def metered(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningGateway, str]]:
    port = free_port(HOST)
    running = start_gateway(tmp_path_factory.mktemp("metrics"), HOST,
                            "--metrics-listen", f"{HOST}:{port}",
                            "--lease-seconds", str(LEASE_SECONDS))
    try:
        yield running, f"http://{HOST}:{port}/metrics"
    finally:
        running.stop()


def test_a_scrape_shows_enrollments_work_and_agents_as_they_happened(
        metered: tuple[RunningGateway, str], tmp_path: Path) -> None:
    gateway, url = metered
    before = scrape(url)
    assert before.value("ferry_gateway_enrollments_total", kind="agent", outcome="enrolled") == 0
    assert before.types["ferry_gateway_enrollments"] == "counter"

    agent = gateway.fake_agent("src", "agent-1", tmp_path)
    csr = identity.create_key(tmp_path / "stranger", "stranger").decode()
    with pytest.raises(GatewayRefused) as refused:
        gateway.client().post("/v1/enroll", encode(EnrollRequest(
            token="not-a-token", name="stranger", host="h", version="0.1.0", csr=csr)))
    assert refused.value.status == 403
    job = gateway.job()
    for _ in range(2):
        status, _ = job.submit("src", "exists", {"dn": "CN=x"})
        assert status == 200
    item = agent.poll()
    assert item is not None

    now = scrape(url)
    assert now.value("ferry_gateway_enrollments_total", kind="agent", outcome="enrolled") == 1
    assert now.value("ferry_gateway_enrollments_total", kind="agent", outcome="refused") == 1
    assert now.value("ferry_gateway_enrollments_total", kind="device", outcome="enrolled") == 0
    assert now.value("ferry_gateway_work_items", environment="src", state="queued") == 1
    assert now.value("ferry_gateway_work_items", environment="src", state="leased") == 1
    assert now.value("ferry_gateway_work_item_events_total", environment="src",
                     event="queued") == 2
    assert now.value("ferry_gateway_work_item_events_total", environment="src",
                     event="leased") == 1
    assert now.value("ferry_gateway_agents_connected", environment="src") == 1
    assert now.types["ferry_gateway_work_items"] == "gauge"

    # No heartbeat: the lease runs out and the item is re-issued, counted once.
    reissued = eventually(lambda: scrape(url).value(
        "ferry_gateway_work_item_events_total", environment="src", event="reissued"),
        "the lease re-issued")
    assert reissued == 1
    after = scrape(url)
    assert after.value("ferry_gateway_work_items", environment="src", state="queued") == 2
    assert after.value("ferry_gateway_work_items", environment="src", state="leased") == 0
    assert after.value("ferry_gateway_work_item_events_total", environment="src",
                       event="failed") == 0
    # Labels stay low-cardinality: environments, states, kinds and outcomes, never an id.
    labels = {k for _, found in after.samples for k, _ in found}
    assert labels <= {"environment", "state", "event", "kind", "outcome"}
    assert agent.id not in after.text and item.work_id not in after.text


def test_metrics_are_not_served_on_the_https_port(metered: tuple[RunningGateway, str]) -> None:
    gateway, _ = metered
    status, _, _ = gateway.raw("/metrics", b"", method="GET")
    assert status == 404


def test_the_metrics_port_serves_nothing_else(metered: tuple[RunningGateway, str]) -> None:
    _, url = metered
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url.replace("/metrics", "/v1/enroll"), timeout=30)
    assert refused.value.code == 404


@pytest.mark.parametrize(("listen", "says"), [
    ("127.0.0.110:8443", "--metrics-listen 127.0.0.110:8443: the HTTPS port 8443 serves agents"),
    ("9091", "--metrics-listen '9091': expected HOST:PORT, e.g. 0.0.0.0:9091"),
])
def test_a_metrics_address_on_the_https_port_or_without_a_host_is_refused(
        listen: str, says: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ferry", "gateway", "--listen", "127.0.0.110:8443",
         "--metrics-listen", listen, "--tls-cert", str(tmp_path / "none.crt"),
         "--tls-key", str(tmp_path / "none.key")],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2 and says in done.stderr, done.stderr
