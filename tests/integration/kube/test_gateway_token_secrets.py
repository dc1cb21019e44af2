"""Enrollment tokens handed over in one Secret: `ferry agent token create --in-cluster` adds
the token's hash to it, the gateway (signed in as the chart's gateway ServiceAccount, which may
get and patch that Secret only) claims it once and removes the entry."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest
import yaml
from tests.integration.gateway.harness import RunningGateway, start_gateway
from tests.support.kube_api import KubeAPI

from ferry.gateway.enrollment import token_hash
from ferry_agent import identity
from ferry_agent.protocol import EnrollRequest, encode
from ferry_agent.transport import GatewayRefused

CHART = Path(__file__).resolve().parents[3] / "charts" / "ferry"


@pytest.fixture
def gateway(kube_api: KubeAPI, kube_namespace: str, tmp_path: Path) -> Iterator[RunningGateway]:
    rendered = kube_api.helm("template", "ferry", str(CHART), "--namespace", kube_namespace,
                             "--show-only", "templates/gateway.yaml").stdout
    access = [d for d in yaml.safe_load_all(rendered)
              if d and d["kind"] in ("ServiceAccount", "Role", "RoleBinding")]
    assert len(access) == 3
    kube_api.kubectl("apply", "-f", "-", namespace=kube_namespace,
                     input=yaml.safe_dump_all(access))
    account = kube_api.service_account(kube_namespace, "ferry-gateway", create=False)
    with mock.patch.dict(os.environ, {"KUBECONFIG": str(account.kubeconfig)}):
        running = start_gateway(tmp_path / "gateway", "127.0.0.105",
                                "--token-secrets-namespace", kube_namespace)
    try:
        yield running
    finally:
        running.stop()


def create_token(kube_api: KubeAPI, namespace: str, ttl: str = "1h") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "ferry", "agent", "token", "create", "corp", "--in-cluster",
         "--namespace", namespace, "--ttl", ttl],
        env={**os.environ, "KUBECONFIG": str(kube_api.kubeconfig)}, capture_output=True,
        text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def token_entries(kube_api: KubeAPI, namespace: str) -> dict[str, dict[str, str]]:
    """The entries of Secret ferry-enrollment-tokens: token id -> what is kept of it."""
    found = json.loads(kube_api.kubectl("get", "secret", "ferry-enrollment-tokens", "-o",
                                        "json", namespace=namespace).stdout)
    return {key: json.loads(base64.b64decode(value))
            for key, value in (found.get("data") or {}).items()}


def enroll(gateway: RunningGateway, token: str, folder: Path) -> int:
    csr = identity.create_key(folder, "dc-agent")
    try:
        status, _ = gateway.client().post("/v1/enroll", encode(EnrollRequest(
            token=token, name="dc-agent", host="dc1", version="0.1.0", csr=csr.decode())))
    except GatewayRefused as exc:
        return exc.status
    return status


def test_a_secret_token_enrolls_once_and_is_deleted(kube_api: KubeAPI, kube_namespace: str,
                                                    gateway: RunningGateway,
                                                    tmp_path: Path) -> None:
    token = create_token(kube_api, kube_namespace)
    other = create_token(kube_api, kube_namespace)
    entries = token_entries(kube_api, kube_namespace)
    assert set(entries) == {token.split(".")[0], other.split(".")[0]}
    entry = entries[token.split(".")[0]]
    assert entry["environment"] == "corp" and entry["sha256"] == token_hash(token)
    assert token not in json.dumps(entries)   # the Secret holds hashes, never a usable token
    assert enroll(gateway, token, tmp_path / "a") == 200
    assert set(token_entries(kube_api, kube_namespace)) == {other.split(".")[0]}
    assert enroll(gateway, token, tmp_path / "b") == 403
    agents = subprocess.run([sys.executable, "-m", "ferry", "agent", "list", "--state",
                             gateway.state], capture_output=True, text=True, check=False)
    assert "dc-agent" in agents.stdout and "corp" in agents.stdout
    assert token not in gateway.log_text()


def test_an_expired_secret_token_is_refused(kube_api: KubeAPI, kube_namespace: str,
                                            gateway: RunningGateway, tmp_path: Path) -> None:
    token = create_token(kube_api, kube_namespace, ttl="1s")
    expired = time.monotonic() + 1.5     # the token lives one second
    while time.monotonic() < expired:
        time.sleep(0.1)
    assert enroll(gateway, token, tmp_path / "a") == 403
    assert token_entries(kube_api, kube_namespace) == {}   # claimed (and dropped) all the same
