"""Workflows, Environments and Templates as GitOps tools see them, computed by the tools' own
code on objects read from a real API server after the operator set their status: kstatus
(cli-utils, which Flux's health checks use) and Argo CD's Lua runtime with the argocd-cm
snippet of gitops/argocd. Each object read is also kept as the health checks' testdata
(tests.support.gitops_health.capture), so those are real API-server objects."""

from __future__ import annotations

import json
from typing import Any

import pytest
from tests.integration.kube.test_operator import (  # noqa: F401 (cluster: the fixture)
    WORKFLOW,
    Cluster,
    cluster,
    condition,
    operator_in_process,
)
from tests.support.gitops_health import argocd_health, capture, kstatus
from tests.support.polling import eventually

pytestmark = pytest.mark.lab


def volatile(where: Cluster, *objects: dict[str, Any]) -> dict[str, str]:
    """What differs from run to run in these objects, and its stand-in in the testdata."""
    found = {where.namespace: "ferry"}
    for obj in objects:
        found[obj["metadata"]["uid"]] = "00000000-0000-4000-8000-000000000000"
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        host = (spec.get("activeDirectory") or {}).get("host")
        if host:
            found[host] = {"src": "127.0.0.2", "tgt": "127.0.0.3"}.get(obj["metadata"]["name"],
                                                                       "127.0.0.4")
        for i, ou in enumerate((spec.get("scope") or {}).get("ous") or []):
            found[ou] = f"OU=Scope{i},DC={obj['metadata']['name']},DC=test"
        runs = [status.get(k) for k in ("activeRun", "lastRun", "activeDiscovery", "discovery")]
        for n, run in enumerate([r for r in runs + status.get("history", []) if r]):
            found.setdefault(run["id"], f"run{n:07d}")
        if status.get("lastRunRequest"):
            found[status["lastRunRequest"]] = "requested-1"
    return found


def seen(where: Cluster, kind: str, name: str, case: str) -> tuple[dict[str, Any], ...]:
    """kstatus' and Argo CD's verdicts on the object as the API server has it now, which is
    also testdata/<case>.yaml of its kind."""
    obj = where.get(kind, name)
    capture(obj, case, volatile(where, obj, *[where.get("environment", e)
                                                 for e in ("src", "tgt")]))
    return kstatus(obj)[0], argocd_health(obj)[0], obj


def apply(where: Cluster, body: dict[str, Any]) -> None:
    where.api.kubectl("apply", "-f", "-", namespace=where.namespace, input=json.dumps(body))


