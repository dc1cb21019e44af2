"""Two tenants' releases of the chart on one API server, installed and uninstalled with the
real helm: the shared CRDs come from the crds/ folder once, neither release owns or may touch
the other's objects, and removing one leaves the other's release working."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from tests.support.kube_api import KubeAPI
from tests.support.operator import running_operator
from tests.support.polling import eventually

from ferry.settings import OperatorSettings

CHART = Path(__file__).resolve().parents[3] / "charts" / "ferry"
TEMPLATE = """
apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {name: names}
spec:
  attributeMappings:
    - {target: description, expression: "'moved'", objectTypes: [users]}
"""
KINDS = "deployments,services,serviceaccounts,roles,rolebindings,secrets,configmaps," \
        "networkpolicies,persistentvolumeclaims"


def _objects(kube_api: KubeAPI, namespace: str) -> set[str]:
    listed = json.loads(kube_api.kubectl("get", KINDS, "-o", "json",
                                         namespace=namespace).stdout)["items"]
    return {f"{o['kind']}/{o['metadata']['name']}" for o in listed
            if o["metadata"].get("labels", {}).get("app.kubernetes.io/name") == "ferry"
            or o["metadata"]["name"].startswith(("tenant-", "ferry-"))}


def _ready(kube_api: KubeAPI, namespace: str) -> str | None:
    status = json.loads(kube_api.kubectl("get", "template", "names", "-o", "json",
                                         namespace=namespace).stdout).get("status") or {}
    ready = [c for c in status.get("conditions", []) if c["type"] == "Ready"]
    return ready[0]["status"] if ready else None


def test_two_tenants_install_side_by_side_and_one_uninstalls_alone(kube_api: KubeAPI) -> None:
    a, b = kube_api.create_namespace("tenant-a"), kube_api.create_namespace("tenant-b")
    crds = {d["metadata"]["name"] for d in yaml.safe_load_all(
        "\n---\n".join(p.read_text() for p in sorted((CHART / "crds").glob("*.yaml"))))}
    try:
        first = kube_api.helm("install", "tenant-a", str(CHART), "--namespace", a)
        # What to do next, for this release.
        assert f"kubectl create secret generic src-ad -n {a}" in first.stdout
        assert "ferry agent token create src --in-cluster" in first.stdout
        assert "kubectl apply --server-side -f charts/ferry/crds/" in first.stdout
        installed = set(kube_api.kubectl("get", "crds", "-o", "name").stdout.split())
        assert {f"customresourcedefinition.apiextensions.k8s.io/{c}" for c in crds} <= installed
        second = kube_api.helm("install", "tenant-b", str(CHART), "--namespace", b)
        assert f"namespace {b} only" in second.stdout
        objects_a, objects_b = _objects(kube_api, a), _objects(kube_api, b)
        assert "Deployment/tenant-a-ferry-operator" in objects_a
        assert "Deployment/tenant-b-ferry-operator" in objects_b
        assert not [o for o in objects_a if "tenant-b" in o]
        assert not [o for o in objects_b if "tenant-a" in o]
        # Namespaced releases make nothing cluster-wide besides the shared CRDs.
        for kind in ("clusterroles", "clusterrolebindings"):
            names = kube_api.kubectl("get", kind, "-o", "name").stdout
            assert "tenant-" not in names

        operator_b = kube_api.service_account(b, "tenant-b-ferry-operator", create=False)
        sync_b = kube_api.service_account(b, "tenant-b-ferry-sync", create=False)
        gateway_b = kube_api.service_account(b, "tenant-b-ferry-gateway", create=False)
        for who in (operator_b, sync_b, gateway_b):
            for verb, resource in (("get", "workflows.ferry.dev"), ("list", "secrets"),
                                   ("get", "secret/tenant-a-ferry-gateway-ca"),
                                   ("create", "jobs")):
                refused = kube_api.kubectl("auth", "can-i", verb, resource, identity=who,
                                           namespace=a, check=False)
                assert refused.stdout.strip() == "no", (who, verb, resource)

        kube_api.helm("uninstall", "tenant-a", "--namespace", a)
        assert _objects(kube_api, b) == objects_b
        assert not [o for o in _objects(kube_api, a)
                    if o.startswith(("Deployment/", "Role/", "RoleBinding/", "Service/"))]
        assert crds <= {n.split("/")[-1] for n in
                        kube_api.kubectl("get", "crds", "-o", "name").stdout.split()}

        # Tenant b's operator, with its own ServiceAccount's rights only, still works; a
        # Template left in tenant a's namespace is not its business.
        for namespace in (a, b):
            kube_api.kubectl("apply", "-f", "-", namespace=namespace, input=TEMPLATE)
        deployment = json.loads(kube_api.kubectl(
            "get", "deployment", "tenant-b-ferry-operator", "-o", "json", namespace=b).stdout)
        env = {e["name"]: e["value"] for e in
               deployment["spec"]["template"]["spec"]["containers"][0]["env"]
               if "value" in e and not e["value"].startswith("/")}
        settings = OperatorSettings.from_environment({**env, "FERRY_NAMESPACE": b,
                                                      "FERRY_TICK_SECONDS": "0.5"})
        with running_operator(settings, operator_b.kubeconfig):
            eventually(lambda: _ready(kube_api, b) == "True", "tenant b's Template Ready")
        assert _ready(kube_api, a) is None
    finally:
        for release, namespace in (("tenant-a", a), ("tenant-b", b)):
            kube_api.helm("uninstall", release, "--namespace", namespace, check=False)
        kube_api.delete_namespace(a)
        kube_api.delete_namespace(b)
