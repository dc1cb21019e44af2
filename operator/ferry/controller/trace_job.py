"""`ferry trace-job`: the command a trace's Job executes. Reads the Workflow and the objects
it names from the API (as the sync Job does), traces the requested object with `ferry
trace`'s own code (applying it only when asked), and writes the report into
status.lastTrace; it never writes spec."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes import client

from ferry.api.status import RunResult, TraceSummary, WorkflowStatus
from ferry.controller.request_status import RequestEnd, serve_request
from ferry.controller.sync_job import workflow_manifests  # as the run reads it
from ferry.controller.trace_report import bounded_report
from ferry.controller.trace_requests import TRACE
from ferry.errors import ExitCode
from ferry.kube import FerryObjects
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.trace import TraceReport, trace_object
from ferry.sync.trace_text import report_json


def run_trace_job(api: client.ApiClient, namespace: str, workflow: str, trace_id: str,
                  state: str, secrets: SecretSource, settings: RunSettings,
                  tracer: Callable[..., TraceReport] = trace_object) -> ExitCode:
    """Trace one object inside its Job (serve_request says what it exits with)."""

    def work(body: dict[str, Any], trace: TraceSummary) -> RequestEnd[TraceSummary]:
        active = WorkflowStatus.of(body).active_run
        if trace.apply and active is not None:
            # The operator refuses this too; a run may have started since it decided.
            return RequestEnd(RunResult.FAILED, ExitCode.FAILED,
                              f"run {active.id} is active; try again when it ends")
        manifests = workflow_manifests(FerryObjects(api), namespace, body)
        with StateStore(state, read_only=not trace.apply) as store:
            report = tracer(manifests, workflow, trace.object, store, secrets, settings,
                            apply=trace.apply)
        data = report_json(report)
        outcome = report.outcome
        return RequestEnd(outcome.result if outcome is not None else RunResult.SUCCEEDED,
                          outcome.exit_code if outcome is not None else ExitCode.OK,
                          summary_line(data),
                          partial(_with_report, bounded_report(data), report.run_id or None))

    return serve_request(TRACE, api, namespace, workflow, trace_id, work)


def summary_line(data: dict[str, Any]) -> str:
    """What the trace found, in one line: each pair's decision, and the run it applied."""
    found = data.get("object") or {}
    parts = [f"{found.get('type')} {found.get('dn')}"]
    parts += [f"{p['pair']}: {p['decision']}" for p in data.get("pairs") or []]
    line = "; ".join(parts)
    if data.get("run"):
        line += f"; applied as run {data['run']}: {data.get('result')}"
    return line[:4096]


def _with_report(report: str, run: str | None, trace: TraceSummary) -> None:
    trace.report = report
    if run is not None:
        trace.run = run
