"""`ferry trace --in-cluster` on a real API server with the chart's RBAC, against the Samba
lab: the CLI asks through the ferry.dev/trace-requested annotation, the operator starts one
trace Job, the Job's command (run here, as the sync ServiceAccount: there is no kubelet)
writes the report into status.lastTrace, and the CLI prints what `ferry trace -f` prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from tests.integration.kube.test_operator import (
    WORKFLOW,
    Cluster,
    condition,
    operator_in_process,
)
from tests.integration.kube.test_operator import cluster as cluster  # the fixture
from tests.support.polling import eventually

from ferry.state.store import StateStore
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab

TRACE_JOBS = f"ferry.dev/traced-workflow={WORKFLOW}"


def trace_in_cluster(cluster: Cluster, *args: str) -> subprocess.Popen[str]:
    """`ferry trace --in-cluster NS/WORKFLOW ARGS` as the admin, in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "ferry", "trace", "--in-cluster",
         f"{cluster.namespace}/{WORKFLOW}", *args, "--wait", "120"],
        env={**os.environ, "KUBECONFIG": str(cluster.api.kubeconfig), "COLUMNS": "200"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ended(cli: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = cli.communicate(timeout=180)
    return cli.returncode, out, err


def trace_local(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    """`ferry trace -f` on the same manifests, Secrets and state store, for comparison."""
    return subprocess.run(
        [sys.executable, "-m", "ferry", "trace", "-f", str(cluster.folder / "manifests.yaml"),
         "-w", WORKFLOW, *args, "--state", str(cluster.folder / "state.sqlite")],
        env={**os.environ, "FERRY_SECRETS_DIR": str(cluster.secrets_dir), "COLUMNS": "200"},
        capture_output=True, text=True, timeout=300, check=False)


def next_trace_job(cluster: Cluster, seen: set[str]) -> dict[str, Any]:
    """The trace Job not seen before (there is one per request)."""
    new = eventually(lambda: [j for j in cluster.jobs(TRACE_JOBS)
                              if j["metadata"]["name"] not in seen], "the trace's Job")
    assert len(new) == 1, [j["metadata"]["name"] for j in new]
    seen.add(new[0]["metadata"]["name"])
    return new[0]


def play(cluster: Cluster, job: dict[str, Any]) -> None:
    """The trace Job's pod: its command, then the Job marked finished."""
    done = cluster.run_job_command(job)
    assert done.returncode == 0, done.stdout + done.stderr
    cluster.finish_job(job, succeeded=True)


def events(cluster: Cluster, reason: str) -> list[str]:
    return [e["message"] for e in cluster.events() if e["reason"] == reason]


def test_a_trace_in_the_cluster_prints_what_the_local_one_does_and_apply_records_a_run(
        cluster: Cluster, src_ou: str) -> None:
    ada = build_dn("Ada Lovelace", src_ou)
    state = cluster.folder / "state.sqlite"
    seen: set[str] = set()
    with operator_in_process(cluster):
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready")

        # A read-only trace: one Job in the run's pod shape, the report in status.
        cli = trace_in_cluster(cluster, ada, "--json")
        job = next_trace_job(cluster, seen)
        trace = cluster.status()["lastTrace"]
        assert (trace["object"], trace["apply"], trace["result"]) == (ada, False, "Pending")
        meta, pod = job["metadata"], job["spec"]["template"]["spec"]
        assert meta["name"] == trace["jobName"] == f"{WORKFLOW}-trace-{trace['id']}"
        assert meta["ownerReferences"][0]["name"] == WORKFLOW
        assert "ferry.dev/workflow" not in meta["labels"]  # never taken for a run
        container = pod["containers"][0]
        assert container["args"] == ["trace-job", "--workflow",
                                     f"{cluster.namespace}/{WORKFLOW}", "--request",
                                     trace["id"]]
        assert pod["serviceAccountName"] == "ferry-sync"
        assert {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v} == \
            {"src-ad", "tgt-ad"}
        play(cluster, job)
        code, out, err = ended(cli)
        assert code == 0, out + err
        assert f"requested trace {trace['id']} of Workflow {cluster.namespace}/{WORKFLOW}" \
            in err
        in_cluster = json.loads(out)
        local = trace_local(cluster, ada, "--json")
        assert local.returncode == 0, local.stdout + local.stderr
        assert in_cluster == json.loads(local.stdout)
        assert in_cluster["pairs"][0]["decision"] == "create"
        last = cluster.status()["lastTrace"]
        assert (last["result"], last["exitCode"]) == ("Succeeded", 0)
        assert f"{WORKFLOW}/src->tgt: create" in last["message"]
        assert any(trace["id"] in m for m in events(cluster, "TraceStarted"))
        assert any(trace["id"] in m for m in events(cluster, "TraceFinished"))
        # It wrote nothing: no object, no run, no state file; and no run was started.
        assert cluster.tgt_names() == [] and not state.exists()
        assert cluster.jobs() == [] and cluster.status().get("activeRun") is None

        # --apply, as text: the same lines as locally, then the run it recorded.
        cli = trace_in_cluster(cluster, ada, "--apply")
        play(cluster, next_trace_job(cluster, seen))
        code, out, err = ended(cli)
        assert code == 0, out + err
        run_id = cluster.status()["lastTrace"]["run"]
        assert out.splitlines()[-1] == f"applied as run {run_id}: Succeeded"
        assert "  6. operation: create" in out.splitlines()
        assert cluster.tgt_names() == ["Ada Lovelace"]
        with StateStore(str(state), read_only=True) as store:
            recorded = store.runs.get(run_id)
            assert recorded is not None and recorded.mode == "trace"
            assert sum(c.get("created", 0) for c in recorded.counts.values()) == 1
        # Traced again, it is in sync, as locally.
        local = trace_local(cluster, ada)
        assert "  6. operation: nothing to do: in sync" in local.stdout.splitlines()

        # An object that is nowhere: exit 1 naming where it was looked for.
        cli = trace_in_cluster(cluster, "nobody-here")
        play(cluster, next_trace_job(cluster, seen))
        code, out, err = ended(cli)
        assert code == 1 and out == "", err
        assert "no object 'nobody-here' found; looked up src: sAMAccountName=nobody-here" \
            in err

        # While a run is active an apply is refused (no Job); a read-only trace is not.
        run = cluster.request_run()
        eventually(lambda: (cluster.status().get("activeRun") or {}).get("id") == run,
                   "the run active")
        cli = trace_in_cluster(cluster, ada, "--apply")
        code, out, err = ended(cli)
        assert code == 1, out + err
        assert f"run {run} is active; try again when it ends" in err
        assert any("refused" in m for m in events(cluster, "TraceRefused"))
        assert len(cluster.jobs(TRACE_JOBS)) == len(seen)
        cli = trace_in_cluster(cluster, ada)
        play(cluster, next_trace_job(cluster, seen))
        code, out, err = ended(cli)
        assert code == 0, out + err
        assert "  6. operation: nothing to do: in sync" in out.splitlines()
