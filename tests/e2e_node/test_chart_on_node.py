"""charts/ferry installed by helm on a real node, with the image built from this checkout:
what an admin sees first (pods Ready, who they run as, what uninstalling leaves)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.kube_node import KubeNode

CHART = Path(__file__).resolve().parents[2] / "charts" / "ferry"
NAMESPACE = "ferry-e2e"
RELEASE = "ferry"


@pytest.fixture(scope="module")
def release(kube_node: KubeNode, node_image: str) -> Iterator[str]:
    repository, tag = node_image.rsplit(":", 1)
    kube_node.helm(
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--create-namespace",
        "--set",
        f"image.repository={repository}",
        "--set",
        f"image.tag={tag}",
        "--set",
        "image.pullPolicy=Never",
        # No storage provisioner on this node: the state store lives in the operator's pod.
        "--set",
        "state.persistence.enabled=false",
        "--wait",
        "--timeout=6m",
        timeout=420,
    )
    yield NAMESPACE


def _pods(node: KubeNode, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    args = ["get", "pods", "-n", namespace, "-o", "json"]
    if selector:
        args += ["-l", selector]
    return list(json.loads(node.kubectl(*args).stdout)["items"])


def test_operator_and_gateway_deployments_become_ready(kube_node: KubeNode, release: str) -> None:
    deployments = json.loads(
        kube_node.kubectl("get", "deployments", "-n", release, "-o", "json").stdout
    )
    ready = {
        d["metadata"]["name"]: (d["status"].get("readyReplicas", 0), d["spec"]["replicas"])
        for d in deployments["items"]
    }
    assert any(name.endswith("-operator") for name in ready), ready
    assert any(name.endswith("-gateway") for name in ready), ready
    assert all(have == want for have, want in ready.values()), ready
    for pod in _pods(kube_node, release):
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] for s in statuses), (pod["metadata"]["name"], statuses)
        assert all(s["imageID"] or s["image"] for s in statuses)


def test_pods_run_as_10001_on_a_read_only_root(kube_node: KubeNode, release: str) -> None:
    script = (
        "import os\n"
        "print('uid', os.getuid(), 'gid', os.getgid())\n"
        "try:\n"
        "    open('/written-by-test', 'w')\n"
        "    print('root writable')\n"
        "except OSError as exc:\n"
        "    print('root', exc.strerror)\n"
    )
    for pod in _pods(kube_node, release):
        name = pod["metadata"]["name"]
        out = kube_node.kubectl("exec", "-n", release, name, "--", "python3", "-c", script).stdout
        assert "uid 10001" in out, (name, out)
        assert "root Read-only file system" in out, (name, out)


def test_uninstall_leaves_nothing_and_the_namespace_goes(kube_node: KubeNode, release: str) -> None:
    kube_node.helm(
        "uninstall", RELEASE, "--namespace", release, "--wait", "--timeout=3m", timeout=240
    )
    selector = f"app.kubernetes.io/instance={RELEASE}"
    deadline = time.monotonic() + 180
    left: dict[str, str] = {}
    while time.monotonic() < deadline:
        left = {
            kind: kube_node.kubectl(
                "get", kind, "-n", release, "-l", selector, "-o", "name"
            ).stdout.strip()
            for kind in ("pods", "jobs", "roles", "rolebindings", "deployments")
        }
        if not any(left.values()):
            break
        time.sleep(1)
    assert not any(left.values()), f"left behind after uninstall: {left}"
    kube_node.kubectl("delete", "namespace", release, "--wait=true", "--timeout=180s", timeout=200)
    gone = kube_node.kubectl("get", "namespace", release, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr, gone.stdout