def test_kstatus_and_argo_cd_health_follow_workflows_environments_and_templates(
        cluster: Cluster) -> None:  # noqa: F811 (the fixture imported above)
    bad_template = {"apiVersion": "ferry.dev/v1alpha1", "kind": "Template",
                    "metadata": {"name": "bad-expression"},
                    "spec": {"attributeMappings": [{"target": "description",
                                                    "expression": "source.mail +"}]}}
    lost = {"apiVersion": "ferry.dev/v1alpha1", "kind": "Workflow",
            "metadata": {"name": "lost"},
            "spec": {"steps": [{"readFrom": {"environments": ["src", "nowhere"]}}]}}
    src = cluster.get("environment", "src")
    no_secret = {**{k: src[k] for k in ("apiVersion", "kind")},
                 "metadata": {"name": "no-secret"},
                 "spec": {**src["spec"], "activeDirectory": {
                     **src["spec"]["activeDirectory"], "credentials": {
                         **src["spec"]["activeDirectory"]["credentials"],
                         "password": {"secretKeyRef": {"name": "absent", "key": "password"}}}}}}
    for body in (bad_template, lost, no_secret):
        apply(cluster, body)

    with operator_in_process(cluster):
        # An Environment whose first discovery runs: kstatus InProgress, Argo CD Progressing.
        eventually(lambda: condition(cluster.status("environment", "src"), "Reconciling")
                   .get("status") == "True", "src discovering")
        ks, argo, _ = seen(cluster, "environment", "src", "discovering")
        assert ks["status"] == "InProgress" and "discovery" in ks["message"]
        assert argo["status"] == "Progressing" and "discovery" in argo["message"]
        job = eventually(lambda: cluster.jobs("ferry.dev/environment=src") or None,
                         "src's discovery Job")[0]
        done = cluster.run_job_command(job)
        assert done.returncode == 0, done.stdout + done.stderr
        cluster.finish_job(job, succeeded=True)
        eventually(lambda: (cluster.status("environment", "src").get("discovery") or {})
                   .get("result") == "Succeeded"
                   and condition(cluster.status("environment", "src"), "Reconciling")
                   .get("status") == "False", "src discovered")
        ks, argo, env = seen(cluster, "environment", "src", "healthy")
        assert ks == {**ks, "status": "Current", "message": "Resource is Ready"}
        assert argo["status"] == "Healthy" and "bound to" in argo["message"]
        assert env["status"]["observedGeneration"] == env["metadata"]["generation"]
        assert all(c["observedGeneration"] == env["metadata"]["generation"]
                   for c in env["status"]["conditions"])

        # An Environment whose Secret is missing: Failed, Degraded, naming the Secret.
        eventually(lambda: condition(cluster.status("environment", "no-secret"), "Stalled")
                   .get("status") == "True", "no-secret Stalled")
        ks, argo, _ = seen(cluster, "environment", "no-secret", "secret-missing")
        assert ks["status"] == "Failed" and "absent" in ks["message"]
        assert ks["conditions"][0]["reason"] == "SecretUnavailable"
        assert argo["status"] == "Degraded" and argo["message"].startswith(
            "SecretUnavailable: ") and "absent" in argo["message"]

        # Templates: one compiles (Current, Healthy), one does not (Failed, Degraded).
        eventually(lambda: condition(cluster.status("template", "bad-expression"), "Stalled")
                   .get("status") == "True", "bad-expression Stalled")
        ks, argo, _ = seen(cluster, "template", "src-to-tgt", "healthy")
        assert (ks["status"], argo["status"]) == ("Current", "Healthy")
        ks, argo, _ = seen(cluster, "template", "bad-expression", "invalid-expression")
        assert ks["status"] == "Failed" and "spec.attributeMappings[0]" in ks["message"]
        assert argo["status"] == "Degraded" and argo["message"].startswith("InvalidExpression")

        # A Workflow naming an Environment that does not exist: Failed, Degraded.
        eventually(lambda: condition(cluster.status("workflow", "lost"), "Stalled")
                   .get("status") == "True", "lost Stalled")
        ks, argo, _ = seen(cluster, "workflow", "lost", "invalid-reference")
        assert ks["status"] == "Failed" and "'nowhere' not found" in ks["message"]
        assert argo["status"] == "Degraded" and argo["message"].startswith("InvalidReference")

        # The example Workflow before any run: Current, Healthy; suspended: Argo CD Suspended.
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready")
        ks, argo, _ = seen(cluster, "workflow", WORKFLOW, "healthy")
        assert (ks["status"], ks["message"]) == ("Current", "Resource is Ready")
        assert argo == {**argo, "status": "Healthy",
                        "message": "Environments and Templates found; runs can start"}
        cluster.api.kubectl("patch", "workflow", WORKFLOW, "--type=merge", "-p",
                            '{"spec": {"suspend": true}}', namespace=cluster.namespace)
        eventually(lambda: "suspended" in (cluster.status().get("schedule") or ""),
                   "the schedule suspended")
        ks, argo, _ = seen(cluster, "workflow", WORKFLOW, "suspended")
        assert ks["status"] == "Current"   # kstatus has no "suspended"
        assert argo["status"] == "Suspended"
        cluster.api.kubectl("patch", "workflow", WORKFLOW, "--type=merge", "-p",
                            '{"spec": {"suspend": false}}', namespace=cluster.namespace)

        # A run in progress: InProgress, Progressing, naming the run.
        run_id = cluster.request_run()
        eventually(lambda: (cluster.status().get("activeRun") or {}).get("result") == "Running",
                   "the run Running")
        ks, argo, _ = seen(cluster, "workflow", WORKFLOW, "running")
        assert ks["status"] == "InProgress" and run_id in ks["message"]
        assert ks["conditions"][0]["reason"] == "RunActive"
        assert argo["status"] == "Progressing" and run_id in argo["message"]

        # Its Job fails: Failed (Stalled, reason the run's result), Degraded.
        job = next(j for j in cluster.jobs() if j["metadata"]["labels"]["ferry.dev/run"]
                   == run_id)
        cluster.finish_job(job, succeeded=False, reason="BackoffLimitExceeded")
        eventually(lambda: (cluster.status().get("lastRun") or {}).get("id") == run_id,
                   "the failed run recorded")
        ks, argo, _ = seen(cluster, "workflow", WORKFLOW, "run-failed")
        assert ks["status"] == "Failed" and "BackoffLimitExceeded" in ks["message"]
        assert ks["conditions"][0]["reason"] == "Failed"
        assert argo["status"] == "Degraded" and run_id in argo["message"] \
            and "BackoffLimitExceeded" in argo["message"]

    # The operator is down; a new generation is not observed: InProgress, Progressing.
    for kind, name in (("workflow", WORKFLOW), ("environment", "src")):
        cluster.api.kubectl("patch", kind, name, "--type=merge", "-p",
                            '{"metadata": {"labels": {"x": "y"}}, "spec": {"suspend": true}}'
                            if kind == "workflow" else
                            '{"spec": {"discovery": {"intervalMinutes": 720}}}',
                            namespace=cluster.namespace)
        ks, argo, obj = seen(cluster, kind, name, "generation-not-observed")
        generation = obj["metadata"]["generation"]
        assert obj["status"]["observedGeneration"] == generation - 1
        assert ks["status"] == "InProgress" and ks["message"] == (
            f"{obj['kind']} generation is {generation}, but latest observed generation is"
            f" {generation - 1}")
        assert argo == {**argo, "status": "Progressing", "message":
                        f"Waiting for the Ferry operator to act on generation {generation}"}
