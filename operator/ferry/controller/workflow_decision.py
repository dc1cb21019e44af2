"""What the operator should do for one Workflow, decided from what it observes. Pure.

Level-triggered: the decision depends only on the Workflow (spec, annotations, status), the
Jobs labelled with it and the clock, so reconciling twice, or after a restart, decides the same.
Run ids derive from the trigger (the request annotation's value, or the scheduled time), so a
Job is never created twice for one trigger, and the run is written to status (Pending) before
its Job exists, so a crash between the two is finished on restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from ferry.api.status import RunResult
from ferry.api.workflow import WorkflowSpec
from ferry.controller.conditions import set_condition
from ferry.controller.run_tracking import Event, iso, parse_time, track
from ferry.controller.runs import RUN_REQUEST_ANNOTATION, job_name, run_id_for
from ferry.controller.schedule import ScheduleError, describe, due_slot, is_manual, next_run


@dataclass(frozen=True)
class StartRun:
    """Create the Job of this run (its status entry is already in the decided status)."""

    run_id: str
    job_name: str
    trigger: str


@dataclass
class Decision:
    status: dict[str, Any]
    start: StartRun | None = None
    events: list[Event] = field(default_factory=list)


def decide(workflow: dict[str, Any], jobs: list[dict[str, Any]], *, problems: list[str],
           now: datetime, history_limit: int = 10) -> Decision:
    """The Workflow's next status, the run to start (if any) and the Events to post.

    problems: reasons the Workflow cannot run (missing Environments or Templates), found by
    the caller; each becomes part of the Ready condition's message.
    """
    meta = workflow["metadata"]
    generation = meta.get("generation")
    status: dict[str, Any] = dict(workflow.get("status") or {})
    decision = Decision(status)
    try:
        spec: WorkflowSpec | None = WorkflowSpec.model_validate(workflow.get("spec") or {})
    except ValidationError as exc:
        spec = None
        problems = [*problems, f"spec: {exc.errors()[0]['msg']}"]

    _follow_active_run(decision, jobs, now, history_limit)

    schedule_problem = ""
    if spec is not None:
        try:
            _trigger(decision, workflow, spec, now, runnable=not problems)
        except ScheduleError as exc:
            schedule_problem = str(exc)
    if schedule_problem:
        problems = [*problems, f"spec.schedule: {schedule_problem}"]

    conditions = list(status.get("conditions") or [])
    conditions = set_condition(
        conditions, "Ready", not problems,
        "Valid" if not problems else "InvalidReference" if not schedule_problem
        else "InvalidSchedule",
        "; ".join(problems) or "Environments and Templates found; runs can start",
        generation, now)
    active = status.get("activeRun")
    conditions = set_condition(
        conditions, "Running", active is not None,
        "RunActive" if active else "Idle",
        f"run {active['id']} ({active.get('jobName')})" if active else "no run in progress",
        generation, now)
    last = status.get("lastRun")
    if last:
        ok = last.get("result") == RunResult.SUCCEEDED.value
        conditions = set_condition(conditions, "Succeeded", ok, str(last.get("result")),
                                   last.get("message") or f"run {last['id']}", generation, now)
    status["conditions"] = conditions
    status["observedGeneration"] = generation
    return decision


def _follow_active_run(decision: Decision, jobs: list[dict[str, Any]], now: datetime,
                       history_limit: int) -> None:
    status = decision.status
    tracking = track(status.get("activeRun"), jobs, iso(now))
    status["activeRun"] = tracking.active
    if tracking.create_job and tracking.active is not None:
        active = tracking.active
        decision.start = StartRun(active["id"], active["jobName"],
                                  active.get("trigger") or "Manual")
    if tracking.finished is not None:
        _finish(decision, tracking.finished, history_limit)


def _finish(decision: Decision, summary: dict[str, Any], history_limit: int) -> None:
    status = decision.status
    result, message, run_id = RunResult(summary["result"]), summary["message"], summary["id"]
    status["lastRun"] = summary
    status["history"] = [summary, *(status.get("history") or [])][:history_limit]
    counts = summary.get("counts") or {}
    done = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("created", "updated", "deleted"))
    if result == RunResult.SUCCEEDED:
        decision.events.append(Event("Normal", "RunSucceeded", f"run {run_id}: {done}"))
    elif result == RunResult.THRESHOLD_HIT:
        decision.events.append(Event("Warning", "DeleteThresholdHit",
                                     f"run {run_id}: {message or 'nothing deleted'}"))
    elif result == RunResult.COMPLETED_WITH_ERRORS:
        decision.events.append(Event("Warning", "RunCompletedWithErrors",
                                     f"run {run_id}: {done}; {message}"))
    else:
        why = message or "the Job failed"
        decision.events.append(Event("Warning", "RunFailed", f"run {run_id}: {why}"))


def _trigger(decision: Decision, workflow: dict[str, Any], spec: WorkflowSpec, now: datetime,
             runnable: bool) -> None:
    status = decision.status
    meta = workflow["metadata"]
    busy = status.get("activeRun") is not None
    trigger: tuple[str, str] | None = None

    request = (meta.get("annotations") or {}).get(RUN_REQUEST_ANNOTATION)
    if request and request != status.get("lastRunRequest"):
        status["lastRunRequest"] = request
        if busy:
            decision.events.append(Event(
                "Warning", "RunSkipped",
                f"run request {request!r} ignored: run {status['activeRun']['id']} is active"))
        elif not runnable:
            decision.events.append(Event("Warning", "RunSkipped",
                                         f"run request {request!r} ignored: not Ready"))
        else:
            trigger = ("Manual", request)

    schedule = spec.schedule
    created = parse_time(meta.get("creationTimestamp")) or now
    anchor = parse_time(status.get("lastScheduleTime")) or created
    if not spec.suspend and not is_manual(schedule):
        slot = due_slot(schedule, anchor, now)
        if slot is not None:
            status["lastScheduleTime"] = iso(slot)
            anchor = slot
            if busy or trigger is not None:
                decision.events.append(Event("Normal", "RunSkipped",
                                             f"scheduled run at {iso(slot)} skipped: a run"
                                             " is active"))
            elif runnable:
                trigger = ("Schedule", iso(slot))
        status["nextRunTime"] = iso(next_run(schedule, anchor, now))  # type: ignore[arg-type]
    else:
        status["nextRunTime"] = None
    status["schedule"] = describe(schedule, spec.suspend)

    if trigger is not None:
        kind, key = trigger
        run_id = run_id_for(meta["uid"], kind, key)
        name = job_name(meta["name"], run_id)
        status["activeRun"] = {"id": run_id, "jobName": name, "trigger": kind,
                               "startTime": iso(now), "result": RunResult.PENDING.value}
        decision.start = StartRun(run_id, name, kind)
