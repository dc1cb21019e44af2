"""The Helm chart: lints, renders, and every object it renders is accepted by a real API server
(server-side dry run), in its namespaced default and in cluster-wide mode."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from tests.support.kube_api import KubeAPI

CHART = Path(__file__).resolve().parents[3] / "charts" / "ferry"


def _render(kube_api: KubeAPI, namespace: str, *values: str) -> list[dict]:
    args = ["template", "ferry", str(CHART), "--namespace", namespace, "--include-crds"]
    for value in values:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(kube_api.helm(*args).stdout) if d]


def test_chart_lints_clean(kube_api: KubeAPI) -> None:
    done = kube_api.helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in done.stdout


def test_values_schema_refuses_a_bad_value(kube_api: KubeAPI) -> None:
    done = kube_api.helm("template", "ferry", str(CHART), "--set", "jobs.backoffLimit=-1",
                         check=False)
    assert done.returncode != 0 and "backoffLimit" in done.stderr


@pytest.mark.parametrize("cluster_wide", [False, True], ids=["namespaced", "cluster-wide"])
def test_rendered_chart_is_accepted_by_the_api_server(kube_api: KubeAPI, kube_namespace: str,
                                                      cluster_wide: bool) -> None:
    docs = _render(kube_api, kube_namespace,
                   f"operator.watchAllNamespaces={str(cluster_wide).lower()}")
    kinds = sorted({d["kind"] for d in docs})
    role = "ClusterRole" if cluster_wide else "Role"
    assert role in kinds
    if not cluster_wide:
        assert "ClusterRole" not in kinds
    assert {"CustomResourceDefinition", "Deployment", "ServiceAccount",
            "PersistentVolumeClaim"} <= set(kinds)
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 4
    # CRDs first (as Helm installs them), then the rest, all through server-side dry run.
    kube_api.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(crds))
    rest = [d for d in docs if d["kind"] != "CustomResourceDefinition"]
    done = kube_api.kubectl("apply", "--dry-run=server", "-f", "-", namespace=kube_namespace,
                            input=yaml.safe_dump_all(rest))
    for doc in rest:
        assert doc["metadata"]["name"] in done.stdout
    gateway = next(d for d in docs if d["kind"] == "Deployment"
                   and d["metadata"]["name"].endswith("-gateway"))
    assert gateway["spec"]["replicas"] == 1
    assert gateway["spec"]["template"]["spec"]["serviceAccountName"] == "ferry-gateway"
    service = next(d for d in docs if d["kind"] == "Service")
    assert service["spec"]["ports"][0]["port"] == 443
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"} == {
        "ferry-gateway-ca", "ferry-gateway-job-signing", "ferry-gateway-tls"}
    deployment = next(d for d in docs if d["kind"] == "Deployment"
                      and d["metadata"]["name"].endswith("-operator"))
    operator_env = {e["name"]: e.get("value") for e in
                    deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert operator_env["FERRY_GATEWAY_URL"] == f"https://ferry-gateway.{kube_namespace}.svc:443"
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["resources"]["requests"] and container["resources"]["limits"]
    assert ("--all-namespaces" in container["args"]) is cluster_wide
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
