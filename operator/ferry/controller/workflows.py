"""Workflow reconciler: observe the Workflow and its Jobs, decide, then write status and Jobs."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.api.base import ObjectMeta
from ferry.api.environment import Environment
from ferry.api.events import EventReason, EventType
from ferry.api.loader import Manifests
from ferry.api.references import check_references
from ferry.api.status import WorkflowStatus
from ferry.api.template import Template
from ferry.api.workflow import Workflow, WorkflowSpec
from ferry.controller.alerts import AlertSender, deliveries_due
from ferry.controller.cache import ObjectCache
from ferry.controller.events import EventRecorder
from ferry.controller.job_credentials import create_job
from ferry.controller.jobs import build_job, secret_refs, token_files
from ferry.controller.match_report_decision import MATCH_REPORTS
from ferry.controller.request_jobs import RequestReconciler
from ferry.controller.runs import WORKFLOW_LABEL
from ferry.controller.trace_decision import TRACES
from ferry.controller.workflow_decision import Decision, decide
from ferry.kube import FerryObjects, retry_conflicts, status_changes
from ferry.scripts.texts import config_map_keys
from ferry.settings import OperatorSettings

log = structlog.get_logger("ferry.operator")

Clock = Callable[[], datetime]
Referenced = TypeVar("Referenced", Environment, Template)


def referenced_objects(spec: WorkflowSpec | dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, name) of every Environment and Template a Workflow spec names, in order (a
    script step's environment too: the run's credential must reach its agents)."""
    steps = (spec.model_dump(by_alias=True) if isinstance(spec, WorkflowSpec) else spec)
    found: dict[tuple[str, str], None] = {}
    for step in steps.get("steps") or []:
        for key in ("readFrom", "writeTo"):
            for name in (step.get(key) or {}).get("environments") or []:
                found[("Environment", name)] = None
        if step.get("stageData"):
            found[("Template", step["stageData"].get("template"))] = None
        if (step.get("runScript") or {}).get("environment"):
            found[("Environment", step["runScript"]["environment"])] = None
    return list(found)


class WorkflowReconciler:
    def __init__(self, api: client.ApiClient, settings: OperatorSettings, cache: ObjectCache,
                 events: EventRecorder, clock: Clock = lambda: datetime.now(UTC)):
        self._api = api
        self._objects = FerryObjects(api)
        self._batch = client.BatchV1Api(api)
        self._settings = settings
        self._cache = cache
        self._events = events
        self._clock = clock
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._alerts = AlertSender(api, self._objects, events, clock)
        self._alerts_due: dict[tuple[str, str], bool] = {}
        # A trace and a match report each run in a Job of their own, beside the runs.
        self._requests: list[RequestReconciler[Any]] = [
            RequestReconciler(TRACES, api, settings, cache, events, clock),
            RequestReconciler(MATCH_REPORTS, api, settings, cache, events, clock)]

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one Workflow's status and Jobs in line with its spec, schedule and requests."""
        with self._lock(namespace, name):
            if not retry_conflicts(lambda: self._reconcile_once(namespace, name)):
                log.warning("workflow.conflicts", workflow=f"{namespace}/{name}")
            for requests in self._requests:
                requests.reconcile(namespace, name, self._references)
            if self._alerts_due.pop((namespace, name), False):
                self._alerts.deliver(namespace, name)

    def _reconcile_once(self, namespace: str, name: str) -> None:
        body = self._objects.get("workflows", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        jobs = self._batch.list_namespaced_job(
            namespace, label_selector=f"{WORKFLOW_LABEL}={name}").items
        spec, problems = _parse_spec(body)
        environments: list[Environment] = []
        templates: list[Template] = []
        if spec is not None:
            problems, environments, templates = self._references(namespace, body, spec)
        status = WorkflowStatus.of(body)
        decision = decide(ObjectMeta.model_validate(body["metadata"]), spec, status, jobs,
                          problems=problems, now=self._clock(),
                          history_limit=self._settings.history_limit)
        changes = status_changes(status, decision.status)
        if changes:
            # Written before the Job is created: a crash in between is finished on restart.
            self._objects.patch_status("workflows", body, changes)
        if decision.start is not None and spec is not None:
            self._start(body, spec, decision, environments, templates)
        for event in decision.events:
            self._events.post(body, event.type, event.reason, event.message)
        # Sent after the status above holds them as Pending (controller/alerts.py).
        self._alerts_due[(namespace, name)] = deliveries_due(decision.status, self._clock())

    def _start(self, body: dict[str, Any], spec: WorkflowSpec,
               decision: Decision[WorkflowStatus], environments: list[Environment],
               templates: list[Template]) -> None:
        start = decision.start
        assert start is not None
        meta = body["metadata"]
        job = build_job(namespace=meta["namespace"], workflow=meta["name"],
                        workflow_uid=meta["uid"], run_id=start.run_id, trigger=start.trigger,
                        secrets=secret_refs(environments, templates, spec),
                        settings=self._settings, tokens=token_files(environments),
                        config_maps=config_map_keys(spec))
        # False: this run's Job was created before a restart
        if not create_job(self._api, job, [e.metadata.name for e in environments],
                          self._settings):
            return
        log.info("run.job_created", workflow=f"{meta['namespace']}/{meta['name']}",
                 run=start.run_id, job=start.job_name, trigger=start.trigger)
        self._events.post(body, EventType.NORMAL, EventReason.RUN_STARTED,
                          f"run {start.run_id} ({start.trigger}): Job {start.job_name}")

    def _references(self, namespace: str, body: dict[str, Any], spec: WorkflowSpec
                    ) -> tuple[list[str], list[Environment], list[Template]]:
        """Problems with the Environments and Templates the spec names, and those objects."""
        names = referenced_objects(spec)
        problems: list[str] = []
        environments = [e for e in (self._load(Environment, kind, namespace, n, problems)
                                    for kind, n in names if kind == "Environment") if e]
        templates = [t for t in (self._load(Template, kind, namespace, n, problems)
                                 for kind, n in names if kind == "Template") if t]
        if not problems:
            problems = _fit_problems(body, environments, templates)
        return problems, environments, templates

    def _load(self, model: type[Referenced], kind: str, namespace: str, name: str,
              problems: list[str]) -> Referenced | None:
        found = self._cache.get(kind, namespace, name)
        if found is None:
            problems.append(f"{kind} {name!r} not found in namespace {namespace}")
            return None
        try:
            return model.without_status(found)
        except ValidationError as exc:
            problems.append(f"{kind} {name!r} is invalid: {exc.errors()[0]['msg']}")
            return None

    def _lock(self, namespace: str, name: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((namespace, name), threading.Lock())


def _parse_spec(body: dict[str, Any]) -> tuple[WorkflowSpec | None, list[str]]:
    try:
        return WorkflowSpec.model_validate(body.get("spec") or {}), []
    except ValidationError as exc:
        return None, [f"spec: {exc.errors()[0]['msg']}"]


def _fit_problems(body: dict[str, Any], environments: list[Environment],
                  templates: list[Template]) -> list[str]:
    """What does not fit between the Workflow and the objects it names (the checks `ferry
    plan` makes, e.g. a targetOU outside the target's scope), one message each."""
    try:
        workflow = Workflow.without_status(body)
    except ValidationError:
        return []  # _parse_spec reports the spec itself
    manifests = Manifests()
    for obj in (workflow, *environments, *templates):
        manifests.add(obj)
        manifests.sources[f"{obj.kind}/{obj.metadata.name}"] = obj.metadata.namespace or ""
    return [f"{p.path}: {p.message}" if p.path else p.message
            for p in check_references(manifests)]
