"""The Kubernetes API client: in-cluster credentials in a pod, KUBECONFIG elsewhere."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from ferry.api.base import API_GROUP, API_VERSION, ValueSource
from ferry.api.status import StatusModel
from ferry.secrets import SecretError


def api_client() -> client.ApiClient:
    """A client for the cluster this process runs in, or the current kubeconfig context."""
    try:
        config.load_incluster_config()
        return client.ApiClient()
    except config.ConfigException:
        # KUBECONFIG read now, not when the kubernetes package was imported.
        return config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))


class FerryObjects:
    """Get, list and status-patch the ferry.dev kinds."""

    def __init__(self, api: client.ApiClient):
        self._custom = client.CustomObjectsApi(api)

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self._custom.get_namespaced_custom_object(
                API_GROUP, API_VERSION, namespace, plural, name)
            return found
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        found = self._custom.list_namespaced_custom_object(API_GROUP, API_VERSION, namespace,
                                                           plural)
        items: list[dict[str, Any]] = found.get("items", [])
        return items

    def patch_status(self, plural: str, body: dict[str, Any], status: dict[str, Any]) -> None:
        """Merge-patch status, failing with 409 if the object changed since `body` was read."""
        meta = body["metadata"]
        self._custom.patch_namespaced_custom_object_status(
            API_GROUP, API_VERSION, meta["namespace"], plural, meta["name"],
            {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status})


def retry_conflicts(attempt: Callable[[], None], attempts: int = 5) -> bool:
    """Call `attempt` (read, decide, patch) again while it fails with 409 Conflict because
    the object changed meanwhile; False when every attempt did."""
    for _ in range(attempts):
        try:
            attempt()
            return True
        except ApiException as exc:
            if exc.status != 409:
                raise
    return False


def status_changes(old: StatusModel, new: StatusModel) -> dict[str, Any]:
    """A merge patch turning status old into new (None deletes a field)."""
    before, after = old.dump(), new.dump()
    return {k: after.get(k) for k in before.keys() | after.keys()
            if before.get(k) != after.get(k)}


class ApiSecretResolver:
    """Resolves secretKeyRef sources by reading the Secret in the object's namespace."""

    def __init__(self, api: client.ApiClient, namespace: str):
        self._core = client.CoreV1Api(api)
        self._namespace = namespace

    def resolve(self, source: ValueSource, where: str) -> str:
        ref = source.secret_key_ref
        if ref is None:
            raise SecretError(f"{where}: in a cluster, use secretKeyRef (env and file sources"
                              " only work with the ferry CLI)")
        try:
            secret = self._core.read_namespaced_secret(ref.name, self._namespace)
        except ApiException as exc:
            if exc.status == 404:
                raise SecretError(f"{where}: Secret {ref.name} not found in namespace"
                                  f" {self._namespace}; create it or fix the name") from None
            raise SecretError(f"{where}: cannot read Secret {ref.name}: {exc.reason}") from None
        data = secret.data or {}
        if ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            raise SecretError(f"{where}: Secret {ref.name} has no key {ref.key!r}"
                              f" (keys: {keys})")
        return base64.b64decode(data[ref.key]).decode("utf-8").rstrip("\r\n")


SERVICE_ACCOUNT_NAMESPACE = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


def current_namespace() -> str:
    """The pod's namespace in a cluster, else the kubeconfig context's, else default."""
    try:
        with open(SERVICE_ACCOUNT_NAMESPACE, encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        pass
    try:
        _, context = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG"))
        return str(context["context"].get("namespace") or "default")
    except (config.ConfigException, KeyError, TypeError):
        return "default"
