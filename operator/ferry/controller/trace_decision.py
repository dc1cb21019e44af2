"""What the operator does about a Workflow's trace request, decided from what it observes. Pure.

Taken once by its id and followed through its Job as every request is (job_requests.py). A
new request waits while another trace is active; one that would apply while a run is active
is refused; runs wait while an applying trace is active.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from ferry.api.events import EventReason, EventType
from ferry.api.status import RunResult, TraceSummary, WorkflowStatus
from ferry.controller.job_requests import (
    RequestDecision,
    RequestJobs,
    StartJob,
    decide_request,
    invalid_request_id,
)
from ferry.controller.run_tracking import Event
from ferry.controller.trace_requests import (
    TRACE,
    TraceRequestInvalid,
    parse_request,
)
from ferry.errors import ExitCode

if TYPE_CHECKING:
    from kubernetes.client import V1Job

TraceDecision = RequestDecision[TraceSummary]


def trace_job_name(workflow: str, trace_id: str) -> str:
    """`<workflow>-trace-<id>`, within the 63 characters pod labels allow."""
    return TRACE.job_name(workflow, trace_id)


def applying_trace(status: WorkflowStatus) -> TraceSummary | None:
    """The trace that is about to write (runs wait for it), if any."""
    trace = TRACE.active(status)
    return trace if trace is not None and trace.apply else None


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
    return decide_request(TRACE, annotations, status, jobs, now,
                          lambda decision, value: _take(decision, value, workflow, status,
                                                        problems, now))


def _take(decision: TraceDecision, value: str, workflow: str, status: WorkflowStatus,
          problems: Callable[[], list[str]], now: datetime) -> None:
    try:
        request = parse_request(value)
    except TraceRequestInvalid as exc:
        trace_id = invalid_request_id(value)
        if decision.summary is None or decision.summary.id != trace_id:
            decision.summary = _refused(trace_id, "", False, str(exc), ExitCode.INVALID_INPUT,
                                        now)
            decision.events.append(Event(EventType.WARNING, EventReason.TRACE_REFUSED,
                                         str(exc)))
        return
    if decision.summary is not None and decision.summary.id == request.id:
        return  # taken already (before a restart, perhaps)
    label = f"trace {request.id} of {request.object!r}"
    refusal, found = "", problems()
    if found:
        refusal, code = ("Workflow is not Ready: " + "; ".join(found), ExitCode.INVALID_INPUT)
    elif request.apply and status.active_run is not None:
        refusal, code = (f"run {status.active_run.id} is active; try again when it ends",
                         ExitCode.FAILED)
    if refusal:
        decision.summary = _refused(request.id, request.object, request.apply, refusal, code,
                                    now)
        decision.events.append(Event(EventType.WARNING, EventReason.TRACE_REFUSED,
                                     f"{label} refused: {refusal}"))
        return
    job_name = trace_job_name(workflow, request.id)
    decision.summary = TraceSummary(id=request.id, object=request.object, apply=request.apply,
                                    job_name=job_name, requested_at=now,
                                    result=RunResult.PENDING)
    decision.start = StartJob(request.id, job_name)


def _refused(trace_id: str, key: str, apply: bool, message: str, code: ExitCode,
             now: datetime) -> TraceSummary:
    return TraceSummary(id=trace_id, object=key, apply=apply, requested_at=now,
                        completed_at=now, result=RunResult.FAILED, exit_code=int(code),
                        message=message[:4096])


TRACES = RequestJobs[TraceSummary](
    kind=TRACE, decide=decide_trace, command="trace-job", component="trace", trigger="Trace",
    started=EventReason.TRACE_STARTED, request_id=request_id)
