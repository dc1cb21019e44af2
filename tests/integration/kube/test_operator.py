"""The operator on a real API server, with the chart's least-privilege RBAC, against the Samba
lab: runs become Jobs, a Job's command run here syncs SRC into TGT, and what happened shows in
the Workflow's status, Events and printer columns. There is no kubelet: the test runs each
Job's command itself and then marks the Job finished through the API, as the Job controller
would."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import ldap3
import pytest
import yaml
from tests.support.kube_api import Identity, KubeAPI
from tests.support.operator import operator_process as support_operator_process
from tests.support.operator import running_operator
from tests.support.polling import eventually, never

from ferry.settings import OperatorSettings
from ferry.state.store import StateStore
from ferry_agent.directory.write import add_members, create
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "ad-to-ad"
RELEASE = "ferry"
WORKFLOW = "ad-to-ad"


@dataclass
class Cluster:
    api: KubeAPI
    namespace: str
    operator: Identity
    sync: Identity
    secrets_dir: Path
    folder: Path
    tgt: Any
    tgt_ou: str

    def get(self, kind: str, name: str) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.api.kubectl(
            "get", kind, name, "-o", "json", namespace=self.namespace).stdout)
        return found

    def jobs(self, selector: str = f"ferry.dev/workflow={WORKFLOW}") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.api.kubectl(
            "get", "jobs", "-l", selector, "-o", "json", namespace=self.namespace).stdout)["items"]
        return items

    def events(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.api.kubectl(
            "get", "events", "-o", "json", namespace=self.namespace).stdout)["items"]
        return items

    def status(self, kind: str = "workflow", name: str = WORKFLOW) -> dict[str, Any]:
        return self.get(kind, name).get("status") or {}

    def operator_env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.operator.kubeconfig), "FERRY_NAMESPACE": self.namespace,
                "FERRY_TICK_SECONDS": "0.5", "FERRY_IMAGE": "ferry:test",
                "FERRY_JOB_SERVICE_ACCOUNT": f"{RELEASE}-sync"}

    def request_run(self) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "ferry", "run", "--in-cluster",
             f"{self.namespace}/{WORKFLOW}"],
            env={**os.environ, "KUBECONFIG": str(self.api.kubeconfig)}, capture_output=True,
            text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout.split()[2]   # "requested run <id> of Workflow ns/name"

    def run_job_command(self, job: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        """What the Job's pod would do: its command, as the sync ServiceAccount, with the
        Secrets it mounts laid out the same way."""
        container = job["spec"]["template"]["spec"]["containers"][0]
        assert container["command"][0] == "ferry"
        env = {**os.environ, "KUBECONFIG": str(self.sync.kubeconfig),
               "FERRY_SECRETS_DIR": str(self.secrets_dir),
               "FERRY_STATE": str(self.folder / "state.sqlite")}
        return subprocess.run(
            [sys.executable, "-m", "ferry", *container["command"][1:], *container["args"]],
            env=env, capture_output=True, text=True, timeout=600, check=False)

    def finish_job(self, job: dict[str, Any], succeeded: bool, reason: str = "") -> None:
        """Mark a Job finished through the status subresource, as the Job controller does."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if succeeded:
            conditions = [
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods",
                 "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods",
                 "lastProbeTime": now, "lastTransitionTime": now}]
            status = {"startTime": now, "completionTime": now, "succeeded": 1,
                      "conditions": conditions}
        else:
            conditions = [
                {"type": "FailureTarget", "status": "True", "reason": reason,
                 "message": "Job has reached the specified backoff limit",
                 "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": reason,
                 "message": "Job has reached the specified backoff limit",
                 "lastProbeTime": now, "lastTransitionTime": now}]
            status = {"startTime": now, "failed": 3, "conditions": conditions}
        self.api.kubectl("patch", "job", job["metadata"]["name"], "--subresource=status",
                         "--type=merge", "-p", json.dumps({"status": status}),
                         namespace=self.namespace)

    def tgt_names(self) -> list[str]:
        conn = ldap3.Connection(ldap3.Server(self.tgt.ip, port=self.tgt.port, use_ssl=True,
                                             get_info=ldap3.NONE),
                                self.tgt.admin_user, self.tgt.admin_password, auto_bind=True)
        conn.search(self.tgt_ou, "(|(objectClass=user)(objectClass=group))",
                    attributes=["cn"])
        names = sorted(str(e.cn) for e in conn.entries)
        conn.unbind()
        return names


