"""`ferry trace-job`: the command a trace's Job executes. Reads the Workflow and the objects
it names from the API (as the sync Job does), traces the requested object with `ferry
trace`'s own code (applying it only when asked), and writes the report into
status.lastTrace; it never writes spec."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

import structlog
from kubernetes import client

from ferry.api.events import EventReason, EventType
from ferry.api.status import RunResult, TraceSummary, WorkflowStatus
from ferry.controller.events import EventRecorder
from ferry.controller.job_requests import ACTIVE_RESULTS
from ferry.controller.request_status import report_request
from ferry.controller.sync_job import workflow_manifests  # as the run reads it
from ferry.controller.trace_report import bounded_report
from ferry.controller.trace_requests import TRACE
from ferry.errors import ExitCode, FerryError, InvalidInput
from ferry.kube import FerryObjects
from ferry.secrets import SecretsMissing, SecretSource
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.trace import TraceReport, trace_object
from ferry.sync.trace_text import report_json

log = structlog.get_logger("ferry.trace_job")
Change = Callable[[TraceSummary], None]


def run_trace_job(api: client.ApiClient, namespace: str, workflow: str, trace_id: str,
                  state: str, secrets: SecretSource, settings: RunSettings,
                  tracer: Callable[..., TraceReport] = trace_object) -> ExitCode:
    """Trace one object inside its Job. Exit 0 once the trace's end is in status (the
    trace's own exit code is status.lastTrace.exitCode), 2 when there is none to report."""
    objects = FerryObjects(api)
    events = EventRecorder(api, "ferry-trace-job")
    body = objects.get("workflows", namespace, workflow)
    status = WorkflowStatus.of(body)
    trace = status.last_trace
    if body is None or trace is None or trace.id != trace_id \
            or trace.result not in ACTIVE_RESULTS:
        # Another trace is current, or this one has ended: never trace twice.
        log.error("trace_job.not_active", trace=trace_id, current=trace and trace.id)
        return ExitCode.INVALID_INPUT
    update = partial(report_request, TRACE, objects, namespace, workflow, trace_id)
    if trace.apply and status.active_run is not None:
        # The operator refuses this too; a run may have started since it decided.
        update(_final(RunResult.FAILED, ExitCode.FAILED, f"run {status.active_run.id} is"
                      " active; try again when it ends"))
        return ExitCode.OK
    if not update(_running):
        return ExitCode.INVALID_INPUT
    label = f"trace {trace_id} of {trace.object!r}"
    try:
        manifests = workflow_manifests(objects, namespace, body)
        with StateStore(state, read_only=not trace.apply) as store:
            report = tracer(manifests, workflow, trace.object, store, secrets, settings,
                            apply=trace.apply)
    except FerryError as exc:  # refused input, or the object not found (named)
        message = "; ".join(exc.problems) if isinstance(exc, SecretsMissing) else str(exc)
        log.error("trace_job.failed", trace=trace_id, problem=message)
        update(_final(RunResult.FAILED, exc.exit_code, message))
        if isinstance(exc, InvalidInput):
            events.post(body, EventType.WARNING, EventReason.INVALID_INPUT, message)
        events.post(body, EventType.WARNING, EventReason.TRACE_FINISHED,
                    f"{label} failed: {message}")
        return ExitCode.OK
    except Exception as exc:  # the trace must end recorded, whatever broke
        log.exception("trace_job.broke", trace=trace_id)
        message = f"{type(exc).__name__}: {exc}"
        update(_final(RunResult.FAILED, ExitCode.FAILED, message))
        events.post(body, EventType.WARNING, EventReason.TRACE_FINISHED,
                    f"{label} failed: {message}")
        return ExitCode.OK
    data = report_json(report)
    outcome = report.outcome
    result = outcome.result if outcome is not None else RunResult.SUCCEEDED
    summary = summary_line(data)
    update(_final(result, outcome.exit_code if outcome is not None else ExitCode.OK, summary,
                  bounded_report(data), report.run_id or None))
    ok = result == RunResult.SUCCEEDED
    events.post(body, EventType.NORMAL if ok else EventType.WARNING,
                EventReason.TRACE_FINISHED, f"{label}: {summary}")
    return ExitCode.OK


def summary_line(data: dict[str, Any]) -> str:
    """What the trace found, in one line: each pair's decision, and the run it applied."""
    found = data.get("object") or {}
    parts = [f"{found.get('type')} {found.get('dn')}"]
    parts += [f"{p['pair']}: {p['decision']}" for p in data.get("pairs") or []]
    line = "; ".join(parts)
    if data.get("run"):
        line += f"; applied as run {data['run']}: {data.get('result')}"
    return line[:4096]


def _running(trace: TraceSummary) -> None:
    trace.result = RunResult.RUNNING


def _final(result: RunResult, code: int, message: str, report: str | None = None,
           run: str | None = None) -> Change:
    def change(trace: TraceSummary) -> None:
        trace.result, trace.exit_code, trace.message = result, int(code), message[:4096]
        trace.completed_at = datetime.now(UTC)
        if report is not None:
            trace.report = report
        if run is not None:
            trace.run = run
    return change
