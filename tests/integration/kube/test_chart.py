"""The Helm chart: lints, renders, and every object it renders is accepted by a real API server
(server-side dry run), in its namespaced default and in cluster-wide mode."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from tests.support.kube_api import KubeAPI

from ferry.controller.jobs import build_job
from ferry.settings import OperatorSettings

CHART = Path(__file__).resolve().parents[3] / "charts" / "ferry"


def _render(kube_api: KubeAPI, namespace: str, *values: str) -> list[dict]:
    args = ["template", "ferry", str(CHART), "--namespace", namespace, "--include-crds"]
    for value in values:
        args += ["--set", value]
    return [d for d in yaml.safe_load_all(kube_api.helm(*args).stdout) if d]


def test_chart_lints_clean(kube_api: KubeAPI) -> None:
    done = kube_api.helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in done.stdout


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


VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
# Values that are Kubernetes objects of their own (selectors, resources): listed whole.
OPAQUE = {"resources", "namespaceSelector", "podSelector", "nodeSelector", "affinity"}


def _leaves(values: dict, prefix: str = "") -> Iterator[tuple[str, object]]:
    for key, value in values.items():
        if isinstance(value, dict) and value and key not in OPAQUE:
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _docs(kube_api: KubeAPI, namespace: str, flags: list[str]) -> list[dict]:
    done = kube_api.helm("template", "ferry", str(CHART), "--namespace", namespace, *flags)
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def _one(docs: list[dict], kind: str, suffix: str) -> dict:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith(suffix))


def _env(deployment: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value")
            for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


# Each documented switch: the flags, and what a user finds in what the chart renders.
SWITCHES: dict[str, tuple[list[str], Callable[[list[dict], str], None]]] = {
    "defaults": ([], lambda docs, ns: None),
    "cluster-wide": (["--set", "operator.watchAllNamespaces=true",
                      "--set", "operator.secretNamespaces={NS,chart-other}"],
                     lambda docs, ns: _check_cluster_wide(docs, ns)),
    "no-gateway": (["--set", "gateway.enabled=false"], lambda docs, ns: _check_no_gateway(docs)),
    "no-network-policies": (["--set", "networkPolicy.enabled=false"], lambda docs, ns: (
        _absent(docs, "NetworkPolicy"))),
    "no-persistence": (["--set", "state.persistence.enabled=false"], lambda docs, ns: (
        _absent(docs, "PersistentVolumeClaim"),
        _check_env(_one(docs, "Deployment", "-operator"), "FERRY_STATE_VOLUME_CLAIM", ""))),
    "postgres": (["--set", "state.postgresUrlSecret.name=ferry-db"], lambda docs, ns: (
        _absent(docs, "PersistentVolumeClaim"),
        _check_env(_one(docs, "Deployment", "-operator"), "FERRY_STATE_URL_SECRET",
                   "ferry-db/url"))),
    "own-certificate": (["--set", "gateway.tls.secretName=gateway-tls",
                         "--set", "gateway.tls.caBundle=BUNDLE"],
                        lambda docs, ns: _check_own_certificate(docs)),
    "exposed-gateway": (["--set", "gateway.service.type=LoadBalancer",
                         "--set", "gateway.externalHosts={ferry.example.com}",
                         "--set", "networkPolicy.agentSources[0].ipBlock.cidr=203.0.113.0/24"],
                        lambda docs, ns: _check_exposed(docs)),
    "private-registry": (["--set", "imagePullSecrets[0].name=registry",
                          "--set", "image.tag=1.2.3", "--set", "image.pullPolicy=Always"],
                         lambda docs, ns: _check_registry(docs)),
    "placement": (["--set", "operator.nodeSelector.role=infra",
                   "--set", "operator.tolerations[0].key=infra",
                   "--set", "operator.tolerations[0].operator=Exists"],
                  lambda docs, ns: _check_placement(docs)),
    "narrowed-egress": (["--set", "networkPolicy.directories.to[0].ipBlock.cidr=10.1.0.0/16",
                         "--set-json", "networkPolicy.alerts.ports=[]",
                         "--set-json", "networkPolicy.scripts.egress=[]",
                         "--set", "networkPolicy.extraEgress[0].ports[0].port=5432"],
                        lambda docs, ns: _check_egress(docs)),
    "monitoring": (["--set", "metrics.serviceMonitor.enabled=true",
                    "--set", "metrics.serviceMonitor.labels.release=kube-prometheus",
                    "--set", "metrics.serviceMonitor.interval=15s",
                    "--set", "metrics.prometheusRule.enabled=true",
                    "--set", "metrics.prometheusRule.missedIntervals=2",
                    "--set", "metrics.prometheusRule.noAgentFor=5m",
                    "--set", "metrics.dashboard.enabled=true",
                    "--set", "metrics.dashboard.labels.team=identity",
                    "--set", "metrics.networkPolicy.from[0].namespaceSelector.matchLabels"
                             ".name=monitoring"],
                   lambda docs, ns: _check_monitoring(docs, ns)),
    "no-metrics": (["--set", "metrics.enabled=false"], lambda docs, ns: _check_no_metrics(docs)),
}
# Kinds of prometheus-operator, whose CRDs the test API server does not have (they are not
# Ferry's to install): _check_monitoring checks them; the server dry run takes the rest.
NOT_SERVED = {"ServiceMonitor", "PrometheusRule"}


def _absent(docs: list[dict], kind: str) -> None:
    assert not [d for d in docs if d["kind"] == kind], kind


def _check_env(deployment: dict, name: str, value: str) -> None:
    assert _env(deployment)[name] == value, _env(deployment)


def _check_cluster_wide(docs: list[dict], ns: str) -> None:
    assert "--all-namespaces" in _one(docs, "Deployment", "-operator")[
        "spec"]["template"]["spec"]["containers"][0]["args"]
    bindings = {d["metadata"]["namespace"] for d in docs if d["kind"] == "RoleBinding"
                and "secret" in d["metadata"]["name"]}
    assert bindings == {ns, "chart-other"}


def _check_no_gateway(docs: list[dict]) -> None:
    assert not [d for d in docs if d["metadata"]["name"].endswith("-gateway")]
    assert "FERRY_GATEWAY_URL" not in _env(_one(docs, "Deployment", "-operator"))


def _check_own_certificate(docs: list[dict]) -> None:
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    assert "ferry-gateway-tls" not in secrets
    assert _one(docs, "ConfigMap", "-gateway-public")["data"]["ca.crt"] == "BUNDLE"
    volumes = _one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["volumes"]
    assert "gateway-tls" in str(volumes)


def _check_exposed(docs: list[dict]) -> None:
    assert _one(docs, "Service", "-gateway")["spec"]["type"] == "LoadBalancer"
    policy = _one(docs, "NetworkPolicy", "-gateway")["spec"]
    assert policy["ingress"][0]["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def _check_registry(docs: list[dict]) -> None:
    for suffix in ("-operator", "-gateway"):
        pod = _one(docs, "Deployment", suffix)["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "registry"}], suffix
        assert pod["containers"][0]["image"] == "ghcr.io/ferry-dev/ferry:1.2.3"
        assert pod["containers"][0]["imagePullPolicy"] == "Always"
    # The operator hands them to every Job it builds.
    env = {k: v for k, v in _env(_one(docs, "Deployment", "-operator")).items() if v}
    settings = OperatorSettings.from_environment(env)
    job = build_job(namespace="ns", workflow="w", workflow_uid="u", run_id="a" * 10,
                    trigger="Manual", secrets={}, settings=settings)
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert job["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def _check_placement(docs: list[dict]) -> None:
    pod = _one(docs, "Deployment", "-operator")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"role": "infra"}
    assert pod["tolerations"] == [{"key": "infra", "operator": "Exists"}]


def _check_egress(docs: list[dict]) -> None:
    operator = _one(docs, "NetworkPolicy", "-operator")["spec"]["egress"]
    assert {"ipBlock": {"cidr": "10.1.0.0/16"}} in [p for r in operator for p in r.get("to", [])]
    assert not [r for r in operator if {"protocol": "TCP", "port": 587} in r.get("ports", [])]
    assert {"port": 5432} in [p for r in operator for p in r.get("ports", [])]
    assert not _one(docs, "NetworkPolicy", "-scripts")["spec"]["egress"]


def _check_monitoring(docs: list[dict], ns: str) -> None:
    services = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Service"
                and d["metadata"]["labels"].get("ferry.dev/metrics") == "true"}
    assert {n: s["spec"]["ports"] for n, s in services.items()} == {
        "ferry-operator-metrics": [{"name": "metrics", "port": 9090, "targetPort": "metrics"}],
        "ferry-gateway-metrics": [{"name": "metrics", "port": 9091, "targetPort": "metrics"}]}
    assert all(s["spec"]["type"] == "ClusterIP" for s in services.values())
    monitor = _one(docs, "ServiceMonitor", "ferry")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus"
    assert monitor["spec"]["selector"]["matchLabels"]["ferry.dev/metrics"] == "true"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [ns]}
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                             "interval": "15s", "honorLabels": True}]
    rule = _one(docs, "PrometheusRule", "ferry")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {"FerryRunFailed", "FerryNoRecentSuccess", "FerryDeleteThresholdHit",
                          "FerryNoAgentConnected"}
    assert f'namespace="{ns}"' in rules["FerryRunFailed"]["expr"]
    assert "> 2 * ferry_schedule_interval_seconds" in rules["FerryNoRecentSuccess"]["expr"]
    assert rules["FerryNoAgentConnected"]["for"] == "5m"
    assert "{{ $labels.workflow }}" in rules["FerryRunFailed"]["annotations"]["summary"]
    board = _one(docs, "ConfigMap", "-dashboard")
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["metadata"]["labels"]["team"] == "identity"
    assert json.loads(board["data"]["ferry.json"]) == json.loads(
        (CHART / "dashboards" / "ferry.json").read_text())
    monitoring = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    gateway = _one(docs, "NetworkPolicy", "-gateway")["spec"]["ingress"]
    assert {"ports": [{"protocol": "TCP", "port": 9091}], "from": monitoring} in gateway
    assert _one(docs, "NetworkPolicy", "-operator")["spec"]["ingress"] == [
        {"ports": [{"protocol": "TCP", "port": 9090}], "from": monitoring}]
    assert _env(_one(docs, "Deployment", "-operator"))["FERRY_METRICS_LISTEN"] == "0.0.0.0:9090"
    gateway_pod = _one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]
    assert "--metrics-listen=0.0.0.0:9091" in gateway_pod["containers"][0]["args"]


def _check_no_metrics(docs: list[dict]) -> None:
    assert not [d for d in docs if d["metadata"]["name"].endswith("-metrics")]
    assert "FERRY_METRICS_LISTEN" not in _env(_one(docs, "Deployment", "-operator"))
    assert "ingress" not in _one(docs, "NetworkPolicy", "-operator")["spec"]
    assert [r["ports"] for r in _one(docs, "NetworkPolicy", "-gateway")["spec"]["ingress"]] \
        == [[{"protocol": "TCP", "port": 8443}]]
    args = _one(docs, "Deployment", "-gateway")["spec"]["template"]["spec"]["containers"][0][
        "args"]
    assert not [a for a in args if a.startswith("--metrics-listen")]


def test_every_boolean_value_is_switched_by_some_case() -> None:
    booleans = {path for path, value in _leaves(VALUES) if isinstance(value, bool)}
    switched = {flag.partition("=")[0] for flags, _ in SWITCHES.values() for flag in flags
                if "=" in flag and flag.partition("=")[2] in ("true", "false")}
    assert booleans <= switched, booleans - switched


@pytest.mark.parametrize("case", list(SWITCHES))
def test_each_switch_lints_renders_and_is_accepted_by_the_api_server(
        kube_api: KubeAPI, kube_namespace: str, case: str) -> None:
    flags = [f.replace("NS", kube_namespace) for f in SWITCHES[case][0]]
    lint = kube_api.helm("lint", "--strict", str(CHART), *flags)
    assert "0 chart(s) failed" in lint.stdout
    docs = _docs(kube_api, kube_namespace, flags)
    SWITCHES[case][1](docs, kube_namespace)
    kube_api.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    for other in {d["metadata"].get("namespace", kube_namespace) for d in docs} - {kube_namespace}:
        kube_api.kubectl("create", "namespace", other, check=False)
    served = [d for d in docs if d["kind"] not in NOT_SERVED]
    done = kube_api.kubectl("apply", "--dry-run=server", "-f", "-",
                            input=yaml.safe_dump_all(served))
    for doc in served:
        assert doc["metadata"]["name"] in done.stdout


@pytest.mark.parametrize(("flag", "says"), [
    ("jobs.backoffLimit=-1", "jobs.backoffLimit: Must be greater than or equal to 0"),
    ("operator.watchAllNamespace=true", "Additional property watchAllNamespace is not allowed"),
    ("gateway.service.type=NodePorts", "gateway.service.type must be one of"),
    ("image.pullPolicy=Sometimes", "image.pullPolicy must be one of"),
    ("networkPolicy.apiServer.ports[0]=70000", "networkPolicy.apiServer.ports.0: Must be less"),
    ("operator.tickSeconds=fast", "operator.tickSeconds: Invalid type. Expected: number"),
    ("jobs.historyLimit=50", "jobs.historyLimit: Must be less than or equal to 20"),
    ("gateway.externalHosts[0]=not a host", "gateway.externalHosts.0: Does not match pattern"),
    ("operator.secretNamespaces[0]=Team_A", "operator.secretNamespaces.0: Does not match"),
    ("metrics.serviceMonitor.interval=often", "metrics.serviceMonitor.interval: Does not match"),
    ("metrics.gatewayPort=8443", "metrics.gatewayPort: 8443 is the gateway's HTTPS port"),
])
def test_values_schema_refuses_wrong_values_naming_them(kube_api: KubeAPI, flag: str,
                                                        says: str) -> None:
    done = kube_api.helm("template", "ferry", str(CHART), "--set", flag, check=False)
    assert done.returncode != 0 and says in done.stderr, done.stderr
    assert not done.stdout.strip()   # nothing rendered, so nothing to install


def test_the_chart_readme_lists_every_value() -> None:
    readme = (CHART / "README.md").read_text()
    missing = [path for path, _ in _leaves(VALUES) if f"`{path}`" not in readme]
    assert not missing, f"charts/ferry/README.md lacks {missing}"
