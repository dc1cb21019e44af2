"""The kube_api fixture is a real API server: kubectl, RBAC for minted identities, helm."""

from __future__ import annotations

import json

import pytest
from tests.support.kube_api import KubeAPI


def test_kubectl_creates_and_lists_namespace_and_configmap(
    kube_api: KubeAPI, kube_namespace: str
) -> None:
    namespaces = json.loads(kube_api.kubectl("get", "namespaces", "-o", "json").stdout)
    assert kube_namespace in {item["metadata"]["name"] for item in namespaces["items"]}

    kube_api.kubectl(
        "create", "configmap", "settings", "--from-literal=colour=blue", namespace=kube_namespace
    )
    listed = json.loads(
        kube_api.kubectl("get", "configmaps", "-o", "json", namespace=kube_namespace).stdout
    )
    by_name = {item["metadata"]["name"]: item for item in listed["items"]}
    assert by_name["settings"]["data"] == {"colour": "blue"}


def test_minted_user_is_forbidden_until_a_role_binding_allows_it(
    kube_api: KubeAPI, kube_namespace: str
) -> None:
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    kube_api.kubectl("create", "configmap", "visible", namespace=kube_namespace)
    alice = kube_api.identity("alice", groups=["ferry-testers"])
    core = client.CoreV1Api(kube_api.api_client(alice))

    with pytest.raises(ApiException) as denied:
        core.list_namespaced_config_map(kube_namespace)
    assert denied.value.status == 403
    refused = kube_api.kubectl(
        "get", "configmaps", identity=alice, namespace=kube_namespace, check=False
    )
    assert refused.returncode != 0 and "Forbidden" in refused.stderr

    kube_api.kubectl(
        "create",
        "role",
        "read-configmaps",
        "--verb=get,list",
        "--resource=configmaps",
        namespace=kube_namespace,
    )
    kube_api.kubectl(
        "create",
        "rolebinding",
        "alice-reads",
        "--role=read-configmaps",
        "--user=alice",
        namespace=kube_namespace,
    )

    names = [cm.metadata.name for cm in core.list_namespaced_config_map(kube_namespace).items]
    assert "visible" in names
    # Only what the Role grants: no Secrets, nothing in other namespaces.
    with pytest.raises(ApiException) as secrets:
        core.list_namespaced_secret(kube_namespace)
    assert secrets.value.status == 403
    with pytest.raises(ApiException) as elsewhere:
        core.list_namespaced_config_map("default")
    assert elsewhere.value.status == 403


def test_service_account_token_is_bound_by_rbac(kube_api: KubeAPI, kube_namespace: str) -> None:
    robot = kube_api.service_account(kube_namespace, "ferry-operator")
    assert robot.user == f"system:serviceaccount:{kube_namespace}:ferry-operator"

    def can_i(verb: str, resource: str) -> str:
        result = kube_api.kubectl(
            "auth", "can-i", verb, resource, identity=robot, namespace=kube_namespace, check=False
        )
        return result.stdout.strip()

    assert can_i("create", "configmaps") == "no"
    # A Role of its own: the aggregated ClusterRoles (edit, view, admin) stay empty here, as
    # their rules are filled in by kube-controller-manager, which this server does not run.
    kube_api.kubectl(
        "create",
        "role",
        "configmap-writer",
        "--verb=get,list,create",
        "--resource=configmaps",
        namespace=kube_namespace,
    )
    kube_api.kubectl(
        "create",
        "rolebinding",
        "operator-writes",
        "--role=configmap-writer",
        f"--serviceaccount={kube_namespace}:ferry-operator",
        namespace=kube_namespace,
    )
    assert can_i("create", "configmaps") == "yes"
    assert can_i("create", "secrets") == "no"
    kube_api.kubectl(
        "create", "configmap", "made-by-robot", identity=robot, namespace=kube_namespace
    )


def test_helm_runs_against_the_server(kube_api: KubeAPI, kube_namespace: str) -> None:
    if kube_api.binaries.helm is None:
        pytest.skip("helm is not available (`make envtest` builds it; needs Go)")
    version = kube_api.helm("version", "--short").stdout.strip()
    assert version.startswith("v3.")
    releases = kube_api.helm("list", "--output", "json", namespace=kube_namespace).stdout
    assert json.loads(releases) == []
