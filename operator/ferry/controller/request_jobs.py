"""The Workflow reconciler's part for requests served by a Job of their own (a trace, a
match report): take the annotation, write its status entry, start its Job and follow it
(each kind's decision is pure: trace_decision.py, match_report_decision.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.api.environment import Environment
from ferry.api.events import EventType
from ferry.api.status import WorkflowStatus
from ferry.api.template import Template
from ferry.api.workflow import WorkflowSpec
from ferry.controller.cache import ObjectCache
from ferry.controller.events import EventRecorder
from ferry.controller.job_credentials import create_job
from ferry.controller.job_requests import (
    RequestJobs,
    StartJob,
    SummaryT,
    summary_patch,
    wanted,
)
from ferry.controller.jobs import build_request_job, secret_refs, token_files
from ferry.controller.runs import RUN_LABEL
from ferry.kube import FerryObjects, retry_conflicts
from ferry.scripts.texts import config_map_keys
from ferry.settings import OperatorSettings

log = structlog.get_logger("ferry.operator")

# (namespace, Workflow body, spec) -> (problems, Environments, Templates), as for runs.
References = Callable[[str, dict[str, Any], WorkflowSpec],
                      tuple[list[str], list[Environment], list[Template]]]


class RequestReconciler(Generic[SummaryT]):
    def __init__(self, requests: RequestJobs[SummaryT], api: client.ApiClient,
                 settings: OperatorSettings, cache: ObjectCache, events: EventRecorder,
                 clock: Callable[[], datetime]):
        self._requests = requests
        self._api = api
        self._objects = FerryObjects(api)
        self._batch = client.BatchV1Api(api)
        self._settings = settings
        self._cache = cache
        self._events = events
        self._clock = clock

    def reconcile(self, namespace: str, name: str, references: References) -> None:
        """Act on the Workflow's request and its Job (called under the Workflow's lock,
        after its runs are reconciled)."""
        kind = self._requests.kind
        if not wanted(kind, self._cache.get("Workflow", namespace, name),
                      self._requests.request_id):
            return
        if not retry_conflicts(lambda: self._reconcile_once(namespace, name, references)):
            log.warning("request.conflicts", workflow=f"{namespace}/{name}", kind=kind.what)

    def _reconcile_once(self, namespace: str, name: str, references: References) -> None:
        kind = self._requests.kind
        body = self._objects.get("workflows", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        jobs = self._batch.list_namespaced_job(
            namespace, label_selector=f"{kind.label}={name}").items
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
        decision = self._requests.decide(body["metadata"].get("annotations") or {}, name,
                                         status, jobs, problems=problems, now=self._clock())
        patch = summary_patch(kind.key, kind.current(status), decision.summary)
        if patch:
            # Written before the Job is created: a crash in between creates it on restart.
            self._objects.patch_status("workflows", body, patch)
        if decision.start is not None and spec is not None:
            problems()  # reads the Environments and Templates the Job mounts Secrets of
            self._start(body, spec, decision.start, decision.summary, *found[0][1:])
        for event in decision.events:
            self._events.post(body, event.type, event.reason, event.message)

    def _start(self, body: dict[str, Any], spec: WorkflowSpec, start: StartJob,
               summary: SummaryT | None, environments: list[Environment],
               templates: list[Template]) -> None:
        requests, meta = self._requests, body["metadata"]
        job = build_request_job(
            namespace=meta["namespace"], workflow=meta["name"], workflow_uid=meta["uid"],
            request_id=start.request_id, name=start.job_name,
            labels={requests.kind.label: meta["name"], RUN_LABEL: start.request_id},
            component=requests.component, command=requests.command,
            trigger=requests.trigger, secrets=secret_refs(environments, templates, spec),
            settings=self._settings, tokens=token_files(environments),
            config_maps=config_map_keys(spec))
        if not create_job(self._api, job, [e.metadata.name for e in environments],
                          self._settings):
            return  # created before a restart
        log.info("request.job_created", workflow=f"{meta['namespace']}/{meta['name']}",
                 kind=requests.kind.what, request=start.request_id, job=start.job_name)
        what = requests.kind.describe(summary) if summary is not None else ""
        self._events.post(body, EventType.NORMAL, requests.started,
                          f"{requests.kind.what} {start.request_id}{what}: Job"
                          f" {start.job_name}")
