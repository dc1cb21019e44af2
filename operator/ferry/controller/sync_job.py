"""`ferry sync-job`: the command a run's Job executes. Reads the Workflow and the objects it
names from the API, runs it with the same runner as `ferry run`, reports into the Workflow's
status.activeRun (which the operator turns into lastRun when the Job ends) and exits with the
run's code."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.api.environment import Environment
from ferry.api.events import EventReason, EventType
from ferry.api.loader import Manifests
from ferry.api.references import check_references
from ferry.api.status import RunCounts, RunResult, RunSummary, ScriptRun, WorkflowStatus
from ferry.api.template import Template
from ferry.api.workflow import Workflow
from ferry.controller.events import EventRecorder
from ferry.controller.job_report import ActiveEntry, report
from ferry.controller.run_tracking import end
from ferry.controller.workflows import referenced_objects
from ferry.engine.plan import Count
from ferry.errors import InvalidInput
from ferry.kube import FerryObjects
from ferry.scripts.job import ScriptJobs
from ferry.scripts.texts import config_map_keys, mounted_config_maps
from ferry.secrets import SecretsMissing, SecretSource
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.expression_check import expression_problems
from ferry.sync.outcome import ExitCode, RunOutcome
from ferry.sync.runner import RunRequest, run_workflow

log = structlog.get_logger("ferry.sync_job")
_PLURALS = {"Environment": "environments", "Template": "templates"}
_MODELS: dict[str, type[Environment] | type[Template]] = {
    "Environment": Environment, "Template": Template}
_ACTIVE_RUN = ActiveEntry("workflows", WorkflowStatus, lambda s: s.active_run, "sync_job")


class SyncJobError(InvalidInput):
    """The run cannot start; the message names the object and what to fix."""


def run_sync_job(api: client.ApiClient, namespace: str, workflow: str, run_id: str,
                 store: StateStore, secrets: SecretSource, settings: RunSettings,
                 runner: Callable[..., Any] = run_workflow) -> ExitCode:
    """Run one Workflow run inside its Job; every outcome ends up in the Workflow's status."""
    objects = FerryObjects(api)
    events = EventRecorder(api, "ferry-sync-job")
    body = objects.get("workflows", namespace, workflow)
    if body is None:
        log.error("sync_job.no_workflow", workflow=f"{namespace}/{workflow}")
        return ExitCode.INVALID_INPUT
    active = WorkflowStatus.of(body).active_run
    if active is None or active.id != run_id:
        # Another run is current (or this one was already recorded): never run twice.
        log.error("sync_job.not_active", run=run_id, active=active and active.id)
        return ExitCode.INVALID_INPUT
    update = partial(report, objects, _ACTIVE_RUN, namespace, workflow, run_id)
    update(_running)
    try:
        manifests = workflow_manifests(objects, namespace, body)
    except SyncJobError as exc:
        update(_final(RunResult.FAILED, str(exc)))
        events.post(body, EventType.WARNING, EventReason.INVALID_INPUT, str(exc))
        return ExitCode.INVALID_INPUT
    progress = StatusProgress(lambda text: update(_progress(text)))
    try:
        jobs = ScriptJobs(api, namespace, workflow, body["metadata"]["uid"], run_id)
        request = RunRequest(workflow, run_id=run_id, script_host="Pod", script_jobs=jobs)
        result = runner(manifests, request, store, secrets, settings, progress)
    except InvalidInput as exc:  # nothing was connected or recorded: say what to fix
        message = "; ".join(exc.problems) if isinstance(exc, SecretsMissing) else str(exc)
        log.error("sync_job.refused", run=run_id, problem=message)
        update(_final(RunResult.FAILED, message))
        events.post(body, EventType.WARNING, EventReason.INVALID_INPUT, message)
        return ExitCode.INVALID_INPUT
    outcome: RunOutcome = result.outcome
    totals = outcome.totals()
    counts = RunCounts.model_validate({key: totals[key] for key in Count})
    types = {name: RunCounts.model_validate({key: n for key, n in per_type.items() if n})
             for name, per_type in outcome.counts.items() if any(per_type.values())}
    update(_final(outcome.result, outcome.message, counts, outcome.scripts, types,
                  (outcome.graph_throttled, outcome.graph_retries)))
    if outcome.conflicts:
        first = "; ".join(c.message for c in outcome.conflicts[:3])
        events.post(body, EventType.WARNING, EventReason.MATCH_CONFLICTS,
                    f"run {run_id}: {len(outcome.conflicts)} conflict(s), nothing written for"
                    f" them: {first}")
    return outcome.exit_code


class StatusProgress:
    """Progress reported into status.activeRun.progress, at most every `every` seconds."""

    def __init__(self, report: Callable[[str], None], every: float = 5.0):
        self._report = report
        self._every = every
        self._last = 0.0

    def task(self, description: str, total: int | None = None) -> _StatusTask:
        self.publish(f"{description}: started", force=True)
        return _StatusTask(self, description, total)

    def publish(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self._every:
            self._last = now
            self._report(text)


class _StatusTask:
    def __init__(self, owner: StatusProgress, description: str, total: int | None):
        self._owner, self._description, self._total, self._done = owner, description, total, 0

    def advance(self, amount: int = 1) -> None:
        self._done += amount
        self._owner.publish(self._text())

    def finish(self) -> None:
        self._owner.publish(self._text(), force=True)

    def _text(self) -> str:
        of = f"/{self._total}" if self._total is not None else ""
        return f"{self._description}: {self._done}{of}"


def workflow_manifests(objects: FerryObjects, namespace: str, body: dict[str, Any]) -> Manifests:
    """The Workflow and what it references, read from the API, as a run (or trace) loads them."""
    manifests = Manifests()
    label = f"Workflow/{body['metadata']['name']}"
    try:
        workflow = Workflow.without_status(body)
    except ValidationError as exc:
        raise SyncJobError(f"{label}: {exc.errors()[0]['msg']}") from None
    manifests.add(workflow)
    # The ConfigMap keys its script steps read, as the Job mounts them.
    manifests.config_maps = mounted_config_maps(config_map_keys(workflow.spec))
    manifests.sources[label] = f"namespace {namespace}"
    for kind, name in referenced_objects(workflow.spec):
        found = objects.get(_PLURALS[kind], namespace, name)
        if found is None:
            continue  # check_references names it
        try:
            manifests.add(_MODELS[kind].without_status(found))
        except ValidationError as exc:
            raise SyncJobError(f"{kind}/{name}: {exc.errors()[0]['msg']}") from None
        manifests.sources[f"{kind}/{name}"] = f"namespace {namespace}"
    problems = check_references(manifests) or expression_problems(manifests)
    if problems:
        raise SyncJobError("; ".join(str(p) for p in problems))
    return manifests


Change = Callable[[WorkflowStatus, RunSummary], None]


def _running(_: WorkflowStatus, run: RunSummary) -> None:
    run.result = RunResult.RUNNING


def _progress(text: str) -> Change:
    def change(_: WorkflowStatus, run: RunSummary) -> None:
        run.progress = text
    return change


def _final(result: RunResult, message: str, counts: RunCounts | None = None,
           scripts: list[ScriptRun] | None = None,
           types: dict[str, RunCounts] | None = None,
           graph: tuple[int, int] | None = None) -> Change:
    def change(_: WorkflowStatus, run: RunSummary) -> None:
        end(run, result, message, datetime.now(UTC))
        if counts is not None:
            run.counts = counts
        if types:
            run.types = types
        if graph and any(graph):
            run.graph_throttled, run.graph_retries = graph
        if scripts:
            run.scripts = scripts
    return change

