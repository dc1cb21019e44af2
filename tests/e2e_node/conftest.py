"""A real single-node cluster for the session (tests.support.kube_node), with Ferry's image.

Fixtures:
    kube_node   the running node (KubeNode): `kubectl`, `helm`, `ctr`, `expose`; torn down
                (processes, mounts, bridge, iptables, cgroups, sysctls) at the session's end
                even when tests fail, and the teardown fails the session if the machine is not
                as it was.
    node_image  the Ferry image's reference (built from this checkout, imported into containerd).

Run with `make node-e2e` (root; builds tools/node into .cache/node the first time).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from tests.support.kube_api import BinariesUnavailable, KubeAPIError, ensure_binaries
from tests.support.kube_node import KubeNode, build, ferry_image


def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return "a real node needs root (cgroups, mounts, iptables, sysctls)"
    for tool in ("go", "iptables", "umoci", "debootstrap", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (make system-deps installs the node's packages)"
    return None


@pytest.fixture(scope="session")
def node_built() -> None:
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    try:
        build()
    except KubeAPIError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kube_node(node_built: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeNode]:
    try:
        binaries = ensure_binaries()
    except BinariesUnavailable as exc:
        pytest.skip(str(exc))
    node = KubeNode(tmp_path_factory.mktemp("node"), binaries)
    try:
        node.start()
    except KubeAPIError as exc:
        node.close()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(scope="session")
def node_image(node_built: None) -> str:
    return ferry_image()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The teardown test brings up a node of its own: run it before the session's node is up
    (two nodes cannot share the bridge and the Service address)."""
    items.sort(key=lambda item: 0 if item.path.name == "test_teardown.py" else 1)
