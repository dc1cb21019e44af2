"""Follow the one active run an object has (a Workflow run or a discovery) through its Job.

The active run is written to status before its Job is created (result Pending), and the Job
reports into it while it runs; from that entry and the Jobs found, track() says whether the
run is still going, must have its Job (re)created, or has finished and how. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ferry.api.status import RunResult
from ferry.controller.runs import REPORTED_RESULTS, RUN_LABEL, job_outcome

# Results a failed Job may carry from the run's own report.
_FAILED_RESULTS = frozenset({RunResult.FAILED, RunResult.THRESHOLD_HIT,
                             RunResult.COMPLETED_WITH_ERRORS})


@dataclass(frozen=True)
class Event:
    """An Event to post about the object being reconciled."""

    type: str      # Normal | Warning
    reason: str
    message: str


@dataclass(frozen=True)
class Tracking:
    active: dict[str, Any] | None          # the active entry as it should now be
    finished: dict[str, Any] | None = None  # the run's summary, when it just ended
    create_job: bool = False                # the entry is Pending and its Job is missing


def track(active: dict[str, Any] | None, jobs: list[dict[str, Any]], now: str) -> Tracking:
    """Where the active run stands, given the Jobs labelled with its owner."""
    if active is None:
        unfinished = [j for j in jobs if not job_outcome(j).finished]
        if not unfinished:
            return Tracking(None)
        # A Job of ours runs but status lost track of it (status was reset): adopt it.
        orphan = unfinished[0]["metadata"]
        return Tracking({
            "id": (orphan.get("labels") or {}).get(RUN_LABEL, orphan["name"]),
            "jobName": orphan["name"],
            "trigger": "Adopted",
            "startTime": orphan.get("creationTimestamp"),
            "result": RunResult.RUNNING.value,
        })
    job = next((j for j in jobs
                if (j["metadata"].get("labels") or {}).get(RUN_LABEL) == active["id"]), None)
    pending = active.get("result") == RunResult.PENDING.value
    if job is None:
        if pending:
            return Tracking(active, create_job=True)
        return Tracking(None, finished={
            **active, "result": RunResult.FAILED.value, "completionTime": now,
            "message": f"Job {active.get('jobName')} disappeared before it finished"})
    outcome = job_outcome(job)
    if not outcome.finished:
        return Tracking({**active, "result": RunResult.RUNNING.value} if pending else active)
    reported = _result(active.get("result"))
    if outcome.succeeded:
        result = reported if reported in REPORTED_RESULTS else RunResult.SUCCEEDED
    else:
        result = reported if reported in _FAILED_RESULTS else RunResult.FAILED
    message = active.get("message") or ("" if outcome.succeeded else " ".join(
        part for part in (outcome.reason, outcome.message) if part))
    completed = active.get("completionTime") or (job.get("status") or {}).get(
        "completionTime") or now
    return Tracking(None, finished={**active, "result": result.value, "message": message,
                                    "completionTime": completed})


def iso(moment: datetime) -> str:
    """Kubernetes' timestamp format (UTC, seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _result(value: Any) -> RunResult | None:
    try:
        return RunResult(value)
    except ValueError:
        return None
