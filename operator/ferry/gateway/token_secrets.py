"""Enrollment tokens kept as Kubernetes Secrets (`ferry agent token create ENV --in-cluster`).

The token names its Secret (`<id>.<secret part>` lives in Secret `ferry-enroll-<id>`), so the
gateway reads exactly one Secret by name when an agent enrolls with it. It moves the token's
hash into the state store (which makes it single-use, as for any token) and deletes the
Secret. An admin's kubeconfig creates the Secret; the gateway only gets and deletes.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.gateway.enrollment import check_environment, token_hash
from ferry.state.store import StateStore

TOKEN_LABEL = "ferry.dev/enrollment-token"
ENVIRONMENT_LABEL = "ferry.dev/environment"
EXPIRES_ANNOTATION = "ferry.dev/expires"
_SECRET_TOKEN = re.compile(r"^([0-9a-f]{12})\.([A-Za-z0-9_-]{43})$")


def secret_name(token_id: str) -> str:
    return f"ferry-enroll-{token_id}"


def create_token_secret(api: client.ApiClient, namespace: str, environment: str,
                        ttl: timedelta) -> tuple[str, datetime, str]:
    """A new token stored as a Secret; returns (token, expiry, Secret name)."""
    token_id = secrets.token_hex(6)
    token = f"{token_id}.{secrets.token_urlsafe(32)}"
    expires = datetime.now(UTC) + ttl
    name = secret_name(token_id)
    client.CoreV1Api(api).create_namespaced_secret(namespace, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name,
                     "labels": {TOKEN_LABEL: "true",
                                ENVIRONMENT_LABEL: check_environment(environment)},
                     "annotations": {EXPIRES_ANNOTATION: expires.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        "data": {"token": base64.b64encode(token.encode()).decode()},
    })
    return token, expires, name


class SecretTokens:
    """Moves a Secret-held token into the state store when an agent presents it."""

    def __init__(self, api: client.ApiClient, namespace: str, store: StateStore):
        self._core = client.CoreV1Api(api)
        self._namespace = namespace
        self._store = store

    def claim(self, token: str) -> None:
        """Import the token if a matching, unexpired Secret holds it; silently nothing else
        (the enrollment then fails like any unknown token)."""
        match = _SECRET_TOKEN.fullmatch(token)
        if match is None:
            return
        name = secret_name(match.group(1))
        try:
            found: Any = self._core.read_namespaced_secret(name, self._namespace)
        except ApiException:
            return
        meta = found.metadata
        labels = meta.labels or {}
        held = base64.b64decode((found.data or {}).get("token", "")).decode("utf-8", "replace")
        if labels.get(TOKEN_LABEL) != "true" or not hmac.compare_digest(held, token):
            return
        try:
            expires = datetime.fromisoformat(
                (meta.annotations or {})[EXPIRES_ANNOTATION].replace("Z", "+00:00"))
            environment = check_environment(labels[ENVIRONMENT_LABEL])
        except (KeyError, ValueError):
            return
        hashed = token_hash(token)
        if self._store.enrollment_token_state(hashed) == "unknown" and expires > datetime.now(UTC):
            self._store.add_enrollment_token(hashed, environment, expires)
        with contextlib.suppress(ApiException):  # it now lives (hashed) in the store only
            self._core.delete_namespaced_secret(name, self._namespace)
