"""What the operator does about a Workflow's match report request, decided from what it
observes. Pure.

Taken once by its id and followed through its Job as every request is (job_requests.py); a
new request waits while another match report is active; a Workflow that is not Ready refuses
it. A match report only reads: it neither waits for runs nor holds them back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from ferry.api.events import EventReason, EventType
from ferry.api.status import MatchReportSummary, RunResult, WorkflowStatus
from ferry.controller.job_requests import (
    RequestDecision,
    RequestJobs,
    StartJob,
    decide_request,
    invalid_request_id,
)
from ferry.controller.match_report_requests import (
    MATCH_REPORT,
    MatchReportRequestInvalid,
    parse_request,
)
from ferry.controller.run_tracking import Event
from ferry.errors import ExitCode

if TYPE_CHECKING:
    from kubernetes.client import V1Job

MatchReportDecision = RequestDecision[MatchReportSummary]


def request_id(value: str) -> str:
    """The id an annotation value is taken under (an unparseable one's too)."""
    try:
        return parse_request(value)
    except MatchReportRequestInvalid:
        return invalid_request_id(value)


def decide_match_report(annotations: Mapping[str, str], workflow: str,
                        status: WorkflowStatus, jobs: list[V1Job], *,
                        problems: Callable[[], list[str]], now: datetime
                        ) -> MatchReportDecision:
    """status.lastMatchReport as it should now be, the Job to create and the Events to post.

    jobs: the Jobs labelled as this Workflow's match reports; problems: why it cannot run
    (missing or invalid Environments and Templates), asked only for a new request."""
    return decide_request(MATCH_REPORT, annotations, status, jobs, now,
                          lambda decision, value: _take(decision, value, workflow, problems,
                                                        now))


def _take(decision: MatchReportDecision, value: str, workflow: str,
          problems: Callable[[], list[str]], now: datetime) -> None:
    try:
        report_id = parse_request(value)
    except MatchReportRequestInvalid as exc:
        report_id, refusal = invalid_request_id(value), str(exc)
    else:
        found = problems() if decision.summary is None or decision.summary.id != report_id \
            else []
        refusal = "Workflow is not Ready: " + "; ".join(found) if found else ""
    if decision.summary is not None and decision.summary.id == report_id:
        return  # taken already (before a restart, perhaps), or refused once
    if refusal:
        decision.summary = MatchReportSummary(
            id=report_id, requested_at=now, completed_at=now, result=RunResult.FAILED,
            exit_code=int(ExitCode.INVALID_INPUT), message=refusal[:4096])
        decision.events.append(Event(EventType.WARNING, EventReason.MATCH_REPORT_REFUSED,
                                     f"match report {report_id} refused: {refusal}"))
        return
    job_name = MATCH_REPORT.job_name(workflow, report_id)
    decision.summary = MatchReportSummary(id=report_id, job_name=job_name, requested_at=now,
                                          result=RunResult.PENDING)
    decision.start = StartJob(report_id, job_name)


MATCH_REPORTS = RequestJobs[MatchReportSummary](
    kind=MATCH_REPORT, decide=decide_match_report, command="match-report-job",
    component="match-report", trigger="MatchReport",
    started=EventReason.MATCH_REPORT_STARTED, request_id=request_id)
