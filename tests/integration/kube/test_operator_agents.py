"""An agent-mode Environment on a real API server: the operator asks a real gateway which
agents are connected and shows them in status, the Connected condition and the Agents column."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.integration.gateway.harness import RunningGateway, start_gateway
from tests.support.kube_api import KubeAPI
from tests.support.operator import running_operator
from tests.support.polling import eventually

from ferry.settings import OperatorSettings

ROOT = Path(__file__).resolve().parents[3]
ENVIRONMENT = {
    "apiVersion": "ferry.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "corp"},
    "spec": {"type": "ActiveDirectory", "connection": "agent",
             "activeDirectory": {"host": "dc1.corp.example", "baseDN": "DC=corp,DC=example"}},
}


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    """Agents count as gone 15 s after their last call: a live agent (heartbeating every
    15/4 s) stays connected through any stall shorter than about 10 s."""
    running = start_gateway(tmp_path / "gateway", "127.0.0.104", "--agent-timeout", "15")
    try:
        yield running
    finally:
        running.stop()


def start_agent(gateway: RunningGateway, folder: Path, name: str) -> subprocess.Popen[bytes]:
    """A real ferry-agent for environment corp; it needs no domain controller until work comes."""
    folder.mkdir(parents=True)
    (folder / "password").write_text("unused\n")
    return gateway.start_agent("corp", name, folder, {
        "host": "127.0.0.250", "bind_user": "svc", "password_file": str(folder / "password")})


def test_agent_environment_shows_its_agents_and_loses_connected_when_they_go(
        kube_api: KubeAPI, kube_namespace: str, gateway: RunningGateway,
        tmp_path: Path) -> None:
    kube_api.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    kube_api.kubectl("wait", "--for=condition=Established", "crd/environments.ferry.dev",
                     "--timeout=60s")
    kube_api.kubectl("apply", "-f", "-", namespace=kube_namespace,
                     input=yaml.safe_dump(ENVIRONMENT))

    def status() -> dict[str, Any]:
        body = json.loads(kube_api.kubectl("get", "environment", "corp", "-o", "json",
                                           namespace=kube_namespace).stdout)
        return body.get("status") or {}

    def connected() -> dict[str, Any]:
        return next((c for c in status().get("conditions") or []
                     if c["type"] == "Connected"), {})

    agent = start_agent(gateway, tmp_path / "agent", "dc-agent-1")
    settings = OperatorSettings(namespace=kube_namespace, tick_seconds=0.5,
                                gateway_url=gateway.url, gateway_ca=str(gateway.ca_file),
                                job_signing_key_file=str(gateway.signing_key))
    try:
        with running_operator(settings, kube_api.kubeconfig):
            up = eventually(lambda: connected().get("status") == "True" and connected(),
                            "Connected=True from the agent")
            assert up["reason"] == "AgentsConnected" and "dc-agent-1" in up["message"]
            seen = status()
            assert seen["agentsConnected"] == "1/1"
            assert seen["agents"][0]["name"] == "dc-agent-1"
            assert seen["agents"][0]["connected"] is True and seen["agents"][0]["version"]
            listed = kube_api.kubectl("get", "environments", namespace=kube_namespace).stdout
            assert "1/1" in listed, listed

            os.killpg(agent.pid, signal.SIGKILL)
            agent.wait(timeout=10)
            down = eventually(lambda: connected().get("status") == "False" and connected(),
                              "Connected=False once the agent is gone")
            assert down["reason"] == "NoAgentConnected"
            assert status()["agentsConnected"] == "0/1"
    finally:
        if agent.poll() is None:
            agent.kill()
