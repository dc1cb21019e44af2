"""Alerts from the operator, on a real API server with the chart's RBAC: a run recorded as
failed (here a Job that died without reporting) sends one e-mail, to a real SMTP server
process with STARTTLS and a login, and one signed webhook, to a real HTTP server process;
an operator restart sends neither again. The directories are never reached: the run's Job
never runs, as a pod killed before it could report."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.alert_receivers import SmtpServer, WebhookServer, smtp_server, webhook_server
from tests.support.kube_api import Identity, KubeAPI
from tests.support.operator import operator_process
from tests.support.polling import eventually, never

ROOT = Path(__file__).resolve().parents[3]
RELEASE = "ferry"
WORKFLOW = "ad-to-ad"
SIGNING_KEY = "whsec-kube-test"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[tuple[SmtpServer, WebhookServer]]:
    with smtp_server(tmp_path / "smtp") as smtp, webhook_server(tmp_path / "hook") as hooks:
        yield smtp, hooks


def kubectl_json(api: KubeAPI, namespace: str, *args: str) -> Any:
    return json.loads(api.kubectl(*args, "-o", "json", namespace=namespace).stdout)


def setup(api: KubeAPI, ns: str, smtp: SmtpServer, hooks: WebhookServer,
          folder: Path) -> Identity:
    api.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    api.kubectl("wait", "--for=condition=Established", "crd/workflows.ferry.dev",
                "--timeout=60s")
    rbac = api.helm("template", RELEASE, str(ROOT / "charts" / "ferry"), "--namespace", ns,
                    "--show-only", "templates/serviceaccounts.yaml",
                    "--show-only", "templates/rbac.yaml").stdout
    api.kubectl("apply", "-f", "-", namespace=ns, input=rbac)
    api.kubectl("create", "secret", "generic", "alerts",
                f"--from-literal=smtp-password={smtp.password}",
                f"--from-literal=signing-key={SIGNING_KEY}", namespace=ns)
    docs = [d for p in sorted((ROOT / "examples" / "ad-to-ad").glob("*.yaml"))
            for d in yaml.safe_load_all(p.read_text()) if d]
    for doc in docs:
        if doc["kind"] == "Environment":  # nothing listens there: the checks fail at once
            doc["spec"]["activeDirectory"]["host"] = "127.0.0.1"
        if doc["kind"] == "Workflow":
            doc["spec"]["alerts"] = [
                {"name": "oncall", "email": {
                    "to": ["oncall@example.test"], "from": "ferry@example.test",
                    "smtp": {"host": smtp.host, "port": smtp.port, "username": smtp.user,
                             "password": {"secretKeyRef": {"name": "alerts",
                                                           "key": "smtp-password"}},
                             "caFile": str(smtp.ca_file)}}},
                {"name": "chatops", "webhook": {
                    "url": hooks.url,
                    "signingKey": {"secretKeyRef": {"name": "alerts", "key": "signing-key"}}}}]
    (folder / "manifests.yaml").write_text(yaml.safe_dump_all(docs))
    api.kubectl("apply", "-f", str(folder / "manifests.yaml"), namespace=ns)
    return api.service_account(ns, f"{RELEASE}-operator", create=False)


def operator_env(operator: Identity, ns: str) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": str(operator.kubeconfig), "FERRY_NAMESPACE": ns,
            "FERRY_TICK_SECONDS": "0.5", "FERRY_IMAGE": "ferry:test",
            "FERRY_JOB_SERVICE_ACCOUNT": f"{RELEASE}-sync"}


def kill_job(api: KubeAPI, ns: str, name: str) -> None:
    """The Job controller's verdict on a Job whose pods died before the run reported."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = [{"type": kind, "status": "True", "reason": "BackoffLimitExceeded",
                   "message": "Job has reached the specified backoff limit",
                   "lastProbeTime": now, "lastTransitionTime": now}
                  for kind in ("FailureTarget", "Failed")]
    api.kubectl("patch", "job", name, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"startTime": now, "failed": 3,
                                       "conditions": conditions}}), namespace=ns)


def test_a_job_that_died_alerts_once_by_email_and_webhook_and_not_after_a_restart(
        kube_api: KubeAPI, kube_namespace: str, receivers: tuple[SmtpServer, WebhookServer],
        tmp_path: Path) -> None:
    ns = kube_namespace
    smtp, hooks = receivers
    operator = setup(kube_api, ns, smtp, hooks, tmp_path)
    log = tmp_path / "operator.log"

    def status() -> dict[str, Any]:
        return kubectl_json(kube_api, ns, "get", "workflow", WORKFLOW).get("status") or {}

    def ready() -> bool:
        return any(c["type"] == "Ready" and c["status"] == "True"
                   for c in status().get("conditions") or [])

    with operator_process(ns, operator_env(operator, ns), log):
        eventually(ready, "Workflow Ready")
        requested = subprocess.run(
            [sys.executable, "-m", "ferry", "run", "--in-cluster", f"{ns}/{WORKFLOW}"],
            env={**os.environ, "KUBECONFIG": str(kube_api.kubeconfig)}, capture_output=True,
            text=True, timeout=60, check=False)
        assert requested.returncode == 0, requested.stdout + requested.stderr
        run_id = requested.stdout.split()[2]
        job = eventually(lambda: kubectl_json(kube_api, ns, "get", "jobs")["items"] or None,
                         "the run's Job")[0]
        kill_job(kube_api, ns, job["metadata"]["name"])

        def sent_alerts() -> list[dict[str, Any]] | None:
            alerts = status().get("alerts") or []
            return alerts if len(alerts) == 2 and all(a["state"] == "Sent" for a in alerts) \
                else None

        sent = eventually(sent_alerts, "both alerts Sent", timeout=90)
        assert {(a["alert"], a["run"], a["outcome"], a["attempts"]) for a in sent} == {
            ("oncall", run_id, "Failed", 1), ("chatops", run_id, "Failed", 1)}
        assert status()["lastRun"]["result"] == "Failed"

    [mail] = smtp.messages()
    assert mail["Subject"] == f"[Ferry] Workflow {ns}/{WORKFLOW} failed (run {run_id})"
    assert mail["Message-ID"] == f"<{run_id}.Failed.oncall@example.test>"
    assert "BackoffLimitExceeded" in mail.get_content()
    [hook] = hooks.requests()
    headers, body = hook["headers"], hook["body"]
    expected = hmac.new(SIGNING_KEY.encode(), headers["X-Ferry-Timestamp"].encode() + b"."
                        + body, hashlib.sha256).hexdigest()
    assert headers["X-Ferry-Signature"] == f"sha256={expected}"
    document = json.loads(body)
    assert (document["namespace"], document["run"], document["outcome"]) == (
        ns, run_id, "Failed")

    # A restarted operator finds them Sent: nothing goes out again.
    with operator_process(ns, operator_env(operator, ns), log):
        eventually(lambda: log.read_text().count("operator.started") >= 2,
                   "the second operator started")
        never(lambda: len(smtp.messages()) > 1 or len(hooks.requests()) > 1,
              "an alert was sent again after the restart", window=5)

    events = kubectl_json(kube_api, ns, "get", "events")["items"]
    assert sum(e["reason"] == "AlertSent" for e in events) == 2
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "forbidden" not in text.lower(), text[-3000:]
    for secret in (smtp.password, SIGNING_KEY):
        assert secret not in text
        assert secret not in json.dumps(status())
        assert secret not in json.dumps(events)
