"""The operator's Prometheus metrics, scraped from a real `ferry operator` process on the real
API server: a run that syncs the lab's three users and one group shows as one Succeeded run
and four objects created; the figures survive the operator being killed and restarted (they
come from status.totals, not from the process); a failed run adds to Failed and leaves the
last success alone. Every metric the chart's alerts and dashboard use is one it serves."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path

from tests.integration.gateway.harness import free_port
from tests.integration.kube import test_operator
from tests.integration.kube.test_operator import WORKFLOW, Cluster, condition
from tests.support.metrics import Scrape, scrape
from tests.support.polling import eventually

cluster = test_operator.cluster  # the fixture: the lab's workflow on the real API server
pytestmark = test_operator.pytestmark
HOST = "127.0.0.1"


def _operator(cluster: Cluster, log: Path
              ) -> tuple[AbstractContextManager[subprocess.Popen[bytes]], str]:
    port = free_port(HOST)
    env = {**os.environ, **cluster.operator_env(), "FERRY_METRICS_LISTEN": f"{HOST}:{port}"}
    return test_operator.support_operator_process(cluster.namespace, env, log), \
        f"http://{HOST}:{port}/metrics"


def _served(url: str) -> Scrape | None:
    try:
        return scrape(url)
    except OSError:  # not listening yet
        return None


def _finished(cluster: Cluster, run_id: str) -> bool:
    return (cluster.status().get("lastRun") or {}).get("id") == run_id


def test_a_scrape_counts_the_recorded_runs_and_survives_a_restart(cluster: Cluster) -> None:
    log = cluster.folder / "operator.log"
    wf = {"namespace": cluster.namespace, "workflow": WORKFLOW}
    started, url = _operator(cluster, log)
    with started as first:
        eventually(lambda: condition(cluster.status(), "Ready").get("status") == "True",
                   "Workflow Ready")
        before = eventually(lambda: _served(url), "the operator's metrics endpoint")
        assert before.value("ferry_runs_total", **wf, result="Succeeded") == 0
        assert before.value("ferry_schedule_interval_seconds", **wf) == 3600  # every 60m
        assert before.value("ferry_run_active", **wf) == 0

        run_id = cluster.request_run()
        job = eventually(lambda: cluster.jobs() or None, "the run's Job")[0]
        running = eventually(lambda: (s := _served(url)) and s.value(
            "ferry_run_active", **wf) == 1 and s, "the run active in a scrape")
        assert running.value("ferry_runs_total", **wf, result="Succeeded") == 0
        done = cluster.run_job_command(job)
        assert done.returncode == 0, done.stdout + done.stderr
        cluster.finish_job(job, succeeded=True)
        eventually(lambda: _finished(cluster, run_id), "the run recorded")
        after = eventually(lambda: (s := scrape(url)) and s.value(
            "ferry_runs_total", **wf, result="Succeeded") == 1 and s, "the run in a scrape")
        status = cluster.status()
        totals = status["totals"]
        assert totals["runs"] == {"Succeeded": 1}
        assert after.value("ferry_objects_total", **wf, type="user", operation="created") == 3
        assert after.value("ferry_objects_total", **wf, type="group", operation="created") == 1
        assert after.value("ferry_objects_total", **wf, type="user", operation="failed") == 0
        assert after.value("ferry_runs_total", **wf, result="Failed") == 0
        assert after.value("ferry_delete_threshold_hits_total", **wf) == 0
        assert after.value("ferry_run_duration_seconds_count", **wf) == 1
        assert after.value("ferry_run_duration_seconds_sum", **wf) == totals["durationSeconds"]
        success = datetime.fromisoformat(totals["lastSuccessTime"]).timestamp()
        assert after.value("ferry_last_success_timestamp_seconds", **wf) == success
        assert after.value("ferry_next_run_timestamp_seconds", **wf) == \
            datetime.fromisoformat(status["nextRunTime"]).timestamp()
        assert after.value("ferry_run_active", **wf) == 0
        assert after.types["ferry_runs"] == "counter"
        assert after.types["ferry_run_duration_seconds"] == "summary"
        # Labels stay low-cardinality: never a run id, a DN or a person.
        assert run_id not in after.text and "Ada" not in after.text
        assert "DC=" not in after.text.upper()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    # A new operator process: the same figures, read from status, not from memory.
    started, url = _operator(cluster, log)
    with started:
        again = eventually(lambda: (s := _served(url)) and s.value(
            "ferry_runs_total", **wf, result="Succeeded") is not None and s,
            "the restarted operator's metrics")
        assert again.value("ferry_runs_total", **wf, result="Succeeded") == 1
        assert again.value("ferry_objects_total", **wf, type="user", operation="created") == 3
        assert again.value("ferry_last_success_timestamp_seconds", **wf) == success

        failed_id = cluster.request_run()
        second = eventually(lambda: [j for j in cluster.jobs()
                                     if j["metadata"]["labels"]["ferry.dev/run"] == failed_id],
                            "the second run's Job")[0]
        cluster.finish_job(second, succeeded=False, reason="BackoffLimitExceeded")
        eventually(lambda: _finished(cluster, failed_id), "the failed run recorded")
        final = eventually(lambda: (s := scrape(url)) and s.value(
            "ferry_runs_total", **wf, result="Failed") == 1 and s, "the failure in a scrape")
        assert final.value("ferry_runs_total", **wf, result="Succeeded") == 1
        assert final.value("ferry_last_success_timestamp_seconds", **wf) == success
        assert final.value("ferry_objects_total", **wf, type="user", operation="created") == 3
    assert "Traceback" not in log.read_text()



def test_an_operator_that_cannot_listen_for_metrics_stops_saying_why(cluster: Cluster) -> None:
    log = cluster.folder / "operator.log"
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {**os.environ, **cluster.operator_env(), "FERRY_METRICS_LISTEN": f"{HOST}:{port}"}
        with test_operator.support_operator_process(cluster.namespace, env, log) as process:
            eventually(lambda: process.poll() is not None, "the operator to stop", timeout=120)
    assert process.returncode != 0
    assert f"FERRY_METRICS_LISTEN {HOST}:{port}: cannot listen there" in log.read_text()
