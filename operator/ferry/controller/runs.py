"""Run identity and Job outcome: pure functions shared by the operator and the sync Job."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ferry.api.status import ConditionStatus, RunResult

if TYPE_CHECKING:
    from kubernetes.client import V1Job

WORKFLOW_LABEL = "ferry.dev/workflow"
ENVIRONMENT_LABEL = "ferry.dev/environment"
RUN_LABEL = "ferry.dev/run"
TRIGGER_ANNOTATION = "ferry.dev/trigger"
RUN_REQUEST_ANNOTATION = "ferry.dev/run-requested"
RESET_WATERMARK_ANNOTATION = "ferry.dev/reset-watermark"
MANAGED_BY = "ferry-operator"
RUN_ID_LENGTH = 10


def run_id_for(workflow_uid: str, trigger: str, key: str) -> str:
    """A run id derived from what triggered it, so a restarted operator names the same run."""
    digest = hashlib.sha256(f"{workflow_uid}|{trigger}|{key}".encode()).hexdigest()
    return digest[:RUN_ID_LENGTH]


def job_name(workflow: str, run_id: str) -> str:
    """Deterministic Job name within the 63 characters pod labels allow."""
    return f"{workflow[:63 - RUN_ID_LENGTH - 1].rstrip('-')}-{run_id}"


@dataclass(frozen=True)
class JobOutcome:
    """Where a Job stands: finished or not, and why it failed."""

    finished: bool
    succeeded: bool
    reason: str = ""
    message: str = ""


_JOB_COMPLETE, _JOB_FAILED = "Complete", "Failed"  # batch/v1 JobConditionType


def job_outcome(job: V1Job) -> JobOutcome:
    """Read a Job's Complete/Failed conditions (the interim ones are ignored)."""
    for condition in (job.status and job.status.conditions) or []:
        if condition.status != ConditionStatus.TRUE:
            continue
        if condition.type == _JOB_COMPLETE:
            return JobOutcome(True, True, condition.reason or "Completed",
                              condition.message or "")
        if condition.type == _JOB_FAILED:
            return JobOutcome(True, False, condition.reason or "JobFailed",
                              condition.message or "")
    return JobOutcome(False, False)


# The sync Job's exit codes (ferry.sync.outcome.ExitCode) that retrying cannot fix.
FINAL_EXIT_CODES = (2, 3, 4)

# Results a sync Job reports itself; the operator keeps them over the Job's bare success.
REPORTED_RESULTS = frozenset({RunResult.SUCCEEDED, RunResult.FAILED, RunResult.THRESHOLD_HIT,
                              RunResult.COMPLETED_WITH_ERRORS})
