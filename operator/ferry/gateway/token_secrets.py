"""Enrollment tokens handed over through one Kubernetes Secret
(`ferry agent token create ENV --in-cluster`).

The admin's kubeconfig adds a key to Secret `ferry-enrollment-tokens` per token: the token's
id (its part before the dot) maps to its SHA-256, environment and expiry, never to the token
itself. The gateway may get and patch that one Secret, by name, and nothing else of the API:
a compromised gateway reads no directory credential and no usable token. When an agent
enrolls, the gateway moves the entry into the state store (single-use from then on, as for any
token) and removes the key.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.gateway.enrollment import check_environment, token_hash
from ferry.state.store import StateStore

SECRET_NAME = "ferry-enrollment-tokens"
MANAGED_LABEL = "ferry.dev/enrollment-tokens"
_SECRET_TOKEN = re.compile(r"^([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")


def create_token_secret(api: client.ApiClient, namespace: str, environment: str,
                        ttl: timedelta, secret: str = SECRET_NAME) -> tuple[str, datetime, str]:
    """A new token, its hash added to the Secret (made if missing); (token, expiry, Secret)."""
    token_id = secrets.token_hex(6)
    token = f"{token_id}.{secrets.token_urlsafe(32)}"
    expires = datetime.now(UTC) + ttl
    entry = json.dumps({"sha256": token_hash(token),
                        "environment": check_environment(environment),
                        "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ")})
    data = {token_id: base64.b64encode(entry.encode()).decode()}
    core = client.CoreV1Api(api)
    try:  # a merge patch adds this key only: concurrent creates and claims do not collide
        _merge_patch(api, namespace, secret, {"data": data})
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(namespace, {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": secret, "labels": {MANAGED_LABEL: "true"}},
            "data": data})
    return token, expires, secret


class SecretTokens:
    """Moves a Secret-held token entry into the state store when an agent presents it."""

    def __init__(self, api: client.ApiClient, namespace: str, store: StateStore,
                 secret: str = SECRET_NAME):
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._store = store
        self._secret = secret

    def claim(self, token: str) -> None:
        """Import the token if the Secret holds a matching, unexpired entry for it; silently
        nothing else (the enrollment then fails like any unknown token)."""
        match = _SECRET_TOKEN.fullmatch(token)
        if match is None:
            return
        token_id = match.group(1)
        try:
            found: Any = self._core.read_namespaced_secret(self._secret, self._namespace)
        except ApiException:
            return
        raw = (found.data or {}).get(token_id)
        if raw is None:
            return
        hashed = token_hash(token)
        try:
            entry = json.loads(base64.b64decode(raw))
            expires = datetime.fromisoformat(str(entry["expires"]).replace("Z", "+00:00"))
            environment = check_environment(str(entry["environment"]))
            matches = hmac.compare_digest(str(entry["sha256"]), hashed)
        except (KeyError, TypeError, ValueError):
            return
        if not matches:
            return
        if self._store.agents.token_state(hashed) == "unknown" and expires > datetime.now(UTC):
            self._store.agents.add_token(hashed, environment, expires)
        with contextlib.suppress(ApiException):  # it now lives in the store only
            # A JSON patch: remove this key if it still holds this entry, and nothing else.
            # (patch_namespaced_secret sends a list body as a JSON patch)
            self._core.patch_namespaced_secret(
                self._secret, self._namespace,
                [{"op": "test", "path": f"/data/{token_id}", "value": raw},
                 {"op": "remove", "path": f"/data/{token_id}"}])


def _merge_patch(api: client.ApiClient, namespace: str, name: str, body: dict[str, Any]) -> None:
    """A JSON merge patch of a Secret (the generated client sends only JSON patches)."""
    api.call_api("/api/v1/namespaces/{namespace}/secrets/{name}", "PATCH",
                 path_params={"namespace": namespace, "name": name},
                 header_params={"Content-Type": "application/merge-patch+json",
                                "Accept": "application/json"},
                 body=body, auth_settings=["BearerToken"], response_type="V1Secret",
                 _return_http_data_only=True)