def column(listing: str, row: str, header: str) -> str:
    """One cell of `kubectl get` output, found by the header's position (cells may be empty)."""
    lines = listing.splitlines()
    start = lines[0].index(header)
    line = next(line for line in lines[1:] if line.split()[0] == row)
    return line[start:].split(" ")[0] if len(line) > start and line[start] != " " else ""


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


@pytest.fixture
def cluster(kube_api: KubeAPI, kube_namespace: str, lab: Any, src_ou: str, tgt_ou: str,
            tmp_path: Path) -> Cluster:
    ns = kube_namespace
    kube_api.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for plural in ("environments", "templates", "workflows", "devicemigrations"):
        kube_api.kubectl("wait", "--for=condition=Established", f"crd/{plural}.ferry.dev",
                         "--timeout=60s")
    rbac = kube_api.helm("template", RELEASE, str(ROOT / "charts" / "ferry"), "--namespace", ns,
                         "--show-only", "templates/serviceaccounts.yaml",
                         "--show-only", "templates/rbac.yaml").stdout
    kube_api.kubectl("apply", "-f", "-", namespace=ns, input=rbac)
    operator = kube_api.service_account(ns, f"{RELEASE}-operator", create=False)
    sync = kube_api.service_account(ns, f"{RELEASE}-sync", create=False)
    secrets_dir = lab.root / "secrets"
    for domain in (lab.src, lab.tgt):
        folder = secrets_dir / domain.secret_name
        kube_api.kubectl("create", "secret", "generic", domain.secret_name,
                         f"--from-file=password={folder / 'password'}",
                         f"--from-file=ca.pem={folder / 'ca.pem'}", namespace=ns)
    # SRC: three people and a group of them, in a scratch OU the source scope covers.
    conn = lab.src.connect()
    members = []
    for name in ("Ada Lovelace", "Alan Turing", "Grace Hopper"):
        sam = f"{name.split()[0].lower()}{uuid.uuid4().hex[:6]}"
        dn = build_dn(name, src_ou)
        create(conn, "user", dn, {"sAMAccountName": [sam], "givenName": [name.split()[0]],
                                  "sn": [name.split()[1]], "mail": [f"{sam}@src.test"],
                                  "userPrincipalName": [f"{sam}@src.test"]},
               password="Src-Pw-1234!ab", enabled=True)
        members.append(dn)
    group = build_dn("Pioneers", src_ou)
    create(conn, "group", group, {"sAMAccountName": [f"pioneers{uuid.uuid4().hex[:6]}"]})
    add_members(conn, group, members)
    conn.unbind()
    text = "\n---\n".join(p.read_text() for p in sorted(EXAMPLES.glob("*.yaml")))
    text = (text.replace("host: 127.0.0.2", f"host: {lab.src.ip}")
            .replace("host: 127.0.0.3", f"host: {lab.tgt.ip}")
            .replace("OU=Corp,DC=src,DC=test", src_ou)
            .replace("OU=Migrated,DC=tgt,DC=test", tgt_ou))
    (tmp_path / "manifests.yaml").write_text(text)
    kube_api.kubectl("apply", "-f", str(tmp_path / "manifests.yaml"), namespace=ns)
    return Cluster(kube_api, ns, operator, sync, secrets_dir, tmp_path, lab.tgt, tgt_ou)


@contextmanager
def operator_in_process(cluster: Cluster) -> Iterator[None]:
    """The operator in this process, with the settings `ferry operator` would read from
    operator_env, signed in as the chart's ServiceAccount; it must end only when stopped."""
    settings = OperatorSettings.from_environment(cluster.operator_env())
    with running_operator(settings, cluster.operator.kubeconfig):
        yield


