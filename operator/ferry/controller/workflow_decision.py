"""What the operator should do for one Workflow, decided from what it observes. Pure.

Level-triggered: the decision depends only on the Workflow (spec, annotations, status), the
Jobs labelled with it and the clock, so reconciling twice, or after a restart, decides the same.
Run ids derive from the trigger (the request annotation's value, or the scheduled time), so a
Job is never created twice for one trigger, and the run is written to status (Pending) before
its Job exists, so a crash between the two is finished on restart.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from ferry.alerts.attempts import queue
from ferry.api.base import ObjectMeta
from ferry.api.conditions import ConditionType, Reason, Signal, set_condition, set_kstatus
from ferry.api.events import EventReason, EventType
from ferry.api.status import (
    RunResult,
    RunSummary,
    RunTotals,
    Trigger,
    WorkflowStatus,
    k8s_time,
)
from ferry.api.workflow import Alert, WorkflowSpec
from ferry.controller.run_tracking import Decision, Event, StartJob, track
from ferry.controller.runs import RUN_REQUEST_ANNOTATION, job_name, run_id_for
from ferry.controller.schedule import ScheduleError, describe, due_slot, is_manual, next_run
from ferry.controller.trace_decision import applying_trace

if TYPE_CHECKING:
    from kubernetes.client import V1Job


def decide(meta: ObjectMeta, spec: WorkflowSpec | None, status: WorkflowStatus,
           jobs: list[V1Job], *, problems: list[str], now: datetime,
           history_limit: int = 10) -> Decision[WorkflowStatus]:
    """The Workflow's next status, the run to start (if any) and the Events to post.

    problems: reasons the Workflow cannot run (an invalid spec, when spec is None; missing
    Environments or Templates), found by the caller; each becomes part of Ready's message.
    """
    decision = Decision(status.model_copy(deep=True))
    status = decision.status
    _follow_active_run(decision, jobs, now, history_limit, spec.alerts if spec else [])

    schedule_problem = ""
    if spec is not None:
        try:
            _trigger(decision, meta, spec, now, runnable=not problems)
        except ScheduleError as exc:
            schedule_problem = str(exc)
    if schedule_problem:
        problems = [*problems, f"spec.schedule: {schedule_problem}"]

    generation = meta.generation
    ready_reason = (Reason.VALID if not problems else Reason.INVALID_SPEC if spec is None
                    else Reason.INVALID_SCHEDULE if schedule_problem
                    else Reason.INVALID_REFERENCE)
    set_condition(status, ConditionType.READY, not problems, ready_reason,
                  "; ".join(problems) or "Environments and Templates found; runs can start",
                  generation, now)
    active = status.active_run
    set_condition(status, ConditionType.RUNNING, active is not None,
                  Reason.RUN_ACTIVE if active else Reason.IDLE,
                  f"run {active.id} ({active.job_name})" if active else "no run in progress",
                  generation, now)
    last = status.last_run
    if last:
        set_condition(status, ConditionType.SUCCEEDED, last.result == RunResult.SUCCEEDED,
                      last.result, last.message or f"run {last.id}", generation, now)
    set_kstatus(status, _reconciling(status), _stalled(status, ready_reason, problems),
                generation, now)
    status.observed_generation = generation
    return decision


def _reconciling(status: WorkflowStatus) -> Signal | None:
    """A run in progress: its Job is still working towards what the spec asks."""
    active = status.active_run
    if active is None:
        return None
    return Signal(Reason.RUN_ACTIVE, f"run {active.id} {active.result}"
                  + (f": {active.progress}" if active.progress else f" ({active.job_name})"))


def _stalled(status: WorkflowStatus, ready_reason: Reason, problems: list[str]
             ) -> Signal | None:
    """What waits for a person: a spec or reference to fix, or a last run that did not
    succeed (failed, held deletions back or left objects failed). The schedule tries again,
    but the same run would end the same way until someone looks; the next run that
    succeeds clears it."""
    if problems:
        return Signal(ready_reason, "; ".join(problems))
    last = status.last_run
    if last is None or last.result == RunResult.SUCCEEDED:
        return None
    return Signal(last.result, f"run {last.id} {last.result}: "
                  + (last.message or "see the run's Job and Events"))


def _follow_active_run(decision: Decision[WorkflowStatus], jobs: list[V1Job], now: datetime,
                       history_limit: int, alerts: list[Alert]) -> None:
    status = decision.status
    tracking = track(status.active_run, jobs, now, RunSummary)
    status.active_run = tracking.active
    if tracking.create_job and tracking.active is not None:
        decision.start = StartJob.of(tracking.active, Trigger.MANUAL)
    if tracking.finished is not None:
        _finish(decision, tracking.finished, history_limit, alerts)


def _finish(decision: Decision[WorkflowStatus], summary: RunSummary, history_limit: int,
            alerts: list[Alert]) -> None:
    status = decision.status
    # Queued (Pending) with the run's record; sent only once this status is written.
    status.alerts = queue(status.alerts, alerts, summary,
                          status.last_run.result if status.last_run else None)
    status.last_run = summary
    status.history = [summary, *status.history][:history_limit]
    status.totals = (status.totals or RunTotals()).added(summary)  # in the same status write
    run, message, counts = f"run {summary.id}", summary.message, summary.counts
    done = f"{counts.created} created, {counts.updated} updated, {counts.deleted} deleted"
    if summary.result == RunResult.SUCCEEDED:
        event = Event(EventType.NORMAL, EventReason.RUN_SUCCEEDED, f"{run}: {done}")
    elif summary.result == RunResult.THRESHOLD_HIT:
        event = Event(EventType.WARNING, EventReason.DELETE_THRESHOLD_HIT,
                      f"{run}: {message or 'nothing deleted'}")
    elif summary.result == RunResult.COMPLETED_WITH_ERRORS:
        event = Event(EventType.WARNING, EventReason.RUN_COMPLETED_WITH_ERRORS,
                      f"{run}: {done}; {message}")
    else:
        event = Event(EventType.WARNING, EventReason.RUN_FAILED,
                      f"{run}: {message or 'the Job failed'}")
    decision.events.append(event)


def _trigger(decision: Decision[WorkflowStatus], meta: ObjectMeta, spec: WorkflowSpec,
             now: datetime, runnable: bool) -> None:
    status = decision.status
    active = status.active_run
    trace = applying_trace(status)  # its Job writes: a run now could write the same objects
    busy = (f"run {active.id} is active" if active is not None
            else f"trace {trace.id} is applying" if trace is not None else "")
    trigger: tuple[Trigger, str] | None = None

    request = meta.annotations.get(RUN_REQUEST_ANNOTATION)
    if request and request != status.last_run_request:
        status.last_run_request = request
        if busy:
            decision.events.append(Event(EventType.WARNING, EventReason.RUN_SKIPPED,
                                         f"run request {request!r} ignored: {busy}"))
        elif not runnable:
            decision.events.append(Event(EventType.WARNING, EventReason.RUN_SKIPPED,
                                         f"run request {request!r} ignored: not Ready"))
        else:
            trigger = (Trigger.MANUAL, request)

    schedule = spec.schedule
    anchor = status.last_schedule_time or meta.creation_timestamp or now
    if not spec.suspend and not is_manual(schedule):
        slot = due_slot(schedule, anchor, now)
        if slot is not None:
            status.last_schedule_time = anchor = slot
            if busy or trigger is not None:
                decision.events.append(Event(EventType.NORMAL, EventReason.RUN_SKIPPED,
                                             f"scheduled run at {k8s_time(slot)} skipped:"
                                             f" {busy or 'a run is active'}"))
            elif runnable:
                trigger = (Trigger.SCHEDULE, k8s_time(slot))
        status.next_run_time = next_run(schedule, anchor, now)
    else:
        status.next_run_time = None
    status.schedule = describe(schedule, spec.suspend)

    if trigger is not None:
        kind, key = trigger
        assert meta.uid is not None  # the API server gives every object one
        run_id = run_id_for(meta.uid, kind, key)
        status.active_run = RunSummary(id=run_id, job_name=job_name(meta.name, run_id),
                                       trigger=kind, start_time=now, result=RunResult.PENDING)
        decision.start = StartJob.of(status.active_run, kind)
