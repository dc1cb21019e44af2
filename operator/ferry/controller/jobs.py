"""The batch/v1 Job of one workflow run: built here, created by the workflow reconciler."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from ferry.api.base import GROUP_VERSION, SecretKeySelector, ValueSource
from ferry.api.environment import Environment
from ferry.api.template import Template
from ferry.api.workflow import WorkflowSpec
from ferry.controller.runs import (
    ENVIRONMENT_LABEL,
    FINAL_EXIT_CODES,
    MANAGED_BY,
    RUN_LABEL,
    TRIGGER_ANNOTATION,
    WORKFLOW_LABEL,
    job_name,
)
from ferry.scripts.texts import DEFAULT_CONFIG_MAPS_DIR
from ferry.secrets import DEFAULT_SECRETS_DIR, SECRETS_DIR_ENV
from ferry.settings import (
    GATEWAY_CA_ENV,
    GATEWAY_TOKEN_FILE_ENV,
    GATEWAY_URL_ENV,
    OperatorSettings,
)

CONTAINER = "sync"
GATEWAY_MOUNT = "/var/run/secrets/ferry-gateway"
STATE_DIR = "/var/lib/ferry"
RUN_AS = 10001  # the image's non-root user
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
CREDENTIAL_MARGIN = timedelta(minutes=30)


def secret_refs(environments: Iterable[Environment], templates: Iterable[Template],
                workflow: WorkflowSpec | None = None) -> dict[str, set[str]]:
    """Secret name -> keys the run needs, from every secretKeyRef its objects hold (the
    secret variables of script steps it runs itself too)."""
    sources: list[ValueSource | None] = []
    for env in environments:
        sources += [source for source, _ in env.spec.secret_sources()]
    for template in templates:
        sources.append(template.spec.password.value)
    if workflow is not None:
        # Not an image step's: its own Job's pod mounts those, the sync pod never sees them.
        sources += [var.value_from for step in workflow.steps
                    if step.run_script and step.run_script.image is None
                    for var in step.run_script.env]
    refs: dict[str, set[str]] = {}
    for source in sources:
        ref: SecretKeySelector | None = source.secret_key_ref if source else None
        if ref is not None:
            refs.setdefault(ref.name, set()).add(ref.key)
    return refs


def token_files(environments: Iterable[Environment]) -> set[str]:
    """Where the Entra ID environments signing in with workload identity read their token."""
    return {env.spec.entra_id.credentials.workload_identity.token_file
            for env in environments
            if env.spec.entra_id is not None
            and env.spec.entra_id.credentials.workload_identity is not None}


def build_job(*, namespace: str, workflow: str, workflow_uid: str, run_id: str, trigger: str,
              secrets: dict[str, set[str]], settings: OperatorSettings,
              tokens: Iterable[str] = (),
              config_maps: Mapping[str, set[str]] | None = None) -> dict[str, Any]:
    """The Job of one Workflow run: `ferry sync-job`, owned by the Workflow; the ConfigMap
    keys its script steps read are mounted (optional: a missing one fails the run, named)."""
    return _job(
        namespace=namespace, name=job_name(workflow, run_id), owner=("Workflow", workflow,
                                                                     workflow_uid),
        component="sync", labels={WORKFLOW_LABEL: workflow, RUN_LABEL: run_id},
        args=["sync-job", "--workflow", f"{namespace}/{workflow}", "--run", run_id],
        trigger=trigger, secrets=secrets, settings=settings, tokens=tokens,
        config_maps=config_maps or {})


def build_request_job(*, namespace: str, workflow: str, workflow_uid: str, request_id: str,
                      name: str, labels: dict[str, str], component: str, command: str,
                      trigger: str, secrets: dict[str, set[str]], settings: OperatorSettings,
                      tokens: Iterable[str] = (),
                      config_maps: Mapping[str, set[str]] | None = None) -> dict[str, Any]:
    """The Job of one request of a Workflow (a trace, a match report): `ferry COMMAND`, in
    the run's pod shape (the same Secrets and ConfigMaps), owned by the Workflow
    (controller/request_jobs.py)."""
    return _job(
        namespace=namespace, name=name, owner=("Workflow", workflow, workflow_uid),
        component=component, labels=labels,
        args=[command, "--workflow", f"{namespace}/{workflow}", "--request", request_id],
        trigger=trigger, secrets=secrets, settings=settings, tokens=tokens,
        config_maps=config_maps or {})


def build_discovery_job(*, namespace: str, environment: str, environment_uid: str,
                        run_id: str, trigger: str, full: bool,
                        secrets: dict[str, set[str]], settings: OperatorSettings,
                        tokens: Iterable[str] = ()) -> dict[str, Any]:
    """The Job of one discovery: `ferry discover-job`, owned by the Environment."""
    args = ["discover-job", "--environment", f"{namespace}/{environment}", "--run", run_id]
    return _job(
        namespace=namespace, name=job_name(f"{environment}-discovery", run_id),
        owner=("Environment", environment, environment_uid), component="discovery",
        labels={ENVIRONMENT_LABEL: environment, RUN_LABEL: run_id},
        args=[*args, "--full"] if full else args,
        trigger=trigger, secrets=secrets, settings=settings, tokens=tokens)


def _job(*, namespace: str, name: str, owner: tuple[str, str, str], component: str,
         labels: dict[str, str], args: list[str], trigger: str, secrets: dict[str, set[str]],
         settings: OperatorSettings, tokens: Iterable[str] = (),
         config_maps: Mapping[str, set[str]] | None = None) -> dict[str, Any]:
    """A Job running `ferry ARGS`: owned, bounded, non-root and read-only, secrets as files,
    and a projected service account token for Entra ID workload identity federation."""
    labels = {
        "app.kubernetes.io/name": "ferry",
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        **labels,
    }
    mounts: list[dict[str, Any]] = [{"name": "state", "mountPath": STATE_DIR},
                                    {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [
        {"name": "state", **_state_volume(settings)},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if gateway_credentials(settings):
        # This run's own credential (credential_secret), created beside the Job and owned by it.
        mounts.append({"name": "gateway", "mountPath": GATEWAY_MOUNT, "readOnly": True})
        volumes.append({"name": "gateway", "secret": {
            "secretName": credential_secret_name(name), "defaultMode": 0o440,
            "items": [{"key": "token", "path": "token"}, {"key": "ca.crt", "path": "ca.crt"}],
        }})
    for index, path in enumerate(sorted(set(tokens))):
        # The token Entra ID exchanges: this pod's service account, for Azure's audience.
        folder, _, file = path.rpartition("/")
        volume = f"azure-identity-token-{index}"
        mounts.append({"name": volume, "mountPath": folder or "/", "readOnly": True})
        volumes.append({"name": volume, "projected": {"sources": [{"serviceAccountToken": {
            "path": file, "audience": WORKLOAD_IDENTITY_AUDIENCE,
            "expirationSeconds": 3600}}], "defaultMode": 0o440}})
    for secret, keys in sorted(secrets.items()):
        volume = _volume_name(secret)
        mounts.append({"name": volume, "mountPath": f"{DEFAULT_SECRETS_DIR}/{secret}",
                       "readOnly": True})
        volumes.append({"name": volume, "secret": {
            "secretName": secret,
            "items": [{"key": k, "path": k} for k in sorted(keys)],
            "defaultMode": 0o440,
        }})
    for config_map, keys in sorted((config_maps or {}).items()):
        volume = _volume_name(config_map, "configmap")
        mounts.append({"name": volume, "mountPath": f"{DEFAULT_CONFIG_MAPS_DIR}/{config_map}",
                       "readOnly": True})
        volumes.append({"name": volume, "configMap": {
            "name": config_map, "optional": True,
            "items": [{"key": k, "path": k} for k in sorted(keys)], "defaultMode": 0o444,
        }})
    container = {
        "name": CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["ferry"],
        # Names only: secrets reach the pod as mounted files, never as arguments.
        "args": args,
        "env": _env(settings),
        "resources": {
            "requests": {"cpu": settings.job_cpu_request, "memory": settings.job_memory_request},
            "limits": {"cpu": settings.job_cpu_limit, "memory": settings.job_memory_limit},
        },
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {TRIGGER_ANNOTATION: trigger},
            "ownerReferences": [{
                "apiVersion": GROUP_VERSION, "kind": owner[0], "name": owner[1],
                "uid": owner[2], "controller": True, "blockOwnerDeletion": True,
            }],
        },
        "spec": {
            "backoffLimit": settings.job_backoff_limit,
            "activeDeadlineSeconds": settings.job_active_deadline_seconds,
            "ttlSecondsAfterFinished": settings.job_ttl_seconds,
            # Invalid input, a delete threshold or per-object errors: a retry cannot help.
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": CONTAINER, "operator": "In",
                                "values": list(FINAL_EXIT_CODES)},
            }]},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": settings.job_service_account,
                    "imagePullSecrets": [{"name": n} for n in settings.image_pull_secrets],
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def _env(settings: OperatorSettings) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": SECRETS_DIR_ENV, "value": str(DEFAULT_SECRETS_DIR)},
    ]
    if settings.state_url_secret:
        name, _, key = settings.state_url_secret.partition("/")
        env.append({"name": "FERRY_STATE",
                    "valueFrom": {"secretKeyRef": {"name": name, "key": key or "url"}}})
    else:
        env.append({"name": "FERRY_STATE", "value": f"{STATE_DIR}/state.sqlite"})
    if gateway_credentials(settings):
        env += [{"name": GATEWAY_URL_ENV, "value": settings.gateway_url},
                {"name": GATEWAY_CA_ENV, "value": f"{GATEWAY_MOUNT}/ca.crt"},
                {"name": GATEWAY_TOKEN_FILE_ENV, "value": f"{GATEWAY_MOUNT}/token"}]
    return env


def gateway_credentials(settings: OperatorSettings) -> bool:
    """Whether Jobs reach a gateway, each with a credential of its own."""
    return bool(settings.gateway_url and settings.job_signing_key_file)


def credential_secret_name(job: str) -> str:
    return f"{job}-gateway"


def credential_lifetime(settings: OperatorSettings) -> timedelta:
    """As long as the Job may run, and some time for its pod to be scheduled."""
    return timedelta(seconds=settings.job_active_deadline_seconds) + CREDENTIAL_MARGIN


def credential_secret(job: dict[str, Any], token: str, ca_bundle: str) -> dict[str, Any]:
    """The Secret holding one Job's gateway credential; owned by the Job, so it goes with it."""
    meta = job["metadata"]
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {
            "name": credential_secret_name(meta["name"]), "namespace": meta["namespace"],
            "labels": {k: v for k, v in meta["labels"].items()
                       if k != "app.kubernetes.io/component"}
            | {"app.kubernetes.io/component": "gateway-credential"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                                 "uid": meta["uid"]}],
        },
        "stringData": {"token": token, "ca.crt": ca_bundle},
    }


def _state_volume(settings: OperatorSettings) -> dict[str, Any]:
    if settings.state_volume_claim and not settings.state_url_secret:
        return {"persistentVolumeClaim": {"claimName": settings.state_volume_claim}}
    return {"emptyDir": {}}


def _volume_name(name: str, kind: str = "secret") -> str:
    digest = hashlib.sha256(f"{kind}/{name}".encode()).hexdigest()[:8]
    return f"{kind}-{name[:42].rstrip('-.')}-{digest}".replace(".", "-")