@contextmanager
def operator_process(cluster: Cluster, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`ferry operator` as a real process, for tests that kill it."""
    with support_operator_process(cluster.namespace, {**os.environ, **cluster.operator_env()},
                                  log) as process:
        yield process


def test_a_manual_run_becomes_one_job_and_its_outcome_lands_in_status(cluster: Cluster) -> None:
    with operator_in_process(cluster):
        for env in ("src", "tgt"):
            connected = eventually(
                lambda env=env: condition(cluster.status("environment", env), "Connected")
                if condition(cluster.status("environment", env), "Connected").get("status")
                == "True" else None, f"Environment {env} Connected")
            assert "bound to" in connected["message"]
            assert condition(cluster.status("environment", env), "Ready")["status"] == "True"
        eventually(lambda: condition(cluster.status("template", "src-to-tgt"), "Ready")
                   .get("status") == "True", "Template Ready")
        ready = eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True"
                           and cluster.status(), "Workflow Ready")
        assert ready["schedule"] == "every 60m" and ready["nextRunTime"]

        run_id = cluster.request_run()
        jobs = eventually(lambda: cluster.jobs() or None, "the run's Job")
        assert len(jobs) == 1
        job = jobs[0]
        meta, spec = job["metadata"], job["spec"]
        assert meta["labels"]["ferry.dev/run"] == run_id
        assert meta["ownerReferences"][0]["name"] == WORKFLOW
        assert spec["backoffLimit"] == 2 and spec["activeDeadlineSeconds"] == 21600
        assert spec["ttlSecondsAfterFinished"] == 86400
        pod = spec["template"]["spec"]
        assert pod["serviceAccountName"] == f"{RELEASE}-sync"
        assert pod["securityContext"]["runAsNonRoot"] is True
        container = pod["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"] == "4Gi"
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == \
            {"src-ad", "tgt-ad"}
        assert "password" not in " ".join(container["args"]).lower()

        # A second request while this run is active starts nothing.
        cluster.request_run()
        eventually(lambda: any(e["reason"] == "RunSkipped" for e in cluster.events()),
                   "a RunSkipped Event")
        assert len(cluster.jobs()) == 1

        done = cluster.run_job_command(job)
        assert done.returncode == 0, done.stdout + done.stderr
        assert cluster.tgt_names() == ["Ada Lovelace", "Alan Turing", "Grace Hopper",
                                       "Pioneers"]
        # The pod's log: one JSON event per line, each naming the run; each write its object.
        events = [json.loads(line) for line in done.stderr.splitlines()]
        assert events and all((e["namespace"], e["workflow"], e["run"])
                              == (cluster.namespace, WORKFLOW, run_id) for e in events)
        written = [e for e in events if e["event"] == "object.written"]
        assert len(written) == 4 and all(e["object"].lower().endswith(cluster.tgt_ou.lower())
                                          and e["operation"] == "create" for e in written)
        reported = cluster.status()["activeRun"]
        assert reported["result"] == "Succeeded"
        assert reported["progress"].startswith("write tgt: ")
        cluster.finish_job(job, succeeded=True)

        last = eventually(lambda: (cluster.status().get("lastRun") or {}).get("id") == run_id
                          and cluster.status()["lastRun"], "the run recorded as lastRun")
        assert last["result"] == "Succeeded"
        assert last["counts"]["created"] == 4
        status = cluster.status()
        assert status.get("activeRun") is None
        assert condition(status, "Succeeded")["status"] == "True"
        assert condition(status, "Running")["status"] == "False"
        assert status["history"][0]["id"] == run_id
        reasons = [e["reason"] for e in cluster.events()
                   if e["involvedObject"]["name"] == WORKFLOW]
        assert "RunStarted" in reasons and "RunSucceeded" in reasons

        wide = cluster.api.kubectl("get", "workflows,environments", "-o", "wide",
                                   namespace=cluster.namespace).stdout
        for header in ("SCHEDULE", "LAST RUN", "RESULT", "CREATED", "UPDATED", "DELETED",
                       "NEXT RUN", "TYPE", "READY", "CONNECTED", "CONNECTION"):
            assert header in wide, wide
        row = next(line for line in wide.splitlines() if line.startswith(f"workflow.ferry.dev/"
                                                                         f"{WORKFLOW}"))
        assert "every 60m" in row and "Succeeded" in row and " 4 " in row
        assert "ActiveDirectory" in wide and "True" in wide

        # A run whose Job fails (no sync report) is recorded as Failed with the Job's reason.
        failed_id = cluster.request_run()
        second = eventually(lambda: [j for j in cluster.jobs()
                                     if j["metadata"]["labels"]["ferry.dev/run"] == failed_id],
                            "the second run's Job")[0]
        cluster.finish_job(second, succeeded=False, reason="BackoffLimitExceeded")
        last = eventually(lambda: (cluster.status().get("lastRun") or {}).get("id")
                          == failed_id and cluster.status()["lastRun"], "the failed run")
        assert last["result"] == "Failed" and "BackoffLimitExceeded" in last["message"]
        succeeded = condition(cluster.status(), "Succeeded")
        assert (succeeded["status"], succeeded["reason"]) == ("False", "Failed")
        assert len(cluster.jobs()) == 2


def test_a_template_with_a_broken_expression_is_not_ready_and_says_where(
        cluster: Cluster) -> None:
    broken = yaml.safe_load((EXAMPLES / "template.yaml").read_text())
    broken["metadata"]["name"] = "broken"
    broken["spec"]["attributeMappings"][0]["expression"] = "source.sAMAccountName +"
    cluster.api.kubectl("apply", "-f", "-", namespace=cluster.namespace,
                        input=yaml.safe_dump(broken))
    with operator_in_process(cluster):
        ready = eventually(lambda: condition(cluster.status("template", "broken"), "Ready")
                           .get("status") == "False"
                           and condition(cluster.status("template", "broken"), "Ready"),
                           "Template broken not Ready")
        assert ready["reason"] == "InvalidExpression"
        assert "broken" in ready["message"] and "description" in ready["message"]
        eventually(lambda: any(e["reason"] == "InvalidExpression" for e in cluster.events()),
                   "an InvalidExpression Event")


def test_a_target_ou_outside_the_target_scope_keeps_the_workflow_not_ready(
        cluster: Cluster) -> None:
    template = cluster.get("template", "src-to-tgt")
    outside = f"OU=Elsewhere,{cluster.tgt.base_dn}"
    spec = template["spec"]
    spec["targetOU"]["default"] = outside
    cluster.api.kubectl("apply", "-f", "-", namespace=cluster.namespace, input=yaml.safe_dump(
        {"apiVersion": template["apiVersion"], "kind": "Template",
         "metadata": {"name": "src-to-tgt"}, "spec": spec}))
    with operator_in_process(cluster):
        ready = eventually(lambda: condition(cluster.status(), "Ready").get("status") == "False"
                           and condition(cluster.status(), "Ready"), "Workflow not Ready")
        assert ready["reason"] == "InvalidReference"
        message = ready["message"]
        assert "Template 'src-to-tgt' spec.targetOU.default" in message and outside in message
        assert "Environment 'tgt'" in message and cluster.tgt_ou in message
        cluster.request_run()
        eventually(lambda: any(e["reason"] == "RunSkipped" and "not Ready" in e["message"]
                               for e in cluster.events()), "the request skipped: not Ready")
        assert cluster.jobs() == []

        spec["targetOU"]["default"] = cluster.tgt_ou  # fixed: Ready again
        cluster.api.kubectl("apply", "-f", "-", namespace=cluster.namespace,
                            input=yaml.safe_dump({"apiVersion": template["apiVersion"],
                                                  "kind": "Template",
                                                  "metadata": {"name": "src-to-tgt"},
                                                  "spec": spec}))
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready once the targetOU is inside the scope")


def test_discovery_counts_objects_and_a_reset_reads_everything_again(
        cluster: Cluster) -> None:
    src_jobs = "ferry.dev/environment=src"
    with operator_in_process(cluster):
        job = eventually(lambda: cluster.jobs(src_jobs) or None, "the first discovery Job")[0]
        assert job["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--full"
        assert job["metadata"]["ownerReferences"][0]["kind"] == "Environment"
        done = cluster.run_job_command(job)
        assert done.returncode == 0, done.stdout + done.stderr
        cluster.finish_job(job, succeeded=True)
        status = eventually(lambda: (cluster.status("environment", "src").get("discovery")
                                     or {}).get("result") == "Succeeded"
                            and cluster.status("environment", "src"), "discovery recorded")
        assert status["objects"] == 4
        assert status["objectCounts"] == {"groups": 1, "users": 3}
        assert status["nextDiscoveryTime"] and status.get("activeDiscovery") is None
        assert "full discovery: 4 objects" in status["discovery"]["message"]
        listed = cluster.api.kubectl("get", "environments", namespace=cluster.namespace).stdout
        assert column(listed, "src", "OBJECTS") == "4", listed
        # The discovery report from the store the Job wrote, as `kubectl exec` in the
        # operator's pod gets it: NAMESPACE/NAME, a tar on stdout.
        report = subprocess.run(
            [sys.executable, "-m", "ferry", "report", "discovery", f"{cluster.namespace}/src",
             "--out", "-", "--state", str(cluster.folder / "state.sqlite")],
            capture_output=True, timeout=120, check=False)
        assert report.returncode == 0, report.stderr
        with tarfile.open(fileobj=io.BytesIO(report.stdout)) as tar:
            users = tar.extractfile("discovery-src/users.csv")
            assert users is not None and len(users.read().decode().splitlines()) == 1 + 3

        cluster.api.kubectl("annotate", "environment", "src", "--overwrite",
                            "ferry.dev/reset-watermark=now", namespace=cluster.namespace)
        reset = eventually(lambda: [j for j in cluster.jobs(src_jobs)
                                    if j["metadata"]["name"] != job["metadata"]["name"]],
                           "the reset's discovery Job")[0]
        assert reset["metadata"]["annotations"]["ferry.dev/trigger"] == "Reset"
        assert reset["spec"]["template"]["spec"]["containers"][0]["args"][-1] == "--full"
        assert len(cluster.jobs(src_jobs)) == 2


def _minutes_ago(minutes: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_an_interval_schedule_fires_and_suspend_stops_it(cluster: Cluster) -> None:
    api, ns = cluster.api, cluster.namespace
    api.kubectl("patch", "workflow", WORKFLOW, "--type=merge",
                "-p", json.dumps({"spec": {"schedule": {"intervalMinutes": 15}}}), namespace=ns)
    with operator_in_process(cluster):
        eventually(lambda: cluster.status().get("schedule") == "every 15m", "schedule shown")
        assert cluster.jobs() == []
        # Twenty minutes pass: the last scheduled time moves back, as time would move on.
        api.kubectl("patch", "workflow", WORKFLOW, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"lastScheduleTime": _minutes_ago(20),
                                                 "nextRunTime": _minutes_ago(5)}}),
                    namespace=ns)
        job = eventually(lambda: cluster.jobs() or None, "the scheduled Job")[0]
        assert job["metadata"]["annotations"]["ferry.dev/trigger"] == "Schedule"
        cluster.finish_job(job, succeeded=True)
        eventually(lambda: (cluster.status().get("lastRun") or {}).get("result") == "Succeeded",
                   "the scheduled run recorded")

        api.kubectl("patch", "workflow", WORKFLOW, "--type=merge",
                    "-p", json.dumps({"spec": {"suspend": True}}), namespace=ns)
        eventually(lambda: cluster.status().get("schedule") == "every 15m (suspended)",
                   "suspension shown")
        assert cluster.status().get("nextRunTime") is None
        api.kubectl("patch", "workflow", WORKFLOW, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"lastScheduleTime": _minutes_ago(40)}}),
                    namespace=ns)
        # A spec change the operator shows: once shown, it has reconciled the Workflow as due
        # (and would have started its Job right after writing that status).
        api.kubectl("patch", "workflow", WORKFLOW, "--type=merge",
                    "-p", json.dumps({"spec": {"schedule": {"intervalMinutes": 16}}}),
                    namespace=ns)
        eventually(lambda: cluster.status().get("schedule") == "every 16m (suspended)",
                   "the suspended Workflow reconciled while due")
        never(lambda: len(cluster.jobs()) > 1, "a suspended Workflow started a Job")


def test_killing_the_operator_mid_run_neither_duplicates_nor_loses_the_run(
        cluster: Cluster) -> None:
    log = cluster.folder / "operator.log"
    with operator_process(cluster, log) as first:
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready")
        run_id = cluster.request_run()
        job = eventually(lambda: cluster.jobs() or None, "the run's Job")[0]
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    # The run goes on without the operator and ends; then the operator comes back.
    done = cluster.run_job_command(job)
    assert done.returncode == 0, done.stdout + done.stderr
    cluster.finish_job(job, succeeded=True)
    with operator_process(cluster, log):
        last = eventually(lambda: (cluster.status().get("lastRun") or {}).get("id") == run_id
                          and cluster.status()["lastRun"], "the run recorded after restart",
                          timeout=90)
        assert last["result"] == "Succeeded" and last["counts"]["created"] == 4
        never(lambda: len(cluster.jobs()) != 1, "a second Job appeared after the restart")
    assert cluster.tgt_names() == ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Pioneers"]
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    # The chart's namespaced Role is all the operator needs: nothing it asked for was refused.
    assert "forbidden" not in text.lower(), text[-3000:]
    yaml.safe_dump(cluster.status())  # status stays plain, serialisable data


def test_a_job_missing_a_secret_key_fails_naming_it_and_touches_nothing(
        cluster: Cluster) -> None:
    # The pod's Secret volume without one key: the run must stop before any connection.
    partial = cluster.folder / "partial-secrets"
    shutil.copytree(cluster.secrets_dir, partial)
    tgt_secret = next(p for p in partial.iterdir() if p.name == "tgt-ad")
    (tgt_secret / "ca.pem").unlink()
    state = cluster.folder / "state.sqlite"
    with operator_in_process(cluster):
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready")
        run_id = cluster.request_run()
        job = eventually(lambda: cluster.jobs() or None, "the run's Job")[0]
        container = job["spec"]["template"]["spec"]["containers"][0]
        done = subprocess.run(
            [sys.executable, "-m", "ferry", *container["command"][1:], *container["args"]],
            env={**os.environ, "KUBECONFIG": str(cluster.sync.kubeconfig),
                 "FERRY_SECRETS_DIR": str(partial), "FERRY_STATE": str(state)},
            capture_output=True, text=True, timeout=600, check=False)
        output = done.stdout + done.stderr
        assert done.returncode == 2, output
        assert "Traceback" not in output and '"exception"' not in output
        expected = (f"Environment/tgt: spec.activeDirectory.tls.ca: Secret tgt-ad has no key"
                    f" ca.pem (no file {tgt_secret}/ca.pem)")
        active = cluster.status()["activeRun"]
        assert (active["id"], active["result"], active["message"]) == (run_id, "Failed",
                                                                       expected)
        eventually(lambda: any(e["reason"] == "InvalidInput" and expected in e["message"]
                               for e in cluster.events()), "an InvalidInput Event")
    assert cluster.tgt_names() == []
    if state.exists():
        with StateStore(str(state), read_only=True) as store:
            assert store.runs.recent() == []


SCRIPT_STEPS = [
    {"name": "after", "runScript": {
        "command": ["/bin/sh"],
        "script": {"configMapKeyRef": {"name": "hooks", "key": "after.sh"}}}},
    {"name": "mailboxes", "runScript": {
        "image": "registry.example/exchange-tools:1", "command": ["/bin/sh"],
        "timeoutSeconds": 900, "onFailure": "continue",
        "script": {"inline": 'echo "enabling mailboxes for $FERRY_RUN_ID"\n'
                             '[ "$EXO_KEY" = "exo-key-7d1" ] && echo "key from the Secret"\n'
                             'grep -q \'"counts"\' "$FERRY_CONTEXT_FILE" && exit 3\n'},
        "env": [{"name": "EXO_KEY",
                 "valueFrom": {"secretKeyRef": {"name": "exo", "key": "key"}}}]}},
]


def play_script_job(cluster: Cluster, job: dict[str, Any], folder: Path) -> int:
    """What the kubelet and Job controller would do with a script's Job: lay out its
    ConfigMap, run its command with its variables (secretKeyRefs read from the Secret),
    record the container's exit in a Pod and mark the Job finished. Returns the exit code."""
    name = job["metadata"]["name"]
    files = folder / name
    files.mkdir(parents=True)
    for key, text in cluster.get("configmap", name)["data"].items():
        (files / key).write_text(text)
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {"PATH": os.environ["PATH"]}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = var["value"].replace("/ferry/", f"{files}/")
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            secret = cluster.get("secret", ref["name"])["data"][ref["key"]]
            env[var["name"]] = base64.b64decode(secret).decode()
    command = [part.replace("/ferry/", f"{files}/") for part in container["command"]]
    code = subprocess.run(command, env=env, cwd=files, capture_output=True, timeout=60,
                          check=False).returncode
    pod = f"{name}-pod"
    # The service account controller's "default", which the Pod's admission looks up.
    cluster.api.kubectl("create", "serviceaccount", "default", namespace=cluster.namespace,
                        check=False)
    cluster.api.kubectl("apply", "-f", "-", namespace=cluster.namespace, input=json.dumps({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "labels": {"job-name": name}},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "script", "image": container["image"]}]}}))
    cluster.api.kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p",
                        json.dumps({"status": {"phase": "Failed" if code else "Succeeded",
                                               "containerStatuses": [{
                                                   "name": "script", "image": container["image"],
                                                   "imageID": "", "ready": False,
                                                   "restartCount": 0,
                                                   "state": {"terminated": {
                                                       "exitCode": code, "reason": "Error"}}}]}}),
                        namespace=cluster.namespace)
    cluster.finish_job(job, succeeded=code == 0, reason="BackoffLimitExceeded")
    return code


