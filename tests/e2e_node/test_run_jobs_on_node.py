"""Ferry's run Job (controller.jobs.build_job, as the operator creates it) on a real node: what
the Job controller and kubelet do with its podFailurePolicy, limits and mounts. The container's
command is replaced by a small script doing what a sync ends with (an exit code, a kill, too
much memory), since these tests are about the Job's shape, not the sync."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tests.support.kube_node import KubeNode

from ferry.controller.jobs import build_job
from ferry.secrets import DEFAULT_SECRETS_DIR
from ferry.settings import OperatorSettings

NAMESPACE = "ferry-jobs-e2e"


@pytest.fixture(scope="module")
def namespace(kube_node: KubeNode) -> Iterator[str]:
    kube_node.kubectl("create", "namespace", NAMESPACE)
    kube_node.kubectl("create", "serviceaccount", "ferry-sync", "-n", NAMESPACE)
    yield NAMESPACE
    kube_node.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _run(
    node: KubeNode,
    image: str,
    run_id: str,
    script: str,
    secrets: dict[str, set[str]] | None = None,
    **settings: Any,
) -> str:
    job = build_job(
        namespace=NAMESPACE,
        workflow="wf",
        workflow_uid="00000000-0000-0000-0000-000000000000",
        run_id=run_id,
        trigger="test",
        secrets=secrets or {},
        settings=OperatorSettings(
            image=image, image_pull_policy="Never", state_volume_claim=None, **settings
        ),
    )
    # No Workflow here: the garbage collector would delete a Job owned by a missing one.
    job["metadata"].pop("ownerReferences")
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["command"] = ["python3", "-c", script]
    container["args"] = []
    node.kubectl("apply", "-f", "-", input=json.dumps(job))
    return str(job["metadata"]["name"])


def _wait_job(node: KubeNode, name: str, timeout: float = 240) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = json.loads(node.kubectl("get", "job", name, "-n", NAMESPACE, "-o", "json").stdout)
        done = [
            c
            for c in job.get("status", {}).get("conditions", [])
            if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        ]
        if done:
            return job
        time.sleep(1)
    raise AssertionError(f"job {name} did not finish in {timeout:.0f}s: {job.get('status')}")


def _pods(node: KubeNode, job: str) -> list[dict[str, Any]]:
    out = node.kubectl("get", "pods", "-n", NAMESPACE, "-l", f"job-name={job}", "-o", "json")
    return list(json.loads(out.stdout)["items"])


def _condition(job: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == kind)


def test_exit_3_fails_the_job_at_once_without_a_retry(
    kube_node: KubeNode, node_image: str, namespace: str
) -> None:
    name = _run(kube_node, node_image, "exit3", "raise SystemExit(3)")
    job = _wait_job(kube_node, name)
    assert _condition(job, "Failed")["reason"] == "PodFailurePolicy", job["status"]
    assert len(_pods(kube_node, name)) == 1, "exit 3 was retried"


def test_a_killed_pod_is_retried_once_and_the_run_completes(
    kube_node: KubeNode, node_image: str, namespace: str
) -> None:
    name = _run(kube_node, node_image, "killed", "import time; time.sleep(15)")
    deadline = time.monotonic() + 180
    container_id = ""
    while time.monotonic() < deadline and not container_id:
        for pod in _pods(kube_node, name):
            for status in pod["status"].get("containerStatuses", []):
                if "running" in status.get("state", {}):
                    container_id = status["containerID"].removeprefix("containerd://")
        time.sleep(0.5)
    assert container_id, "the first pod never ran"
    kube_node.ctr("tasks", "kill", "--signal", "SIGKILL", container_id)
    job = _wait_job(kube_node, name)
    assert _condition(job, "Complete")["status"] == "True", job["status"]
    assert job["status"].get("failed") == 1 and job["status"].get("succeeded") == 1
    exits = sorted(
        s["state"]["terminated"]["exitCode"]
        for pod in _pods(kube_node, name)
        for s in pod["status"]["containerStatuses"]
    )
    assert exits == [0, 137], exits


def test_a_pod_over_its_memory_limit_is_oomkilled(
    kube_node: KubeNode, node_image: str, namespace: str
) -> None:
    name = _run(
        kube_node,
        node_image,
        "oom",
        "x = bytearray(256 * 1024 * 1024); print(len(x))",
        job_memory_request="64Mi",
        job_memory_limit="64Mi",
        job_backoff_limit=0,
    )
    job = _wait_job(kube_node, name)
    assert _condition(job, "Failed")["reason"] == "BackoffLimitExceeded", job["status"]
    (pod,) = _pods(kube_node, name)
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated


def test_the_pod_is_10001_read_only_and_sees_only_the_named_secret_keys(
    kube_node: KubeNode, node_image: str, namespace: str
) -> None:
    kube_node.kubectl(
        "create", "secret", "generic", "ad-creds", "-n", NAMESPACE,
        "--from-literal=password=s3cret", "--from-literal=other-key=not-for-this-run",
    )  # fmt: skip
    script = (
        "import os\n"
        f"d = '{DEFAULT_SECRETS_DIR}/ad-creds'\n"
        "print('uid', os.getuid())\n"
        "print('keys', sorted(n for n in os.listdir(d) if not n.startswith('..')))\n"
        "print('value', open(d + '/password').read())\n"
        "try:\n"
        "    open('/etc/written', 'w')\n"
        "except OSError as exc:\n"
        "    print('root', exc.strerror)\n"
    )
    name = _run(kube_node, node_image, "secrets", script, secrets={"ad-creds": {"password"}})
    job = _wait_job(kube_node, name)
    assert _condition(job, "Complete")["status"] == "True", job["status"]
    out = kube_node.kubectl("logs", f"job/{name}", "-n", NAMESPACE).stdout
    assert "uid 10001" in out, out
    assert "keys ['password']" in out, out
    assert "value s3cret" in out, out
    assert "root Read-only file system" in out, out
