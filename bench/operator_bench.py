"""Operator benchmark on a real API server (etcd + kube-apiserver, as in the tests).

    python bench/operator_bench.py [REQUESTS] [WORKFLOWS]       (default: 50 200)

1. Latency from a run request (the ferry.dev/run-requested annotation, what
   `ferry run --in-cluster` writes) to the run's Job existing, measured with a watch on Jobs:
   median and worst over REQUESTS requests. Each Job is then marked complete, as the Job
   controller would, and the next request waits until the run is recorded.
2. Resident memory of `ferry operator` (a real process) idle, then with WORKFLOWS Workflows in
   its namespace once it has reconciled all of them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import rss_mb  # noqa: E402
from tests.support.kube_api import KubeAPI, ensure_binaries  # noqa: E402

EXAMPLES = ROOT / "examples" / "ad-to-ad"



def wait_for(check: Any, what: str, timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def main(requests: int, workflows: int) -> None:
    from kubernetes import client, watch

    with tempfile.TemporaryDirectory(prefix="ferry-operator-bench-") as folder, \
            KubeAPI(Path(folder) / "api", ensure_binaries()) as api:
        api.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        api.kubectl("wait", "--for=condition=Established", "crd/workflows.ferry.dev")
        ns = api.create_namespace("bench")
        api.kubectl("apply", "-f", str(EXAMPLES), namespace=ns)
        log = open(Path(folder) / "operator.log", "wb")  # noqa: SIM115
        operator = subprocess.Popen(
            [sys.executable, "-m", "ferry", "operator", "--namespace", ns],
            env={**api.env(), "FERRY_TICK_SECONDS": "1", "FERRY_IMAGE": "ferry:bench"},
            stdout=log, stderr=subprocess.STDOUT)
        kube = api.api_client()
        custom, batch = client.CustomObjectsApi(kube), client.BatchV1Api(kube)

        def workflow(name: str) -> dict[str, Any]:
            return custom.get_namespaced_custom_object("ferry.dev", "v1alpha1", ns,
                                                       "workflows", name)

        try:
            wait_for(lambda: (workflow("ad-to-ad").get("status") or {}).get("schedule"),
                     "the operator to reconcile the example Workflow")
            time.sleep(3)  # settle: measure idle memory after start-up work is done
            idle = rss_mb(operator.pid)

            created: dict[str, float] = {}
            stop = threading.Event()

            def watch_jobs() -> None:
                stream = watch.Watch()
                try:
                    for event in stream.stream(batch.list_namespaced_job, ns,
                                               timeout_seconds=600):
                        if event["type"] == "ADDED":
                            run = event["object"].metadata.labels.get("ferry.dev/run")
                            created.setdefault(run, time.monotonic())
                        if stop.is_set():
                            stream.stop()
                except Exception:  # the server going away at the end ends the watch
                    if not stop.is_set():
                        raise

            watcher = threading.Thread(target=watch_jobs, daemon=True)
            watcher.start()
            time.sleep(1)
            latencies = []
            for i in range(requests):
                before = len(created)
                sent = time.monotonic()
                custom.patch_namespaced_custom_object(
                    "ferry.dev", "v1alpha1", ns, "workflows", "ad-to-ad",
                    {"metadata": {"annotations": {"ferry.dev/run-requested": f"bench-{i}"}}})
                wait_for(lambda before=before: len(created) > before, f"Job {i}")
                run_id = max(created, key=lambda r: created[r])
                latencies.append(created[run_id] - sent)
                job = f"ad-to-ad-{run_id}"
                now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                batch.patch_namespaced_job_status(job, ns, {"status": {
                    "startTime": now, "completionTime": now, "succeeded": 1, "conditions": [
                        {"type": "SuccessCriteriaMet", "status": "True",
                         "lastTransitionTime": now},
                        {"type": "Complete", "status": "True", "lastTransitionTime": now}]}})
                wait_for(lambda run_id=run_id: ((workflow("ad-to-ad").get("status") or {})
                                                .get("lastRun") or {}).get("id") == run_id,
                         f"run {i} recorded")
            stop.set()

            documents = []
            for i in range(workflows):
                doc = yaml.safe_load((EXAMPLES / "workflow.yaml").read_text())
                doc["metadata"]["name"] = f"wf-{i:03d}"
                documents.append(doc)
            api.kubectl("apply", "-f", "-", namespace=ns, input=yaml.safe_dump_all(documents))

            def all_reconciled() -> bool:
                listed = custom.list_namespaced_custom_object("ferry.dev", "v1alpha1", ns,
                                                              "workflows")["items"]
                return len(listed) > workflows and all(
                    (w.get("status") or {}).get("observedGeneration") for w in listed)

            wait_for(all_reconciled, f"{workflows} Workflows reconciled", timeout=600)
            time.sleep(3)
            loaded = rss_mb(operator.pid)
        finally:
            operator.terminate()
            operator.wait(timeout=30)
            log.close()
        ms = sorted(x * 1000 for x in latencies)
        print(json.dumps({"requests": requests,
                          "request_to_job_ms": {"median": round(statistics.median(ms), 1),
                                                "p90": round(ms[int(len(ms) * 0.9) - 1], 1),
                                                "worst": round(ms[-1], 1)},
                          "operator_rss_mb": {"idle": round(idle, 1),
                                              f"with_{workflows}_workflows": round(loaded, 1)}},
                         indent=2))


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    main(*(args + [50, 200][len(args):]))
