"""Each Job's gateway credential: signed for its run's environments, kept in a Secret the Job
owns and mounts; and the operator's own short-lived credential for agents checks."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.controller.jobs import credential_lifetime, credential_secret, gateway_credentials
from ferry.gateway.job_auth import ROLE_OPERATOR, load_signing_key, mint
from ferry.settings import OperatorSettings

log = structlog.get_logger("ferry.operator")
OPERATOR_CREDENTIAL_TTL_SECONDS = 300


def create_job(api: client.ApiClient, job: dict[str, Any], environments: Iterable[str],
               settings: OperatorSettings) -> bool:
    """Create the Job (False: it existed, e.g. made before a restart), then its credential
    Secret bound to `environments`, unless that exists already. The pod waits for the Secret
    to mount, so the order does not matter to it; a Secret owned by the Job goes with it."""
    batch = client.BatchV1Api(api)
    namespace = job["metadata"]["namespace"]
    try:
        created = batch.create_namespaced_job(namespace, job)
        fresh = True
    except ApiException as exc:
        if exc.status != 409:
            raise
        created = batch.read_namespaced_job(job["metadata"]["name"], namespace)
        fresh = False
    if gateway_credentials(settings):
        _create_credential(api, created, sorted(set(environments)), settings)
    return fresh


def _create_credential(api: client.ApiClient, job: Any, environments: list[str],
                       settings: OperatorSettings) -> None:
    assert settings.job_signing_key_file is not None
    meta = job.metadata
    subject = f"{meta.namespace}/{meta.name}"  # one run: its Job's name holds the run id
    token = mint(load_signing_key(Path(settings.job_signing_key_file)), subject, environments,
                 credential_lifetime(settings))
    ca_bundle = (Path(settings.gateway_ca).read_text(encoding="utf-8")
                 if settings.gateway_ca else "")
    secret = credential_secret({"metadata": {"name": meta.name, "namespace": meta.namespace,
                                             "uid": meta.uid, "labels": meta.labels or {}}},
                               token, ca_bundle)
    try:
        client.CoreV1Api(api).create_namespaced_secret(meta.namespace, secret)
    except ApiException as exc:
        if exc.status != 409:  # made before a restart: the Job already mounts that one
            raise
        return
    log.info("job.credential_created", job=subject, environments=environments)


def operator_credential(settings: OperatorSettings) -> str:
    """A credential that lists any environment's agents and nothing else, signed now with the
    job signing key ('' when the operator has none)."""
    if not settings.job_signing_key_file:
        return ""
    return mint(load_signing_key(Path(settings.job_signing_key_file)), "operator", [],
                timedelta(seconds=OPERATOR_CREDENTIAL_TTL_SECONDS), role=ROLE_OPERATOR)
