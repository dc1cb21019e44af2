"""What both decisions share: the decision's shape, and following the one active run an
object has (a Workflow run or a discovery) through its Job.

The active run is written to status before its Job is created (result Pending), and the Job
reports into it while it runs; from that entry and the Jobs found, track() says whether the
run is still going, must have its Job (re)created, or has finished and how. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from ferry.api.conditions import Reason
from ferry.api.events import EventReason, EventType
from ferry.api.status import DiscoveryRun, RunResult, RunSummary, StatusModel, Trigger
from ferry.controller.runs import REPORTED_RESULTS, RUN_LABEL, job_outcome

if TYPE_CHECKING:
    from kubernetes.client import V1Job

# Results a failed Job may carry from the run's own report.
_FAILED_RESULTS = frozenset({RunResult.FAILED, RunResult.THRESHOLD_HIT,
                             RunResult.COMPLETED_WITH_ERRORS})

StatusT = TypeVar("StatusT", bound=StatusModel)
RunT = TypeVar("RunT", RunSummary, DiscoveryRun)


@dataclass(frozen=True)
class Event:
    """An Event to post about the object being reconciled."""

    type: EventType
    reason: EventReason | Reason
    message: str


@dataclass(frozen=True)
class StartJob:
    """Create the Job of the active run or discovery (its entry is already in the status)."""

    run_id: str
    job_name: str
    trigger: str
    full: bool = False  # a discovery that reads everything

    @classmethod
    def of(cls, run: RunSummary | DiscoveryRun, default: Trigger) -> StartJob:
        assert run.job_name is not None  # an entry is written with its Job's name
        return cls(run.id, run.job_name, run.trigger or default,
                   isinstance(run, DiscoveryRun) and run.full)


@dataclass
class Decision(Generic[StatusT]):
    """The object's next status, the Job to create (if any) and the Events to post."""

    status: StatusT
    start: StartJob | None = None
    events: list[Event] = field(default_factory=list)


@dataclass(frozen=True)
class Tracking(Generic[RunT]):
    active: RunT | None              # the active entry as it should now be
    finished: RunT | None = None     # the run's summary, when it just ended
    create_job: bool = False         # the entry is Pending and its Job is missing


def track(active: RunT | None, jobs: list[V1Job], now: datetime,
          kind: type[RunT]) -> Tracking[RunT]:
    """Where the active run stands, given the Jobs labelled with its owner."""
    if active is None:
        unfinished = [j for j in jobs if not job_outcome(j).finished]
        if not unfinished:
            return Tracking(None)
        # A Job of ours runs but status lost track of it (status was reset): adopt it.
        orphan = unfinished[0].metadata
        return Tracking(kind(id=(orphan.labels or {}).get(RUN_LABEL, orphan.name),
                             job_name=orphan.name, trigger=Trigger.ADOPTED,
                             start_time=orphan.creation_timestamp, result=RunResult.RUNNING))
    job = next((j for j in jobs if (j.metadata.labels or {}).get(RUN_LABEL) == active.id),
               None)
    pending = active.result == RunResult.PENDING
    if job is None:
        if pending:
            return Tracking(active, create_job=True)
        return Tracking(None, finished=_ended(
            active, RunResult.FAILED,
            f"Job {active.job_name} disappeared before it finished", now))
    outcome = job_outcome(job)
    if not outcome.finished:
        if not pending:
            return Tracking(active)
        running = active.model_copy()
        running.result = RunResult.RUNNING
        return Tracking(running)
    reported = active.result
    if outcome.succeeded:
        result = reported if reported in REPORTED_RESULTS else RunResult.SUCCEEDED
    else:
        result = reported if reported in _FAILED_RESULTS else RunResult.FAILED
    message = active.message or ("" if outcome.succeeded else " ".join(
        part for part in (outcome.reason, outcome.message) if part))
    completed = active.completion_time or (job.status and job.status.completion_time) or now
    return Tracking(None, finished=_ended(active, result, message, completed))


def end(run: RunSummary | DiscoveryRun, result: RunResult, message: str,
        when: datetime) -> None:
    """Record how the run ended (by the operator, or by the Job's own report)."""
    run.result, run.message, run.completion_time = result, message, when


def _ended(run: RunT, result: RunResult, message: str, when: datetime) -> RunT:
    ended = run.model_copy()
    end(ended, result, message, when)
    return ended
