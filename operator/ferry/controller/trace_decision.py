"""What the operator does about a Workflow's trace request, decided from what it observes. Pure.

Level-triggered like runs: a request is taken once (status.lastTrace.id is its id, written
before the Job is created), its Job is named by that id, so a restart neither repeats nor
loses it. A new request waits while another trace is active; one that would apply while a
run is active is refused; a trace whose Job ended without a report, or vanished, failed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ferry.api.events import EventReason, EventType
from ferry.api.status import RunResult, TraceSummary, WorkflowStatus
from ferry.controller.run_tracking import Event
from ferry.controller.runs import RUN_LABEL, job_outcome
from ferry.controller.trace_requests import (
    ACTIVE_RESULTS,
    TRACE_REQUEST_ANNOTATION,
    TraceRequestInvalid,
    invalid_request_id,
    parse_request,
)
from ferry.errors import ExitCode

if TYPE_CHECKING:
    from kubernetes.client import V1Job

_TRACE_ID_LENGTH = 16  # the longest id parse_request accepts


@dataclass(frozen=True)
class StartTrace:
    """Create the trace's Job (its entry is already status.lastTrace, Pending)."""

    trace_id: str
    job_name: str


@dataclass
class TraceDecision:
    trace: TraceSummary | None
    start: StartTrace | None = None
    events: list[Event] = field(default_factory=list)


def trace_job_name(workflow: str, trace_id: str) -> str:
    """`<workflow>-trace-<id>`, within the 63 characters pod labels allow."""
    room = 63 - len("-trace-") - _TRACE_ID_LENGTH
    return f"{workflow[:room].rstrip('-')}-trace-{trace_id}"


def applying_trace(status: WorkflowStatus) -> TraceSummary | None:
    """The trace that is about to write (runs wait for it), if any."""
    trace = status.last_trace
    return trace if trace is not None and trace.apply and trace.result in ACTIVE_RESULTS \
        else None


def request_id(value: str) -> str:
    """The id an annotation value is taken under (an unparseable one's too)."""
    try:
        return parse_request(value).id
    except TraceRequestInvalid:
        return invalid_request_id(value)


def decide_trace(annotations: Mapping[str, str], workflow: str, status: WorkflowStatus,
                 jobs: list[V1Job], *, problems: Callable[[], list[str]], now: datetime
                 ) -> TraceDecision:
    """status.lastTrace as it should now be, the Job to create and the Events to post.

    jobs: the Jobs labelled as this Workflow's traces; problems: why it cannot run (as for
    runs: missing or invalid Environments and Templates), asked only for a new request."""
    current = status.last_trace
    decision = TraceDecision(current.model_copy() if current is not None else None)
    if decision.trace is not None and decision.trace.result in ACTIVE_RESULTS:
        _follow(decision, decision.trace, jobs, now)
    value = annotations.get(TRACE_REQUEST_ANNOTATION)
    if value and (decision.trace is None or decision.trace.result not in ACTIVE_RESULTS):
        _take(decision, value, workflow, status, problems, now)
    return decision


def _follow(decision: TraceDecision, trace: TraceSummary, jobs: list[V1Job],
            now: datetime) -> None:
    job = next((j for j in jobs if (j.metadata.labels or {}).get(RUN_LABEL) == trace.id), None)
    if job is None:
        if trace.result == RunResult.PENDING:
            assert trace.job_name is not None  # a Pending trace is written with its Job's name
            decision.start = StartTrace(trace.id, trace.job_name)
        else:
            _fail(decision, trace, f"Job {trace.job_name} disappeared before it reported", now)
        return
    outcome = job_outcome(job)
    if outcome.finished:  # the Job reports its own end: this one ended without a report
        why = " ".join(part for part in (outcome.reason, outcome.message) if part)
        _fail(decision, trace, f"Job {trace.job_name} ended without a report"
              + (f": {why}" if why else ""), now)


def _take(decision: TraceDecision, value: str, workflow: str, status: WorkflowStatus,
          problems: Callable[[], list[str]], now: datetime) -> None:
    try:
        request = parse_request(value)
    except TraceRequestInvalid as exc:
        trace_id = invalid_request_id(value)
        if decision.trace is None or decision.trace.id != trace_id:
            decision.trace = _refused(trace_id, "", False, str(exc), ExitCode.INVALID_INPUT,
                                      now)
            decision.events.append(Event(EventType.WARNING, EventReason.TRACE_REFUSED,
                                         str(exc)))
        return
    if decision.trace is not None and decision.trace.id == request.id:
        return  # taken already (before a restart, perhaps)
    label = f"trace {request.id} of {request.object!r}"
    refusal, found = "", problems()
    if found:
        refusal, code = ("Workflow is not Ready: " + "; ".join(found), ExitCode.INVALID_INPUT)
    elif request.apply and status.active_run is not None:
        refusal, code = (f"run {status.active_run.id} is active; try again when it ends",
                         ExitCode.FAILED)
    if refusal:
        decision.trace = _refused(request.id, request.object, request.apply, refusal, code, now)
        decision.events.append(Event(EventType.WARNING, EventReason.TRACE_REFUSED,
                                     f"{label} refused: {refusal}"))
        return
    decision.trace = TraceSummary(id=request.id, object=request.object, apply=request.apply,
                                  job_name=trace_job_name(workflow, request.id),
                                  requested_at=now, result=RunResult.PENDING)
    assert decision.trace.job_name is not None
    decision.start = StartTrace(request.id, decision.trace.job_name)


def _refused(trace_id: str, key: str, apply: bool, message: str, code: ExitCode,
             now: datetime) -> TraceSummary:
    return TraceSummary(id=trace_id, object=key, apply=apply, requested_at=now,
                        completed_at=now, result=RunResult.FAILED, exit_code=int(code),
                        message=message[:4096])


def _fail(decision: TraceDecision, trace: TraceSummary, message: str, now: datetime) -> None:
    trace.result, trace.message, trace.completed_at = RunResult.FAILED, message[:4096], now
    trace.exit_code = int(ExitCode.FAILED)
    decision.events.append(Event(EventType.WARNING, EventReason.TRACE_FINISHED,
                                 f"trace {trace.id} of {trace.object!r} failed: {message}"))
