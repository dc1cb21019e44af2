"""kopf wiring: watch the ferry.dev kinds and Ferry's Jobs, hand each change to its reconciler.

Only watch-event handlers are used, so kopf keeps no state on the objects (no finalizers, no
annotations): everything the operator knows is in status and in the Jobs' labels, which is
why it can restart at any moment. A ticker reconciles Workflows whose next run time has come
and re-checks Environment connections.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
import structlog

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.status import WorkflowStatus
from ferry.controller.alerts import deliveries_due
from ferry.controller.cache import ObjectCache
from ferry.controller.devicemigrations import DeviceMigrationReconciler
from ferry.controller.environments import EnvironmentReconciler
from ferry.controller.events import EventRecorder
from ferry.controller.match_report_requests import MATCH_REPORT_LABEL
from ferry.controller.metrics import serve_metrics
from ferry.controller.runs import (
    ENVIRONMENT_LABEL,
    MANAGED_BY,
    RUN_REQUEST_ANNOTATION,
    WORKFLOW_LABEL,
)
from ferry.controller.templates import TemplateReconciler
from ferry.controller.trace_requests import TRACE_LABEL
from ferry.controller.workflows import WorkflowReconciler, referenced_objects
from ferry.kube import ApiSecretResolver, FerryObjects, api_client
from ferry.settings import OperatorSettings

log = structlog.get_logger("ferry.operator")


@dataclass
class Controller:
    settings: OperatorSettings
    cache: ObjectCache
    workflows: WorkflowReconciler
    environments: EnvironmentReconciler
    templates: TemplateReconciler
    devices: DeviceMigrationReconciler


def run(settings: OperatorSettings, liveness: str | None = None,
        stop_flag: threading.Event | None = None) -> None:
    """Run the operator until SIGTERM (or `stop_flag`); `settings` reach the handlers in
    kopf's memo."""
    kopf.run(standalone=True, clusterwide=settings.cluster_wide,
             namespaces=settings.watched_namespaces, liveness_endpoint=liveness,
             memo=kopf.Memo(settings=settings), stop_flag=stop_flag)


def build_controller(settings: OperatorSettings) -> Controller:
    api = api_client()
    events = EventRecorder(api, "ferry-operator")
    objects = FerryObjects(api)
    cache = ObjectCache()
    return Controller(
        settings=settings,
        cache=cache,
        workflows=WorkflowReconciler(api, settings, cache, events),
        environments=EnvironmentReconciler(api, objects, events, settings),
        templates=TemplateReconciler(objects, events),
        devices=DeviceMigrationReconciler(objects, cache, events, settings.state,
                                          lambda namespace: ApiSecretResolver(api, namespace)),
    )


@kopf.on.login()
def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """The pod's ServiceAccount in a cluster, else KUBECONFIG as it is when the operator starts."""
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    ferry_settings = memo.get("settings")
    if not isinstance(ferry_settings, OperatorSettings):
        raise kopf.PermanentError("no Ferry settings in the operator's memo: start it with"
                                  " `ferry operator` (ferry.controller.handlers.run)")
    settings.posting.enabled = False       # Ferry posts its own Events, with its own reasons
    settings.peering.standalone = True     # one replica (Recreate); no peering objects needed
    # No cluster-wide scans for CRDs and namespaces: the Role is namespaced (least privilege).
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    memo.controller = build_controller(ferry_settings)
    address = ferry_settings.metrics_address
    if address is not None:
        try:
            memo.metrics = serve_metrics(memo.controller.cache, *address)
        except OSError as exc:  # retrying would not free the port
            raise kopf.PermanentError(f"FERRY_METRICS_LISTEN {ferry_settings.metrics_listen}:"
                                      f" cannot listen there: {exc.strerror or exc}") from None
        log.info("metrics.listening", url=f"http://{ferry_settings.metrics_listen}/metrics")
    memo.ticker = asyncio.create_task(_tick(memo.controller))
    log.info("operator.started", namespaces=memo.controller.settings.watched_namespaces or "all")


@kopf.on.cleanup()
async def _cleanup(memo: kopf.Memo, **_: Any) -> None:
    metrics = memo.get("metrics")
    if metrics is not None:
        await asyncio.to_thread(metrics.stop)
    ticker = memo.get("ticker")
    if ticker is not None:
        ticker.cancel()
        try:
            await ticker
        except asyncio.CancelledError:
            pass
        except Exception:  # re-raised on every retry: the operator would never stop
            log.exception("ticker had failed")


