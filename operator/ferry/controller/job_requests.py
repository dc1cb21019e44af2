"""What a Workflow's requests for a Job of their own share (`ferry trace --in-cluster`,
`ferry report matches --in-cluster`): each kind's annotation, label and status entry, the
Job's name, following the active request through its Job, and the status patch. Pure.

Level-triggered like runs: a request is taken once (its status entry carries its id, written
before the Job is created), its Job is named by that id, so a restart neither repeats nor
loses it; one whose Job ended without a report, or vanished, failed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ferry.api.events import EventReason, EventType
from ferry.api.status import RequestSummary, RunResult, WorkflowStatus
from ferry.controller.run_tracking import Event
from ferry.controller.runs import RUN_LABEL, job_outcome
from ferry.errors import ExitCode

if TYPE_CHECKING:
    from kubernetes.client import V1Job

ACTIVE_RESULTS = frozenset({RunResult.PENDING, RunResult.RUNNING})
REQUEST_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$")
MAX_ID_LENGTH = 16  # the longest id REQUEST_ID accepts
SummaryT = TypeVar("SummaryT", bound=RequestSummary)


@dataclass(frozen=True)
class RequestKind(Generic[SummaryT]):
    """One kind of request: what it is called, where it is asked and recorded."""

    what: str                 # "trace", "match report": in messages
    annotation: str           # where it is asked, e.g. ferry.dev/trace-requested
    label: str                # its Jobs' label (value: the Workflow), never ferry.dev/workflow
    infix: str                # its Job's name: <workflow>-<infix>-<id>
    key: str                  # its status entry, e.g. lastTrace
    current: Callable[[WorkflowStatus], SummaryT | None]
    finished: EventReason     # the Event a failure the operator finds is posted as
    describe: Callable[[SummaryT], str] = lambda _: ""   # what it is about: " of 'ann'"

    def job_name(self, workflow: str, request_id: str) -> str:
        """`<workflow>-<infix>-<id>`, within the 63 characters pod labels allow."""
        room = 63 - len(f"-{self.infix}-") - MAX_ID_LENGTH
        return f"{workflow[:room].rstrip('-')}-{self.infix}-{request_id}"

    def active(self, status: WorkflowStatus) -> SummaryT | None:
        found = self.current(status)
        return found if found is not None and found.result in ACTIVE_RESULTS else None


class Decide(Protocol[SummaryT]):
    def __call__(self, annotations: Mapping[str, str], workflow: str, status: WorkflowStatus,
                 jobs: list[V1Job], *, problems: Callable[[], list[str]], now: datetime
                 ) -> RequestDecision[SummaryT]: ...


@dataclass(frozen=True)
class RequestJobs(Generic[SummaryT]):
    """One kind of request as the operator serves it: its decision and its Job."""

    kind: RequestKind[SummaryT]
    decide: Decide[SummaryT]
    command: str                          # the Job's `ferry` command
    component: str                        # app.kubernetes.io/component of its Job
    trigger: str                          # its Job's ferry.dev/trigger
    started: EventReason
    request_id: Callable[[str], str]      # the id an annotation value is taken under


@dataclass(frozen=True)
class StartJob:
    """Create the request's Job (its entry is already in status, Pending)."""

    request_id: str
    job_name: str


@dataclass
class RequestDecision(Generic[SummaryT]):
    summary: SummaryT | None
    start: StartJob | None = None
    events: list[Event] = field(default_factory=list)


def invalid_request_id(value: str) -> str:
    """The id an unparseable annotation value is recorded under, so it is refused once."""
    return "invalid-" + hashlib.sha256(value.encode()).hexdigest()[:8]


def decide_request(kind: RequestKind[SummaryT], annotations: Mapping[str, str],
                   status: WorkflowStatus, jobs: list[V1Job], now: datetime,
                   take: Callable[[RequestDecision[SummaryT], str], None]
                   ) -> RequestDecision[SummaryT]:
    """Follow the active request through its Job; with none active, `take` the annotation's
    (a new request waits while another is active). One that ends here is written before the
    next is taken (by the next reconcile): its requester must be able to see its end."""
    current = kind.current(status)
    decision = RequestDecision(current.model_copy() if current is not None else None)
    if kind.active(status) is not None:
        follow(kind, decision, jobs, now)
        return decision
    value = annotations.get(kind.annotation)
    if value:
        take(decision, value)
    return decision


def follow(kind: RequestKind[Any], decision: RequestDecision[SummaryT], jobs: list[V1Job],
           now: datetime) -> None:
    """The active request's Job: (re)create it while Pending and missing; a Job that ended
    (the Job reports its own end first) or vanished fails the request."""
    summary = decision.summary
    assert summary is not None and summary.job_name is not None  # written with its Job's name
    job = next((j for j in jobs if (j.metadata.labels or {}).get(RUN_LABEL) == summary.id),
               None)
    if job is None:
        if summary.result == RunResult.PENDING:
            decision.start = StartJob(summary.id, summary.job_name)
        else:
            fail(kind, decision, f"Job {summary.job_name} disappeared before it reported", now)
        return
    outcome = job_outcome(job)
    if outcome.finished:
        why = " ".join(part for part in (outcome.reason, outcome.message) if part)
        fail(kind, decision, f"Job {summary.job_name} ended without a report"
             + (f": {why}" if why else ""), now)


def fail(kind: RequestKind[Any], decision: RequestDecision[SummaryT], message: str,
         now: datetime) -> None:
    summary = decision.summary
    assert summary is not None
    summary.result, summary.message, summary.completed_at = (RunResult.FAILED,
                                                             message[:4096], now)
    summary.exit_code = int(ExitCode.FAILED)
    decision.events.append(Event(EventType.WARNING, kind.finished,
                                 f"{kind.what} {summary.id}{kind.describe(summary)}"
                                 f" failed: {message}"))


def summary_patch(key: str, old: RequestSummary | None, new: RequestSummary | None
                  ) -> dict[str, Any]:
    """The status merge patch turning entry `key` from `old` into `new` ({} when equal). A
    merge patch keeps the fields it does not name, so those `new` lacks are sent as null: a
    new request must not keep the last one's report."""
    before = old.dump() if old is not None else {}
    after = new.dump() if new is not None else None
    if before == (after or {}):
        return {}
    if after is None:
        return {key: None}
    return {key: {**dict.fromkeys(before.keys() - after.keys()), **after}}


def wanted(kind: RequestKind[Any], cached: Mapping[str, Any] | None,
           request_id: Callable[[str], str]) -> bool:
    """Whether there may be anything to do: a request not taken yet, or one under way (the
    annotation stays after its request: most reconciles read nothing more)."""
    if cached is None:
        return True  # not seen yet: read it
    status = WorkflowStatus.of(cached)
    if kind.active(status) is not None:
        return True
    value = (cached["metadata"].get("annotations") or {}).get(kind.annotation)
    if not value:
        return False
    current = kind.current(status)
    return current is None or request_id(str(value)) != current.id
