"""The chart's least privilege on a real API server: what the gateway's and the operator's
ServiceAccounts may do with Secrets (asked of the API server as those accounts), and the
NetworkPolicies a real `helm install` creates, whom they select, what they let through, and
that switching them off removes them."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from tests.support.kube_api import Identity, KubeAPI

from ferry.api.workflow import RunScriptStep
from ferry.controller.jobs import build_discovery_job, build_job, build_request_job
from ferry.controller.match_report_decision import MATCH_REPORTS
from ferry.controller.trace_decision import TRACES
from ferry.gateway.job_auth import load_signing_key, mint, verify
from ferry.scripts.context import ScriptContext
from ferry.scripts.job import ScriptJobs, script_job
from ferry.scripts.placement import PlacedScript, ScriptPoint
from ferry.settings import OperatorSettings

CHART = Path(__file__).resolve().parents[3] / "charts" / "ferry"
RELEASE = "ferry"


def render(kube_api: KubeAPI, namespace: str, *values: str) -> list[dict[str, Any]]:
    args = ["template", RELEASE, str(CHART), "--namespace", namespace]
    for value in values:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(kube_api.helm(*args).stdout) if d]


def can(kube_api: KubeAPI, who: Identity, verb: str, resource: str, namespace: str) -> bool:
    """`kubectl auth can-i` as `who` (a SelfSubjectAccessReview with its own token)."""
    done = kube_api.kubectl("auth", "can-i", verb, resource, identity=who, namespace=namespace,
                            check=False)
    assert done.stdout.strip() in ("yes", "no"), done.stderr
    return done.stdout.strip() == "yes"


def apply_access(kube_api: KubeAPI, namespace: str, docs: list[dict[str, Any]]) -> None:
    access = [d for d in docs if d["kind"] in ("ServiceAccount", "Role", "RoleBinding",
                                                "ClusterRole", "ClusterRoleBinding")]
    for doc in access:  # RoleBindings may live in other namespaces than the release's
        kube_api.kubectl("apply", "-f", "-", namespace=doc["metadata"].get("namespace"),
                         input=yaml.safe_dump(doc))


def test_the_gateway_cannot_read_directory_credentials(kube_api: KubeAPI,
                                                        kube_namespace: str) -> None:
    ns = kube_namespace
    apply_access(kube_api, ns, render(kube_api, ns))
    kube_api.kubectl("create", "secret", "generic", "corp-ad", "--from-literal=password=P@ss",
                     namespace=ns)
    gateway = kube_api.service_account(ns, "ferry-gateway", create=False)
    for verb, resource in [("get", "secret/corp-ad"), ("get", "secret/ferry-gateway-ca"),
                           ("get", "secret/ferry-gateway-job-signing"), ("list", "secrets"),
                           ("watch", "secrets"), ("create", "secrets"),
                           ("delete", "secret/ferry-enrollment-tokens"), ("get", "pods")]:
        assert not can(kube_api, gateway, verb, resource, ns), f"gateway may {verb} {resource}"
    for verb in ("get", "patch"):
        assert can(kube_api, gateway, verb, "secret/ferry-enrollment-tokens", ns)
    refused = kube_api.kubectl("get", "secret", "corp-ad", identity=gateway, namespace=ns,
                               check=False)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr
    assert "P@ss" not in refused.stdout + refused.stderr


@pytest.mark.parametrize("cluster_wide", [False, True], ids=["namespaced", "cluster-wide"])
def test_the_operator_touches_secrets_only_where_it_serves(
        kube_api: KubeAPI, kube_namespace: str, cluster_wide: bool) -> None:
    ns = kube_namespace
    kube_api.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    served = kube_api.create_namespace("served")
    other = kube_api.create_namespace("other")
    try:
        values = [f"operator.watchAllNamespaces={str(cluster_wide).lower()}"]
        if cluster_wide:
            values.append(f"operator.secretNamespaces={{{ns},{served}}}")
        docs = render(kube_api, ns, *values)
        apply_access(kube_api, ns, docs)
        operator = kube_api.service_account(ns, f"{RELEASE}-operator", create=False)
        sync = kube_api.service_account(ns, f"{RELEASE}-sync", create=False)
        inside = [ns, served] if cluster_wide else [ns]
        for where in inside:
            assert can(kube_api, operator, "get", "secret/corp-ad", where)
            assert can(kube_api, operator, "create", "secrets", where)
        for where in ([other] if cluster_wide else [served, other]):
            assert not can(kube_api, operator, "get", "secret/corp-ad", where)
            assert not can(kube_api, operator, "create", "secrets", where)
        for where in (ns, served, other):
            for verb in ("list", "watch", "update", "delete"):
                assert not can(kube_api, operator, verb, "secrets", where)
            assert not can(kube_api, sync, "get", "secret/corp-ad", where)
        # It still watches Workflows wherever it is told to.
        assert can(kube_api, operator, "watch", "workflows.ferry.dev", other) is cluster_wide
        for doc in docs:
            if doc["kind"] == "ClusterRole":
                rules = [r for r in doc["rules"] if "secrets" in r["resources"]]
                bound = any(d["kind"] == "ClusterRoleBinding"
                            and d["roleRef"]["name"] == doc["metadata"]["name"] for d in docs)
                assert not (rules and bound), f"{doc['metadata']['name']}: Secrets cluster-wide"
    finally:
        kube_api.delete_namespace(served)
        kube_api.delete_namespace(other)


def _matches(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A label selector against a pod's labels, as the API defines it."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression["key"], expression["operator"], expression.get("values")
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _pod_labels(docs: list[dict[str, Any]], namespace: str) -> dict[str, dict[str, str]]:
    """The labels of every kind of pod a release runs: its Deployments and the Jobs the
    operator builds."""
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in docs if d["kind"] == "Deployment"}
    settings = OperatorSettings(gateway_url="https://ferry-gateway:443",
                                job_signing_key_file="/k")
    sync = build_job(namespace=namespace, workflow="w", workflow_uid="u", run_id="a" * 10,
                     trigger="Manual", secrets={}, settings=settings)
    discovery = build_discovery_job(namespace=namespace, environment="e", environment_uid="u",
                                    run_id="b" * 10, trigger="Schedule", full=True, secrets={},
                                    settings=settings)
    pods["sync-job"] = sync["spec"]["template"]["metadata"]["labels"]
    pods["discovery-job"] = discovery["spec"]["template"]["metadata"]["labels"]
    for requests in (TRACES, MATCH_REPORTS):   # a Workflow's trace and match report Jobs
        job = build_request_job(
            namespace=namespace, workflow="w", workflow_uid="u", request_id="c" * 10,
            name="w-r", labels={requests.kind.label: "w"}, component=requests.component,
            command=requests.command, trigger=requests.trigger, secrets={}, settings=settings)
        pods[f"{requests.component}-job"] = job["spec"]["template"]["metadata"]["labels"]
    step = RunScriptStep.model_validate({"command": ["/bin/true"], "image": "busybox"})
    jobs = ScriptJobs(api=None, namespace=namespace, workflow="w",  # type: ignore[arg-type]
                      workflow_uid="u", run_id="a" * 10)
    script = script_job(jobs, "w-s0", PlacedScript(0, None, step, ScriptPoint.AFTER_WRITE),
                        ScriptContext({}), has_text=False)
    pods["script-job"] = script["spec"]["template"]["metadata"]["labels"]
    return pods


def _ports(rule: dict[str, Any]) -> set[tuple[str, int]]:
    return {(p.get("protocol", "TCP"), p["port"]) for p in rule.get("ports") or []}


def test_network_policies_let_through_only_what_each_pod_needs(
        kube_api: KubeAPI, kube_namespace: str) -> None:
    ns = kube_namespace
    kube_api.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    kube_api.helm("install", RELEASE, str(CHART), "--namespace", ns,
                  "--set", "state.persistence.enabled=false")
    listed = json.loads(kube_api.kubectl("get", "networkpolicies", "-o", "json",
                                         namespace=ns).stdout)["items"]
    policies = {p["metadata"]["name"]: p["spec"] for p in listed}
    assert set(policies) == {"ferry-gateway", "ferry-operator", "ferry-jobs", "ferry-scripts"}
    pods = _pod_labels(render(kube_api, ns), ns)
    selected = {name: {pod for pod, labels in pods.items()
                       if _matches(spec["podSelector"], labels)}
                for name, spec in policies.items()}
    assert selected == {"ferry-gateway": {"ferry-gateway"},
                        "ferry-operator": {"ferry-operator"},
                        "ferry-jobs": {"sync-job", "discovery-job", "trace-job",
                                       "match-report-job"},
                        "ferry-scripts": {"script-job"}}

    gateway = policies["ferry-gateway"]
    assert sorted(gateway["policyTypes"]) == ["Egress", "Ingress"]
    # HTTPS for agents; Prometheus scrapes metrics on a port of their own
    assert [_ports(rule) for rule in gateway["ingress"]] == [{("TCP", 8443)}, {("TCP", 9091)}]
    assert "from" not in gateway["ingress"][0]   # agents come from anywhere by default
    for name in ("ferry-operator", "ferry-jobs"):
        spec = policies[name]
        assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
        # nothing may connect to them, but Prometheus to the operator's metrics port
        metrics = [{("TCP", 9090)}] if name == "ferry-operator" else []
        assert [_ports(rule) for rule in spec.get("ingress") or []] == metrics
        egress = spec["egress"]
        to_gateway = [r for r in egress if any(
            _matches(peer.get("podSelector") or {"matchLabels": {"-": "-"}},
                     pods["ferry-gateway"]) for peer in r.get("to") or [])]
        assert [_ports(r) for r in to_gateway] == [{("TCP", 8443)}]
        reachable = set().union(*(_ports(r) for r in egress))
        # The operator also sends Workflow alerts: SMTP submission (webhooks are on 443).
        alerts = {("TCP", 587)} if name == "ferry-operator" else set()
        assert reachable == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443),
                             ("TCP", 636), ("TCP", 8443), *alerts}
    assert set().union(*(_ports(r) for r in gateway["egress"])) == {
        ("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}
    # A script's pod: nothing connects to it; it reaches anywhere unless narrowed.
    scripts = policies["ferry-scripts"]
    assert sorted(scripts["policyTypes"]) == ["Egress", "Ingress"]
    assert not scripts.get("ingress")
    assert scripts["egress"] == [{}]
    narrowed_scripts = render(kube_api, ns,
                              "networkPolicy.scripts.egress[0].to[0].ipBlock.cidr=10.20.0.0/16")
    [spec] = [d["spec"] for d in narrowed_scripts if d["kind"] == "NetworkPolicy"
              and d["metadata"]["name"] == "ferry-scripts"]
    assert spec["egress"] == [{"to": [{"ipBlock": {"cidr": "10.20.0.0/16"}}]}]

    # Narrowed agent sources: still only the port, and the operator and Jobs are let in.
    narrowed = render(kube_api, ns, "networkPolicy.agentSources[0].ipBlock.cidr=203.0.113.0/24")
    [spec] = [d["spec"] for d in narrowed if d["kind"] == "NetworkPolicy"
              and d["metadata"]["name"] == "ferry-gateway"]
    assert spec["ingress"][0]["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert [_ports(r) for r in spec["ingress"]] == [{("TCP", 8443)}] * 2 + [{("TCP", 9091)}]
    let_in = spec["ingress"][1]["from"][0]["podSelector"]
    assert {p for p, labels in pods.items() if _matches(let_in, labels)} == {
        "ferry-operator", "sync-job", "discovery-job", "trace-job", "match-report-job"}

    signing = _secret(kube_api, ns, "ferry-gateway-job-signing")["tls.key"]
    kube_api.helm("upgrade", RELEASE, str(CHART), "--namespace", ns, "--reuse-values",
                  "--set", "networkPolicy.enabled=false")
    gone = json.loads(kube_api.kubectl("get", "networkpolicies", "-o", "json",
                                       namespace=ns).stdout)["items"]
    assert gone == []
    # An upgrade keeps the job signing key: credentials of running Jobs stay valid.
    assert _secret(kube_api, ns, "ferry-gateway-job-signing")["tls.key"] == signing
    kube_api.helm("uninstall", RELEASE, "--namespace", ns)


def test_the_gateway_verifies_what_the_operator_signs_with_the_charts_keys(
        kube_api: KubeAPI, kube_namespace: str, tmp_path: Path) -> None:
    docs = render(kube_api, kube_namespace)
    [signing] = [d for d in docs if d["kind"] == "Secret"
                 and d["metadata"]["name"] == "ferry-gateway-job-signing"]
    [public] = [d for d in docs if d["kind"] == "ConfigMap"
                and d["metadata"]["name"] == "ferry-gateway-public"]
    key_file = tmp_path / "tls.key"
    key_file.write_bytes(base64.b64decode(signing["data"]["tls.key"]))
    token = mint(load_signing_key(key_file), "ns/run", ["corp"], timedelta(minutes=5))
    cert = x509.load_pem_x509_certificate(public["data"]["job-signing.crt"].encode())
    public_key = cert.public_key()
    assert verify(public_key, token).environments == {"corp"}
    # The gateway's pod mounts the public half only; the operator's mounts the key.
    deployments = {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in docs
                   if d["kind"] == "Deployment"}
    mounted = {name: {v.get("secret", {}).get("secretName") for v in pod["volumes"]}
               for name, pod in deployments.items()}
    assert "ferry-gateway-job-signing" in mounted["ferry-operator"]
    assert "ferry-gateway-job-signing" not in mounted["ferry-gateway"]


def _secret(kube_api: KubeAPI, namespace: str, name: str) -> dict[str, str]:
    found: dict[str, str] = json.loads(kube_api.kubectl(
        "get", "secret", name, "-o", "json", namespace=namespace).stdout)["data"]
    return found
