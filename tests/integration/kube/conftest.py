"""A real Kubernetes API server for the session (etcd + kube-apiserver, no kubelet).

Fixtures:
    kube_api        the running server (tests.support.kube_api.KubeAPI): `kube_api.kubeconfig`
                    is the admin's kubeconfig, `kube_api.identity(user, groups)` mints a user,
                    `kube_api.service_account(ns, name)` signs in as a ServiceAccount,
                    `kube_api.kubectl(...)` and `kube_api.helm(...)` run the tools against it.
    kube_namespace  a fresh namespace for one test, deleted afterwards.

Binaries come from KUBEBUILDER_ASSETS or .cache/envtest/bin (`make envtest`); when missing they
are built here (minutes, once). Tests skip only when they are missing and Go is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.kube_api import (
    Binaries,
    BinariesUnavailable,
    KubeAPI,
    KubeAPIError,
    ensure_binaries,
)


@pytest.fixture(scope="session")
def kube_binaries() -> Binaries:
    """etcd, kube-apiserver, kubectl and (if it could be had) helm."""
    try:
        return ensure_binaries()
    except BinariesUnavailable as exc:
        pytest.skip(str(exc))
    except KubeAPIError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def kube_api(
    kube_binaries: Binaries, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KubeAPI]:
    """One API server for the whole session, on a loopback address from 127.0.0.60 on."""
    api = KubeAPI(tmp_path_factory.mktemp("kube-api"), kube_binaries)
    try:
        api.start()
    except KubeAPIError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def kube_namespace(kube_api: KubeAPI, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new namespace named after the test, deleted (left Terminating: no controllers) after."""
    name = kube_api.create_namespace(request.node.name)
    try:
        yield name
    finally:
        kube_api.delete_namespace(name)
