"""`ferry discover-job`: the command a discovery Job executes. Takes inventory of one
Environment and writes its object counts into the Environment's status."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ferry.api.environment import Environment
from ferry.api.status import RunResult
from ferry.connectors.factory import open_connector
from ferry.kube import FerryObjects
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.discovery import discover
from ferry.sync.outcome import ExitCode

log = structlog.get_logger("ferry.discover_job")


def run_discovery_job(api: client.ApiClient, namespace: str, name: str, run_id: str,
                      store: StateStore, secrets: SecretSource, settings: RunSettings,
                      full: bool) -> ExitCode:
    """Discover one Environment inside its Job; the outcome ends up in its status."""
    objects = FerryObjects(api)
    body = objects.get("environments", namespace, name)
    active = ((body or {}).get("status") or {}).get("activeDiscovery") or {}
    if body is None or active.get("id") != run_id:
        log.error("discover_job.not_active", run=run_id, active=active.get("id"))
        return ExitCode.INVALID_INPUT
    _report(objects, namespace, name, run_id, {}, {"result": RunResult.RUNNING.value})
    try:
        env = Environment.model_validate({**body, "status": None})
    except ValidationError as exc:
        _report(objects, namespace, name, run_id, {}, _final(RunResult.FAILED, str(exc)))
        return ExitCode.INVALID_INPUT
    try:
        connector = open_connector(env, secrets, settings)
        try:
            found = discover(env, connector, store, reset=full)
        finally:
            connector.close()
    except Exception as exc:  # the Environment's status must say why, whatever broke
        log.exception("discover_job.failed", environment=f"{namespace}/{name}")
        _report(objects, namespace, name, run_id, {},
                _final(RunResult.FAILED, f"{type(exc).__name__}: {exc}"))
        return ExitCode.FAILED
    kind = "full" if found.full else "delta"
    message = (f"{kind} discovery: {found.total} objects"
               f" ({', '.join(f'{n} {t}' for t, n in found.counts.items()) or 'none'});"
               f" {found.changed} read, {found.deleted} gone")
    _report(objects, namespace, name, run_id,
            {"objectCounts": found.counts, "objects": found.total,
             "lastDiscovery": _now()},
            {**_final(RunResult.SUCCEEDED, message), "full": found.full})
    log.info("discover_job.done", environment=f"{namespace}/{name}", message=message)
    return ExitCode.OK


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _final(result: RunResult, message: str) -> dict[str, Any]:
    return {"result": result.value, "message": message, "completionTime": _now()}


def _report(objects: FerryObjects, namespace: str, name: str, run_id: str,
            status: dict[str, Any], active_fields: dict[str, Any]) -> None:
    """Merge into status (and status.activeDiscovery) while this discovery is the active one."""
    for _ in range(5):
        body = objects.get("environments", namespace, name)
        active = ((body or {}).get("status") or {}).get("activeDiscovery") or {}
        if body is None or active.get("id") != run_id:
            log.warning("discover_job.status_gone", run=run_id)
            return
        try:
            objects.patch_status("environments", body,
                                 {**status, "activeDiscovery": {**active, **active_fields}})
            return
        except ApiException as exc:
            if exc.status != 409:
                raise
