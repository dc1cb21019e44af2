"""Each run's Job gets its own gateway credential, on a real API server with the chart's RBAC:
the operator signs it for the run's environments, keeps it in a Secret the Job owns and
mounts, and a real gateway accepts it for those environments only."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
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
from ferry_agent.transport import GatewayRefused

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "ad-to-ad"
RELEASE = "ferry"


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path / "gateway", "127.0.0.107")
    try:
        yield running
    finally:
        running.stop()


def agent_mode_manifests() -> str:
    """examples/ad-to-ad with both Environments reached through agents (no credentials)."""
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc["kind"] == "Environment":
                doc["spec"]["connection"] = "agent"
                for key in ("tls", "credentials"):
                    doc["spec"]["activeDirectory"].pop(key, None)
            docs.append(doc)
    return yaml.safe_dump_all(docs)


def get(kube_api: KubeAPI, namespace: str, *what: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(kube_api.kubectl("get", *what, "-o", "json",
                                                        namespace=namespace).stdout)
    return found


def test_a_runs_job_mounts_a_credential_bound_to_its_environments(
        kube_api: KubeAPI, kube_namespace: str, gateway: RunningGateway,
        tmp_path: Path) -> None:
    ns = kube_namespace
    kube_api.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for plural in ("environments", "templates", "workflows"):
        kube_api.kubectl("wait", "--for=condition=Established", f"crd/{plural}.ferry.dev",
                         "--timeout=60s")
    rbac = kube_api.helm("template", RELEASE, str(ROOT / "charts" / "ferry"), "--namespace", ns,
                         "--show-only", "templates/serviceaccounts.yaml",
                         "--show-only", "templates/rbac.yaml").stdout
    kube_api.kubectl("apply", "-f", "-", namespace=ns, input=rbac)
    operator = kube_api.service_account(ns, f"{RELEASE}-operator", create=False)
    kube_api.kubectl("apply", "-f", "-", namespace=ns, input=agent_mode_manifests())
    gateway.fake_agent("src", "src-agent", tmp_path / "agents")
    gateway.fake_agent("elsewhere", "other-agent", tmp_path / "agents")
    settings = OperatorSettings(namespace=ns, tick_seconds=0.5, image="ferry:test",
                                job_service_account=f"{RELEASE}-sync", gateway_url=gateway.url,
                                gateway_ca=str(gateway.ca_file),
                                job_signing_key_file=str(gateway.signing_key))
    with running_operator(settings, operator.kubeconfig):
        requested = subprocess.run(
            [sys.executable, "-m", "ferry", "run", "--in-cluster", f"{ns}/ad-to-ad"],
            env={**os.environ, "KUBECONFIG": str(kube_api.kubeconfig)}, capture_output=True,
            text=True, timeout=60, check=False)
        assert requested.returncode == 0, requested.stdout + requested.stderr

        def job() -> dict[str, Any] | None:
            items = get(kube_api, ns, "jobs", "-l", "ferry.dev/workflow=ad-to-ad")["items"]
            return items[0] if items else None

        made = eventually(job, "the run's Job")
        name = made["metadata"]["name"]
        secret = eventually(lambda: next(
            (s for s in get(kube_api, ns, "secrets")["items"]
             if s["metadata"]["name"] == f"{name}-gateway"), None), "its credential Secret")

    # Owned by the Job (garbage-collected with it), mounted by it, nowhere in its spec.
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": made["metadata"]["uid"]}]
    pod = made["spec"]["template"]["spec"]
    [volume] = [v for v in pod["volumes"] if v["name"] == "gateway"]
    assert volume["secret"]["secretName"] == f"{name}-gateway"
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token not in json.dumps(made)
    assert base64.b64decode(secret["data"]["ca.crt"]).decode() == gateway.ca_file.read_text()
    container_env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert container_env["FERRY_GATEWAY_TOKEN_FILE"] == "/var/run/secrets/ferry-gateway/token"

    # The real gateway takes it for the run's environments (src, tgt) and nothing else.
    job_client = gateway.job(token)
    status, body = job_client.submit("src", "exists", {"dn": "CN=x"})
    assert status == 200 and body is not None
    with pytest.raises(GatewayRefused) as refused:
        job_client.submit("elsewhere", "write", {"writes": []})
    assert (refused.value.status, refused.value.message) == (
        403, f"this credential ({ns}/{name}) is not bound to environment elsewhere")
    assert f'"who": "job:{ns}/{name}"' in gateway.log_text()
