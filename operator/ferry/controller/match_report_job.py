"""`ferry match-report-job`: the command a match report's Job executes. Reads the Workflow
and the objects it names from the API (as the sync Job does), plans each pair with `ferry
report matches -f`'s own code (reading both directories, writing neither), keeps the rows
as the Workflow's latest report in the state store and the counts in
status.lastMatchReport; it never writes spec, joins or runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import structlog
from kubernetes import client

from ferry.api.events import EventReason, EventType
from ferry.api.status import (
    MatchCounts,
    MatchReportSummary,
    PairMatchCounts,
    RunResult,
    WorkflowStatus,
)
from ferry.controller.events import EventRecorder
from ferry.controller.match_report_requests import MATCH_REPORT
from ferry.controller.request_status import report_request
from ferry.controller.sync_job import workflow_manifests  # as the run reads it
from ferry.errors import ExitCode, FerryError, InvalidInput
from ferry.kube import FerryObjects
from ferry.reports.match_read import match_secrets, workflow_matches
from ferry.reports.matches import status_counts, summary_line
from ferry.secrets import SecretsMissing, SecretSource
from ferry.settings import RunSettings
from ferry.state.rows import PairMatches
from ferry.state.store import StateStore

log = structlog.get_logger("ferry.match_report_job")
Change = Callable[[MatchReportSummary], None]


def run_match_report_job(api: client.ApiClient, namespace: str, workflow: str,
                         report_id: str, state: str, secrets: SecretSource,
                         settings: RunSettings,
                         reader: Callable[..., list[PairMatches]] = workflow_matches
                         ) -> ExitCode:
    """Make one match report inside its Job. Exit 0 once its end is in status (the report's
    own exit code is status.lastMatchReport.exitCode), 2 when there is none to make."""
    objects = FerryObjects(api)
    events = EventRecorder(api, "ferry-match-report-job")
    body = objects.get("workflows", namespace, workflow)
    current = MATCH_REPORT.active(WorkflowStatus.of(body))
    if body is None or current is None or current.id != report_id:
        # Another report is current, or this one has ended: never report twice.
        log.error("match_report_job.not_active", report=report_id,
                  current=current and current.id)
        return ExitCode.INVALID_INPUT
    update = partial(report_request, MATCH_REPORT, objects, namespace, workflow, report_id)
    if not update(_running):
        return ExitCode.INVALID_INPUT
    label = f"match report {report_id}"
    try:
        manifests = workflow_manifests(objects, namespace, body)
        resolved = match_secrets(manifests, workflow, secrets)
        # Writable for its own tables only: the report reads joins, writes none.
        with StateStore(state) as store:
            report = reader(manifests, workflow, store, resolved, settings)
            store.match_reports.replace(namespace, workflow, report_id, report)
    except FerryError as exc:  # refused input, a directory that cannot be read (named)
        message = "; ".join(exc.problems) if isinstance(exc, SecretsMissing) else str(exc)
        log.error("match_report_job.failed", report=report_id, problem=message)
        update(_final(RunResult.FAILED, exc.exit_code, message))
        if isinstance(exc, InvalidInput):
            events.post(body, EventType.WARNING, EventReason.INVALID_INPUT, message)
        events.post(body, EventType.WARNING, EventReason.MATCH_REPORT_FINISHED,
                    f"{label} failed: {message}")
        return ExitCode.OK
    except Exception as exc:  # the report must end recorded, whatever broke
        log.exception("match_report_job.broke", report=report_id)
        message = f"{type(exc).__name__}: {exc}"
        update(_final(RunResult.FAILED, ExitCode.FAILED, message))
        events.post(body, EventType.WARNING, EventReason.MATCH_REPORT_FINISHED,
                    f"{label} failed: {message}")
        return ExitCode.OK
    message = "; ".join(summary_line(pair) for pair in report) or "no pairs"
    pairs = [PairMatchCounts(source=pair.source, target=pair.target,
                             counts=MatchCounts.model_validate(status_counts(pair.rows)))
             for pair in report]
    update(_final(RunResult.SUCCEEDED, ExitCode.OK, message, pairs))
    events.post(body, EventType.NORMAL, EventReason.MATCH_REPORT_FINISHED,
                f"{label}: {message}"[:1024])
    return ExitCode.OK


def _running(summary: MatchReportSummary) -> None:
    summary.result = RunResult.RUNNING


def _final(result: RunResult, code: int, message: str,
           pairs: list[PairMatchCounts] | None = None) -> Change:
    def change(summary: MatchReportSummary) -> None:
        summary.result, summary.exit_code = result, int(code)
        summary.message, summary.completed_at = message[:4096], datetime.now(UTC)
        if pairs is not None:
            summary.pairs = pairs[:100]
    return change
