"""The Workflow reconciler's trace part: take a ferry.dev/trace-requested annotation, write
status.lastTrace, start the trace's Job and follow it (trace_decision.py decides)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.api.environment import Environment
from ferry.api.events import EventReason, EventType
from ferry.api.status import TraceSummary, WorkflowStatus
from ferry.api.template import Template
from ferry.api.workflow import WorkflowSpec
from ferry.controller.cache import ObjectCache
from ferry.controller.events import EventRecorder
from ferry.controller.job_credentials import create_job
from ferry.controller.jobs import build_trace_job, secret_refs, token_files
from ferry.controller.runs import RUN_LABEL
from ferry.controller.trace_decision import StartTrace, decide_trace, request_id
from ferry.controller.trace_requests import (
    ACTIVE_RESULTS,
    TRACE_LABEL,
    TRACE_REQUEST_ANNOTATION,
)
from ferry.controller.trace_status import last_trace_patch
from ferry.kube import FerryObjects, retry_conflicts
from ferry.scripts.texts import config_map_keys
from ferry.settings import OperatorSettings

log = structlog.get_logger("ferry.operator")

# (namespace, Workflow body, spec) -> (problems, Environments, Templates), as for runs.
References = Callable[[str, dict[str, Any], WorkflowSpec],
                      tuple[list[str], list[Environment], list[Template]]]


class TraceReconciler:
    def __init__(self, api: client.ApiClient, settings: OperatorSettings, cache: ObjectCache,
                 events: EventRecorder, clock: Callable[[], datetime]):
        self._api = api
        self._objects = FerryObjects(api)
        self._batch = client.BatchV1Api(api)
        self._settings = settings
        self._cache = cache
        self._events = events
        self._clock = clock

    def reconcile(self, namespace: str, name: str, references: References) -> None:
        """Act on the Workflow's trace request and its trace's Job (called under the
        Workflow's lock, after its runs are reconciled)."""
        if not _wanted(self._cache.get("Workflow", namespace, name)):
            return
        if not retry_conflicts(lambda: self._reconcile_once(namespace, name, references)):
            log.warning("trace.conflicts", workflow=f"{namespace}/{name}")

    def _reconcile_once(self, namespace: str, name: str, references: References) -> None:
        body = self._objects.get("workflows", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        jobs = self._batch.list_namespaced_job(
            namespace, label_selector=f"{TRACE_LABEL}={name}").items
        try:
            spec: WorkflowSpec | None = WorkflowSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            spec = None
            invalid = f"spec: {exc.errors()[0]['msg']}"
        found: list[tuple[list[str], list[Environment], list[Template]]] = []

        def problems() -> list[str]:
            if spec is None:
                return [invalid]
            if not found:
                found.append(references(namespace, body, spec))
            return found[0][0]

        status = WorkflowStatus.of(body)
        decision = decide_trace(body["metadata"].get("annotations") or {}, name, status, jobs,
                                problems=problems, now=self._clock())
        patch = last_trace_patch(status.last_trace, decision.trace)
        if patch:
            # Written before the Job is created: a crash in between creates it on restart.
            self._objects.patch_status("workflows", body, patch)
        if decision.start is not None and spec is not None:
            problems()  # reads the Environments and Templates the Job mounts Secrets of
            self._start(body, spec, decision.start, decision.trace, *found[0][1:])
        for event in decision.events:
            self._events.post(body, event.type, event.reason, event.message)

    def _start(self, body: dict[str, Any], spec: WorkflowSpec, start: StartTrace,
               trace: TraceSummary | None, environments: list[Environment],
               templates: list[Template]) -> None:
        meta = body["metadata"]
        job = build_trace_job(
            namespace=meta["namespace"], workflow=meta["name"], workflow_uid=meta["uid"],
            trace_id=start.trace_id, name=start.job_name,
            labels={TRACE_LABEL: meta["name"], RUN_LABEL: start.trace_id},
            secrets=secret_refs(environments, templates, spec), settings=self._settings,
            tokens=token_files(environments), config_maps=config_map_keys(spec))
        if not create_job(self._api, job, [e.metadata.name for e in environments],
                          self._settings):
            return  # created before a restart
        log.info("trace.job_created", workflow=f"{meta['namespace']}/{meta['name']}",
                 trace=start.trace_id, job=start.job_name)
        what = f" of {trace.object!r}" + (" (apply)" if trace.apply else "") if trace else ""
        self._events.post(body, EventType.NORMAL, EventReason.TRACE_STARTED,
                          f"trace {start.trace_id}{what}: Job {start.job_name}")


def _wanted(cached: dict[str, Any] | None) -> bool:
    """Whether there may be anything to do: a request not taken yet, or a trace under way
    (the annotation stays after its trace: most reconciles read nothing more)."""
    if cached is None:
        return True  # not seen yet: read it
    trace = WorkflowStatus.of(cached).last_trace
    if trace is not None and trace.result in ACTIVE_RESULTS:
        return True
    value = (cached["metadata"].get("annotations") or {}).get(TRACE_REQUEST_ANNOTATION)
    if not value:
        return False
    return trace is None or request_id(str(value)) != trace.id