def test_script_steps_run_in_the_job_pod_and_in_a_job_of_their_own(cluster: Cluster) -> None:
    ns = cluster.namespace
    cluster.api.kubectl("create", "configmap", "hooks",
                        "--from-literal=after.sh=echo \"after the writes: $FERRY_COUNTS\"",
                        namespace=ns)
    cluster.api.kubectl("create", "secret", "generic", "exo", "--from-literal=key=exo-key-7d1",
                        namespace=ns)
    workflow = cluster.get("workflow", WORKFLOW)
    cluster.api.kubectl("patch", "workflow", WORKFLOW, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/spec/steps/-", "value": step} for step in SCRIPT_STEPS]),
        namespace=ns)
    with operator_in_process(cluster):
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True"
                   and cluster.status().get("observedGeneration", 0)
                   > workflow["metadata"]["generation"], "the Workflow Ready again")
        run_id = cluster.request_run()
        job = eventually(lambda: cluster.jobs() or None, "the run's Job")[0]
        pod = job["spec"]["template"]["spec"]
        volume = next(v for v in pod["volumes"] if "configMap" in v)
        assert volume["configMap"] == {"name": "hooks", "optional": True, "defaultMode": 0o444,
                                       "items": [{"key": "after.sh", "path": "after.sh"}]}
        mount = next(m for m in pod["containers"][0]["volumeMounts"]
                     if m["name"] == volume["name"])
        assert mount["mountPath"] == "/etc/ferry/configmaps/hooks"
        # The image step's Secret is its own Job's: the sync pod never mounts it.
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == \
            {"src-ad", "tgt-ad"}

        # The sync Job's pod, with the ConfigMap mounted as the kubelet would.
        mounted = cluster.folder / "configmaps" / "hooks"
        mounted.mkdir(parents=True)
        (mounted / "after.sh").write_text(cluster.get("configmap", "hooks")["data"]["after.sh"])
        container = job["spec"]["template"]["spec"]["containers"][0]
        env = {**os.environ, "KUBECONFIG": str(cluster.sync.kubeconfig),
               "FERRY_SECRETS_DIR": str(cluster.secrets_dir),
               "FERRY_STATE": str(cluster.folder / "state.sqlite"),
               "FERRY_CONFIGMAPS_DIR": str(cluster.folder / "configmaps")}
        log = cluster.folder / "sync-job.log"
        with log.open("w") as out:
            sync = subprocess.Popen(
                [sys.executable, "-m", "ferry", *container["command"][1:], *container["args"]],
                env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            script_job = eventually(lambda: cluster.jobs("ferry.dev/script-step=6") or None,
                                    "the script step's Job", timeout=300)[0]
            spec = script_job["spec"]
            assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 900
            assert script_job["metadata"]["ownerReferences"][0]["name"] == WORKFLOW
            assert script_job["metadata"]["labels"]["ferry.dev/run"] == run_id
            template = spec["template"]["spec"]
            assert template["automountServiceAccountToken"] is False
            script = template["containers"][0]
            assert script["image"] == "registry.example/exchange-tools:1"
            assert script["command"] == ["/bin/sh", "/ferry/script.sh"]
            assert {"name": "EXO_KEY", "valueFrom": {"secretKeyRef": {
                "name": "exo", "key": "key"}}} in script["env"]
            assert "exo-key-7d1" not in json.dumps(script_job)
            files = eventually(lambda: _config_map(cluster, script_job["metadata"]["name"]),
                               "the script Job's ConfigMap")
            assert files["metadata"]["ownerReferences"][0]["kind"] == "Job"
            assert play_script_job(cluster, script_job, cluster.folder / "script-jobs") == 3
            assert sync.wait(timeout=300) == 0, log.read_text()[-3000:]
        finally:
            if sync.poll() is None:
                sync.kill()
        assert cluster.tgt_names() == ["Ada Lovelace", "Alan Turing", "Grace Hopper",
                                       "Pioneers"]
        scripts = cluster.status()["activeRun"]["scripts"]
        after, mailboxes = scripts
        assert (after["step"], after["name"], after["where"], after["result"],
                after["exitCode"]) == (5, "after", "Pod", "Succeeded", 0)
        assert after["outputTail"].startswith("after the writes: {")
        assert '"created": 4' in after["outputTail"]
        assert (mailboxes["where"], mailboxes["result"], mailboxes["exitCode"]) == \
            (f"Job {script_job['metadata']['name']}", "Failed", 3)
        # No kubelet here keeps the pod's log: the API server answers it empty, and the run
        # records no output rather than inventing one (the log tail is proven by contract).
        assert mailboxes["outputTail"] == ""
        assert cluster.status()["activeRun"]["result"] == "Succeeded"   # onFailure: continue
        cluster.finish_job(job, succeeded=True)
        last = eventually(lambda: (cluster.status().get("lastRun") or {}).get("id") == run_id
                          and cluster.status()["lastRun"], "the run recorded as lastRun")
        assert [s["result"] for s in last["scripts"]] == ["Succeeded", "Failed"]
    assert "forbidden" not in log.read_text().lower()


def _config_map(cluster: Cluster, name: str) -> dict[str, Any] | None:
    found = cluster.api.kubectl("get", "configmap", name, "-o", "json", check=False,
                                namespace=cluster.namespace)
    return json.loads(found.stdout) if found.returncode == 0 else None
