"""End to end on a kind cluster (pytest-kind): build the image, install the chart, apply the
examples and see a real Job pod run a workflow and report into the Workflow's status.

Needs a Docker engine; skipped cleanly without one. `make e2e` runs it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "ferry:e2e"


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30,
                          check=False).returncode == 0


pytestmark = [
    pytest.mark.skipif(not _docker_engine(), reason="no Docker engine: kind needs one"),
]


def test_chart_installs_and_a_job_pod_runs_a_workflow(kind_cluster: Any) -> None:
    subprocess.run(["docker", "build", "-t", IMAGE, str(ROOT)], check=True, timeout=1800)
    kind_cluster.load_docker_image(IMAGE)
    kubeconfig = str(kind_cluster.kubeconfig_path)
    env = {"KUBECONFIG": kubeconfig, "PATH": "/usr/local/bin:/usr/bin:/bin"}
    subprocess.run(["helm", "install", "ferry", str(ROOT / "charts" / "ferry"),
                    "--namespace", "ferry", "--create-namespace", "--wait",
                    "--set", "image.repository=ferry", "--set", "image.tag=e2e",
                    "--set", "image.pullPolicy=Never"], check=True, env=env, timeout=600)
    kind_cluster.kubectl("apply", "-n", "ferry", "-f", str(ROOT / "examples" / "ad-to-ad"))
    kind_cluster.kubectl("annotate", "-n", "ferry", "workflow", "ad-to-ad",
                         "ferry.dev/run-requested=e2e", "--overwrite")
    deadline = time.monotonic() + 600
    status: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status = json.loads(kind_cluster.kubectl(
            "get", "-n", "ferry", "workflow", "ad-to-ad", "-o", "json")).get("status") or {}
        if status.get("lastRun"):
            break
        time.sleep(2)
    # The lab's domain controllers are not reachable from inside kind, so the run fails, but
    # it failed in a real pod that reported why into the Workflow.
    last = status.get("lastRun") or {}
    assert last.get("result") in {"Succeeded", "Failed"}, status
    pods = kind_cluster.kubectl("get", "pods", "-n", "ferry", "-l", "ferry.dev/workflow=ad-to-ad",
                                "-o", "json")
    assert json.loads(pods)["items"], "no Job pod ran"
