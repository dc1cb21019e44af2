"""What the operator should do for one Workflow, decided from what it observes. Pure.

Level-triggered: the decision depends only on the Workflow (spec, annotations, status), the
Jobs labelled with it and the clock, so reconciling twice, or after a restart, decides the same.
Run ids derive from the trigger (the request annotation's value, or the scheduled time), so a
Job is never created twice for one trigger, and the run is written to status (Pending) before
its Job exists, so a crash between the two is finished on restart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ferry.api.status import RunResult
from ferry.api.workflow import WorkflowSpec
from ferry.controller.conditions import set_condition
from ferry.controller.runs import (
    REPORTED_RESULTS,
    RUN_LABEL,
    RUN_REQUEST_ANNOTATION,
    job_name,
    job_outcome,
    run_id_for,
)
from ferry.controller.schedule import ScheduleError, describe, due_slot, is_manual, next_run

# Results a failed Job may carry from the sync Job's own report.
_FAILED_RESULTS = frozenset({RunResult.FAILED, RunResult.THRESHOLD_HIT,
                             RunResult.COMPLETED_WITH_ERRORS})


@dataclass(frozen=True)
class Event:
    type: str      # Normal | Warning
    reason: str
    message: str


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
    active = status.get("activeRun")
    unfinished = [j for j in jobs if not job_outcome(j).finished]
    if active is None and unfinished:
        # A Job of ours runs but status lost track of it (status reset): adopt it.
        orphan = unfinished[0]["metadata"]
        status["activeRun"] = {
            "id": (orphan.get("labels") or {}).get(RUN_LABEL, orphan["name"]),
            "jobName": orphan["name"],
            "trigger": "Adopted",
            "startTime": orphan.get("creationTimestamp"),
            "result": RunResult.RUNNING.value,
        }
        return
    if active is None:
        return
    job: dict[str, Any] | None = next(
        (j for j in jobs if (j["metadata"].get("labels") or {}).get(RUN_LABEL) == active["id"]),
        None)
    if job is None:
        if active.get("result") == RunResult.PENDING.value:
            decision.start = StartRun(active["id"], active["jobName"],
                                      active.get("trigger") or "Manual")
        else:
            _finish(decision, active, RunResult.FAILED, "JobDeleted",
                    f"Job {active.get('jobName')} disappeared before it finished", now,
                    history_limit)
        return
    outcome = job_outcome(job)
    if not outcome.finished:
        if active.get("result") == RunResult.PENDING.value:
            status["activeRun"] = {**active, "result": RunResult.RUNNING.value}
        return
    reported = _result(active.get("result"))
    if outcome.succeeded:
        result = reported if reported in REPORTED_RESULTS else RunResult.SUCCEEDED
        reason = ""
    else:
        result = reported if reported in _FAILED_RESULTS else RunResult.FAILED
        reason = outcome.reason
    message = active.get("message") or " ".join(
        part for part in (outcome.reason, outcome.message) if part and not outcome.succeeded)
    completed = (active.get("completionTime")
                 or (job.get("status") or {}).get("completionTime"))
    _finish(decision, active, result, reason, message, now, history_limit, completed)


def _finish(decision: Decision, active: dict[str, Any], result: RunResult, reason: str,
            message: str, now: datetime, history_limit: int,
            completed: str | None = None) -> None:
    status = decision.status
    summary = {**active, "result": result.value, "message": message,
               "completionTime": completed or _iso(now)}
    status["activeRun"] = None
    status["lastRun"] = summary
    status["history"] = [summary, *(status.get("history") or [])][:history_limit]
    counts = summary.get("counts") or {}
    done = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("created", "updated", "deleted"))
    if result == RunResult.SUCCEEDED:
        decision.events.append(Event("Normal", "RunSucceeded", f"run {active['id']}: {done}"))
    elif result == RunResult.THRESHOLD_HIT:
        decision.events.append(Event("Warning", "DeleteThresholdHit",
                                     f"run {active['id']}: {message or 'nothing deleted'}"))
    elif result == RunResult.COMPLETED_WITH_ERRORS:
        decision.events.append(Event("Warning", "RunCompletedWithErrors",
                                     f"run {active['id']}: {done}; {message}"))
    else:
        why = message or reason or "the Job failed"
        decision.events.append(Event("Warning", "RunFailed", f"run {active['id']}: {why}"))


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
    created = _parse(meta.get("creationTimestamp")) or now
    anchor = _parse(status.get("lastScheduleTime")) or created
    if not spec.suspend and not is_manual(schedule):
        slot = due_slot(schedule, anchor, now)
        if slot is not None:
            status["lastScheduleTime"] = _iso(slot)
            anchor = slot
            if busy or trigger is not None:
                decision.events.append(Event("Normal", "RunSkipped",
                                             f"scheduled run at {_iso(slot)} skipped: a run"
                                             " is active"))
            elif runnable:
                trigger = ("Schedule", _iso(slot))
        status["nextRunTime"] = _iso(next_run(schedule, anchor, now))  # type: ignore[arg-type]
    else:
        status["nextRunTime"] = None
    status["schedule"] = describe(schedule, spec.suspend)

    if trigger is not None:
        kind, key = trigger
        run_id = run_id_for(meta["uid"], kind, key)
        name = job_name(meta["name"], run_id)
        status["activeRun"] = {"id": run_id, "jobName": name, "trigger": kind,
                               "startTime": _iso(now), "result": RunResult.PENDING.value}
        decision.start = StartRun(run_id, name, kind)


def _result(value: Any) -> RunResult | None:
    try:
        return RunResult(value)
    except ValueError:
        return None


def _parse(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