@kopf.on.event("batch", "v1", "jobs", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
def _job_event(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    labels = body["metadata"].get("labels") or {}
    namespace = body["metadata"]["namespace"]
    # A run's, a trace's or a match report's
    workflow = labels.get(WORKFLOW_LABEL) or labels.get(TRACE_LABEL) \
        or labels.get(MATCH_REPORT_LABEL)
    if workflow:
        memo.controller.workflows.reconcile(namespace, workflow)
    if labels.get(ENVIRONMENT_LABEL):
        memo.controller.environments.reconcile(namespace, labels[ENVIRONMENT_LABEL])


# The ferry.dev kinds watched: kind -> (plural, reconcile one object that still exists).
_WATCHED: dict[str, tuple[str, Callable[[Controller, kopf.Body], None]]] = {
    "Workflow": ("workflows", lambda ctl, body: ctl.workflows.reconcile(*_key(body))),
    "Environment": ("environments", lambda ctl, body: ctl.environments.reconcile(*_key(body))),
    "Template": ("templates", lambda ctl, body: ctl.templates.reconcile(dict(body))),
    "DeviceMigration": ("devicemigrations",
                        lambda ctl, body: ctl.devices.reconcile(*_key(body))),
}


def _object_event(type: str, body: kopf.Body, memo: kopf.Memo, param: str = "",
                  **_: Any) -> None:
    """A watch event of the kind `param`: reconcile the object and, for an Environment or a
    Template, the Workflows that name it."""
    ctl: Controller = memo.controller
    if _cached(ctl, param, type, body):
        _WATCHED[param][1](ctl, body)
    if param not in ("Workflow", "DeviceMigration"):
        _reconcile_dependents(ctl, *_key(body), param)


for _kind, (_plural, _) in _WATCHED.items():  # one handler id per kind, e.g. workflow_event
    kopf.on.event(API_GROUP, API_VERSION, _plural, id=f"{_kind.lower()}_event",
                  param=_kind)(_object_event)


def _key(body: kopf.Body) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def _cached(ctl: Controller, kind: str, event: str, body: kopf.Body) -> bool:
    """Keep the cache in step with a watch event; True when the object still exists."""
    if event == "DELETED":
        ctl.cache.drop(kind, *_key(body))
        return False
    ctl.cache.put(kind, dict(body))
    return True


def _reconcile_dependents(ctl: Controller, namespace: str, name: str, kind: str) -> None:
    """Workflows' Ready depends on the Environments and Templates they name."""
    for workflow in ctl.cache.all("Workflow", namespace):
        if (kind, name) in referenced_objects(workflow.get("spec") or {}):
            ctl.workflows.reconcile(namespace, workflow["metadata"]["name"])


async def _tick(ctl: Controller) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(ctl.settings.tick_seconds)
        now = datetime.now(UTC)
        due = [(ctl.workflows.reconcile, w["metadata"]) for w in ctl.cache.all("Workflow")
               if _due(w, now)]
        due += [(ctl.environments.reconcile, e["metadata"])
                for e in ctl.cache.all("Environment") if ctl.environments.due(e, now)]
        # Devices report to the gateway, not to the API server: every tick reads their
        # progress back (and holds cutovers to their time).
        due += [(ctl.devices.reconcile, d["metadata"])
                for d in ctl.cache.all("DeviceMigration")]
        for reconcile, meta in due:
            try:
                await loop.run_in_executor(None, reconcile, meta["namespace"], meta["name"])
            except Exception:  # one broken object must not stop the schedule of the others
                log.exception("scheduled reconcile failed", namespace=meta["namespace"],
                              name=meta["name"])


def _due(workflow: dict[str, Any], now: datetime) -> bool:
    status = WorkflowStatus.of(workflow)
    requested = (workflow["metadata"].get("annotations") or {}).get(RUN_REQUEST_ANNOTATION)
    if requested and requested != status.last_run_request:
        return True
    if deliveries_due(status, now):  # an alert's retry has come
        return True
    if status.next_run_time:
        return status.next_run_time <= now
    return status.observed_generation != workflow["metadata"].get("generation")
