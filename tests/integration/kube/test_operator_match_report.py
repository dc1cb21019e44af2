"""`ferry report matches --in-cluster` on a real API server with the chart's RBAC, against the
Samba lab: the CLI asks through the ferry.dev/match-report-requested annotation, the operator
starts one report Job in the run's pod shape, the Job's command (run here, as the sync
ServiceAccount: there is no kubelet) plans each pair as `ferry report matches -f` does and
stores the rows, and `ferry report matches NS/NAME` (where the store is: the operator's pod)
writes the same CSV bytes as `-f` on the same manifests and state."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.integration.kube.test_operator import (
    WORKFLOW,
    Cluster,
    condition,
    operator_in_process,
)
from tests.integration.kube.test_operator import cluster as cluster  # the fixture
from tests.integration.kube.test_operator_trace import ended, events, play
from tests.integration.sync.scenario import snapshot
from tests.support.polling import eventually, never

from ferry.state.store import StateStore
from ferry_agent.directory.write import create
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab

REPORT_JOBS = f"ferry.dev/match-reported-workflow={WORKFLOW}"
ANNOTATION = "ferry.dev/match-report-requested"
PAIR = f"{WORKFLOW}/src->tgt"


def ferry(cluster: Cluster, *args: str, background: bool = False
          ) -> subprocess.Popen[str] | subprocess.CompletedProcess[bytes]:
    """`ferry ARGS` as the admin would run it (the lab's Secrets as a folder, the state
    store the Jobs write)."""
    command = [sys.executable, "-m", "ferry", *args]
    env = {**os.environ, "KUBECONFIG": str(cluster.api.kubeconfig), "COLUMNS": "200",
           "FERRY_SECRETS_DIR": str(cluster.secrets_dir),
           "FERRY_STATE": str(cluster.folder / "state.sqlite")}
    if background:
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(command, env=env, capture_output=True, timeout=300, check=False)


def report_in_cluster(cluster: Cluster) -> subprocess.Popen[str]:
    cli = ferry(cluster, "report", "matches", "--in-cluster",
                f"{cluster.namespace}/{WORKFLOW}", "--timeout", "120", background=True)
    assert isinstance(cli, subprocess.Popen)
    return cli


def refused(cluster: Cluster, *args: str) -> str:
    """stderr of a `ferry report matches` the CLI refuses (exit 2, nothing on stdout)."""
    done = ferry(cluster, "report", "matches", *args)
    assert isinstance(done, subprocess.CompletedProcess)
    assert (done.returncode, done.stdout) == (2, b""), done.stderr
    return " ".join(done.stderr.decode().split())


def next_report_job(cluster: Cluster, seen: set[str]) -> dict[str, Any]:
    new = eventually(lambda: [j for j in cluster.jobs(REPORT_JOBS)
                              if j["metadata"]["name"] not in seen], "the report's Job")
    assert len(new) == 1, [j["metadata"]["name"] for j in new]
    seen.add(new[0]["metadata"]["name"])
    return new[0]


def annotation(cluster: Cluster, name: str = WORKFLOW) -> str | None:
    return (cluster.get("workflow", name)["metadata"].get("annotations") or {}).get(ANNOTATION)


def stored_state(cluster: Cluster) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """What a report must leave alone: the joins, the pending creates and the runs."""
    with StateStore(str(cluster.folder / "state.sqlite"), read_only=True) as store:
        return (store.joins.confirmed(PAIR), store.joins.pending(PAIR),
                [r.id for r in store.runs.recent(WORKFLOW)])


def test_a_match_report_in_the_cluster_writes_the_csv_of_the_local_one(
        cluster: Cluster, lab: Any, src_ou: str, tmp_path: Path) -> None:
    ns = cluster.namespace
    seen: set[str] = set()
    with operator_in_process(cluster):
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready")
        # Refused before anything is touched: exit 2, naming the object and the fix.
        assert "leave out -f, -w, --out" in refused(
            cluster, "--in-cluster", f"{ns}/{WORKFLOW}", "-f", str(cluster.folder))
        assert "leave out -f, -w, --out" in refused(
            cluster, "--in-cluster", f"{ns}/{WORKFLOW}", "--out", str(tmp_path / "x"))
        assert "--timeout is how long --in-cluster waits" in refused(
            cluster, "-f", str(cluster.folder), "-w", WORKFLOW, "--out", str(tmp_path / "x"),
            "--timeout", "5")
        assert f"--in-cluster '{WORKFLOW}': give NAMESPACE/NAME of a Workflow" in refused(
            cluster, "--in-cluster", WORKFLOW)
        assert f"Workflow {ns}/nope not found" in refused(cluster, "--in-cluster", f"{ns}/nope")
        assert (f"Workflow {ns}/{WORKFLOW}: the state store {cluster.folder / 'state.sqlite'}"
                f" holds no match report of it (it has: none); make one with `ferry report"
                f" matches --in-cluster {ns}/{WORKFLOW}`") in refused(
            cluster, f"{ns}/{WORKFLOW}", "--out", str(tmp_path / "none"))
        cluster.api.kubectl("apply", "-f", "-", namespace=ns, input=BROKEN)
        eventually(lambda: condition(cluster.status("workflow", "broken"), "Ready")
                   .get("status") == "False", "Workflow broken not Ready")
        says = refused(cluster, "--in-cluster", f"{ns}/broken")
        assert f"Workflow {ns}/broken is not Ready: " in says and "nowhere" in says, says
        assert annotation(cluster) is None and annotation(cluster, "broken") is None
        assert cluster.jobs(REPORT_JOBS) == [] and not (tmp_path / "x").exists()

        # A run first, so that the report has stored joins to read; then one source object
        # for a match rule to find, and one to be created.
        run_id = cluster.request_run()
        run = eventually(lambda: cluster.jobs() or None, "the run's Job")[0]
        assert cluster.run_job_command(run).returncode == 0
        cluster.finish_job(run, succeeded=True)
        eventually(lambda: (cluster.status().get("lastRun") or {}).get("id") == run_id,
                   "the run recorded")
        conn = lab.src.connect()
        for name, employee in (("Maud Match", ["7741"]), ("Nell New", [])):
            create(conn, "user", build_dn(name, src_ou),
                   {"sAMAccountName": [name.replace(" ", "").lower()],
                    "givenName": [name.split()[0]], "sn": [name.split()[1]],
                    **({"employeeID": employee} if employee else {})})
        conn.unbind()
        conn = lab.tgt.connect()
        create(conn, "user", build_dn("Maud T", cluster.tgt_ou),
               {"sAMAccountName": ["maudt"], "employeeID": ["7741"]})
        conn.unbind()
        before = (snapshot(lab.src, src_ou), snapshot(cluster.tgt, cluster.tgt_ou),
                  stored_state(cluster))

        # One Job in the run's pod shape; Pending in status before it runs.
        cli = report_in_cluster(cluster)
        job = next_report_job(cluster, seen)
        pending = cluster.status()["lastMatchReport"]
        assert pending["result"] == "Pending" and annotation(cluster) == pending["id"]
        meta, pod = job["metadata"], job["spec"]["template"]["spec"]
        assert meta["name"] == pending["jobName"] == f"{WORKFLOW}-matches-{pending['id']}"
        assert meta["ownerReferences"][0]["name"] == WORKFLOW
        assert "ferry.dev/workflow" not in meta["labels"]  # never taken for a run
        assert meta["labels"]["app.kubernetes.io/component"] == "match-report"
        container = pod["containers"][0]
        assert container["args"] == ["match-report-job", "--workflow", f"{ns}/{WORKFLOW}",
                                     "--request", pending["id"]]
        assert pod["serviceAccountName"] == "ferry-sync"
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == \
            {"src-ad", "tgt-ad"}
        assert container["volumeMounts"][0] == {"name": "state", "mountPath": "/var/lib/ferry"}
        play(cluster, job)
        code, out, err = ended(cli)
        assert code == 0, out + err
        assert f"requested match report {pending['id']} of Workflow {ns}/{WORKFLOW}" in err
        assert out.splitlines() == ["src -> tgt: 4 joined, 1 matched, 1 wouldCreate"]
        last = cluster.status()["lastMatchReport"]
        assert (last["id"], last["result"], last["exitCode"]) == (pending["id"], "Succeeded", 0)
        assert last["pairs"] == [{"source": "src", "target": "tgt", "counts": {
            "joined": 4, "matched": 1, "wouldCreate": 1, "unmatched": 0, "conflict": 0,
            "outOfScope": 0, "error": 0}}]
        assert last["message"] == out.splitlines()[0]
        assert any(pending["id"] in m for m in events(cluster, "MatchReportStarted"))
        assert f"match report {pending['id']}: {last['message']}" in events(
            cluster, "MatchReportFinished")

        # The CSV from the stored report (as `kubectl exec` into the operator's pod writes
        # it) is byte for byte the CSV `-f` writes on the same manifests and state.
        local = ferry(cluster, "report", "matches", "-f", str(cluster.folder / "manifests.yaml"),
                      "-w", WORKFLOW, "--out", str(tmp_path / "local"))
        assert isinstance(local, subprocess.CompletedProcess)
        assert local.returncode == 0, local.stderr
        stored = ferry(cluster, "report", "matches", f"{ns}/{WORKFLOW}", "--out",
                       str(tmp_path / "stored"))
        assert isinstance(stored, subprocess.CompletedProcess)
        assert stored.returncode == 0, stored.stderr
        csv = (tmp_path / "local" / "src-to-tgt.csv").read_bytes()
        assert (tmp_path / "stored" / "src-to-tgt.csv").read_bytes() == csv
        assert b",matched,employeeID -> employeeID," in csv and csv.count(b"\r\n") == 1 + 6
        assert stored.stdout.decode().replace(str(tmp_path / "stored"), "DIR") == \
            local.stdout.decode().replace(str(tmp_path / "local"), "DIR")
        assert local.stdout.decode().startswith(out.splitlines()[0] + "; wrote ")
        streamed = ferry(cluster, "report", "matches", f"{ns}/{WORKFLOW}", "--out", "-")
        assert isinstance(streamed, subprocess.CompletedProcess)
        with tarfile.open(fileobj=io.BytesIO(streamed.stdout)) as tar:
            member = tar.extractfile(f"matches-{WORKFLOW}/src-to-tgt.csv")
            assert member is not None and member.read() == csv
        # It wrote nothing to either directory, to joins or runs.
        assert (snapshot(lab.src, src_ou), snapshot(cluster.tgt, cluster.tgt_ou),
                stored_state(cluster)) == before

        # A request while another is active waits: no second Job until that one ends. Its
        # CLI still gets its own end, although the waiting request replaces it in status as
        # soon as the operator sees it; a Job that ends without a report fails its request.
        failing = report_in_cluster(cluster)
        job = next_report_job(cluster, seen)
        waiting = report_in_cluster(cluster)
        eventually(lambda: annotation(cluster) != job["metadata"]["labels"]["ferry.dev/run"],
                   "the waiting request")
        never(lambda: len(cluster.jobs(REPORT_JOBS)) > len(seen), "a report Job more")
        cluster.finish_job(job, succeeded=False, reason="BackoffLimitExceeded")
        first = job
        code, out, err = ended(failing)
        assert (code, out) == (1, ""), err
        assert f"Job {job['metadata']['name']} ended without a report: BackoffLimitExceeded" \
            in " ".join(err.split())
        # The waiting one's Job cannot read a Secret: Failed, exit 2 naming it, and the
        # stored report is still the last one made.
        job = next_report_job(cluster, seen)
        container = job["spec"]["template"]["spec"]["containers"][0]
        (tmp_path / "no-secrets").mkdir()
        done = subprocess.run(
            [sys.executable, "-m", "ferry", *container["command"][1:], *container["args"]],
            env={**os.environ, "KUBECONFIG": str(cluster.sync.kubeconfig),
                 "FERRY_SECRETS_DIR": str(tmp_path / "no-secrets"),
                 "FERRY_STATE": str(cluster.folder / "state.sqlite")},
            capture_output=True, text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr
        cluster.finish_job(job, succeeded=True)
        code, out, err = ended(waiting)
        assert (code, out) == (2, ""), err
        assert "Environment/src: spec.activeDirectory.credentials.password" in " ".join(
            err.split())
        assert cluster.status()["lastMatchReport"]["result"] == "Failed"
        with StateStore(str(cluster.folder / "state.sqlite"), read_only=True) as store:
            kept = store.match_reports.of(ns, WORKFLOW)
        assert kept is not None and kept.report_id == pending["id"]
        # A Job run again after its request ended does nothing (exit 2): never twice.
        again = cluster.run_job_command(job)
        assert again.returncode == 2 and cluster.status()["lastMatchReport"]["result"] == \
            "Failed"
        failures = [e for e in events(cluster, "MatchReportFinished") if "failed" in e]
        assert len(failures) == 2 and (
            f"match report {first['metadata']['labels']['ferry.dev/run']} failed: Job"
            f" {first['metadata']['name']} ended without a report: BackoffLimitExceeded Job"
            " has reached the specified backoff limit") in failures



BROKEN = """\
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {name: broken}
spec:
  steps:
    - readFrom: {environments: [src, nowhere]}
    - stageData:
        template: src-to-tgt
        pairs: [{source: src, target: nowhere}]
    - writeTo: {environments: [nowhere]}
"""
