"""Status types: what Ferry reports about each object. Only Ferry writes them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel


def k8s_time(moment: datetime) -> str:
    """Kubernetes' timestamp format (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Run and schedule times, written as the API server writes its own.
Timestamp = Annotated[datetime, PlainSerializer(k8s_time, return_type=str, when_used="json")]


class StatusModel(BaseModel):
    """camelCase like the spec; fields a newer Ferry wrote are ignored, not refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore",
                              defer_build=True)

    @classmethod
    def of(cls, body: Mapping[str, Any] | None) -> Self:
        """The status of an object as the API server sent it (empty when it has none)."""
        return cls.model_validate((body or {}).get("status") or {})

    def dump(self) -> dict[str, Any]:
        """As the API server keeps it: the fields read or set, no nulls (a field left out is
        cleared by the merge patch ferry.kube.status_changes makes)."""
        return self.model_dump(mode="json", by_alias=True, exclude_unset=True, exclude_none=True)


class ConditionStatus(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(StatusModel):
    """One aspect of the object's state, shaped like Kubernetes' metav1.Condition."""

    type: str = Field(max_length=316, description="Condition type, e.g. Ready.")
    status: ConditionStatus = Field(description="True, False or Unknown.")
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation this condition was set for."
    )
    last_transition_time: datetime = Field(description="When status last changed.")
    reason: str = Field(
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(default="", max_length=32768, description="What happened, for people.")


class RunResult(StrEnum):
    PENDING = "Pending"            # recorded, Job not created yet
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    THRESHOLD_HIT = "ThresholdHit"
    COMPLETED_WITH_ERRORS = "CompletedWithErrors"


class Trigger(StrEnum):
    """What started a run or a discovery (its trigger field and ferry.dev/trigger)."""

    MANUAL = "Manual"        # the ferry.dev/run-requested annotation
    SCHEDULE = "Schedule"
    ADOPTED = "Adopted"      # a Job of ours that status had lost track of
    INITIAL = "Initial"      # an Environment's first discovery
    RESET = "Reset"          # the ferry.dev/reset-watermark annotation


class RunCounts(StatusModel):
    """Objects one run touched, all pairs and object types together."""

    created: int = Field(default=0, description="Objects created in targets.")
    updated: int = Field(default=0, description="Objects whose attributes or members changed.")
    moved: int = Field(default=0, description="Objects renamed or moved.")
    deleted: int = Field(default=0, description="Objects deleted in targets.")
    unchanged: int = Field(default=0, description="Objects already as desired.")
    conflicts: int = Field(default=0, description="Objects not written: ambiguous matches.")
    errors: int = Field(default=0, description="Objects that failed; retried next run.")
    deferred: int = Field(
        default=0, description="Objects with references to objects not synced yet; retried.")
    out_of_scope: int = Field(
        default=0, description="References (members, managers) to objects outside the pairs'"
        " scope: never synced, not an error.")
    sid_history: int = Field(
        default=0, description="Objects whose sIDHistory got their source objectSid.")
    passwords: int = Field(
        default=0, description="Users whose source password was set on their target.")
    new_conflicts: int = Field(
        default=0, description="Conflicts the workflow's previous run did not have.")


class ScriptResult(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"          # a non-zero exit, or it could not start
    TIMED_OUT = "TimedOut"
    PLANNED = "Planned"        # test mode: listed, not run
    SKIPPED = "Skipped"        # an earlier step failed the run


class ScriptRun(StatusModel):
    """How one runScript step of a run went."""

    step: int = Field(description="Index of the step in spec.steps.")
    name: str | None = Field(default=None, description="The step's name.")
    where: str = Field(
        description="Where it ran: Local, Pod, Job <name> or Agent <environment>/<agent>.")
    result: ScriptResult = Field(description="Succeeded, Failed, TimedOut, Planned, Skipped.")
    exit_code: int | None = Field(default=None, description="Its exit code, if it exited.")
    duration_seconds: float | None = Field(default=None, description="How long it ran.")
    output_tail: str = Field(
        default="", max_length=4096, description="The end of its output (stdout and stderr).")


class RunSummary(StatusModel):
    """One run of a workflow."""

    id: str = Field(description="Run id; the Job is labelled ferry.dev/run=<id>.")
    job_name: str | None = Field(default=None, description="Name of the run's Job.")
    trigger: str | None = Field(
        default=None, description="What started it: Schedule, Manual or Retry."
    )
    start_time: Timestamp | None = Field(default=None, description="When the Job was created.")
    completion_time: Timestamp | None = Field(default=None, description="When the run ended.")
    result: RunResult = Field(description="Outcome; Pending or Running while active.")
    counts: RunCounts = Field(default_factory=RunCounts, description="What the run did.")
    # Unset, not 0, where a run met no throttling: most never reach Graph.
    graph_throttled: int | None = Field(
        default=None, description="Microsoft Graph's 429 answers the run waited out.")
    graph_retries: int | None = Field(
        default=None, description="Graph requests the run sent again (throttled, 5xx, lost).")
    types: dict[str, RunCounts] = Field(
        default_factory=dict, description="What the run did per object type (user, group, ...).")
    progress: str | None = Field(
        default=None, description="The step the run is in, e.g. write tgt: 300/1000."
    )
    message: str = Field(default="", description="Why it ended as it did.")
    scripts: list[ScriptRun] = Field(
        default_factory=list, max_length=20, description="Its runScript steps.")


class AlertState(StrEnum):
    PENDING = "Pending"
    SENT = "Sent"
    FAILED = "Failed"          # gave up after its attempts


class AlertDelivery(StatusModel):
    """One alert for one run and outcome; kept so that it is sent once."""

    alert: str = Field(description="spec.alerts[].name.")
    run: str = Field(description="The run's id.")
    outcome: str = Field(description="The outcome it is about, e.g. Failed.")
    state: AlertState = Field(description="Pending, Sent or Failed.")
    attempts: int = Field(default=0, description="Times sending was tried.")
    time: Timestamp | None = Field(default=None, description="Last attempt.")
    message: str = Field(default="", max_length=1024, description="The last error, if any.")


class RequestSummary(StatusModel):
    """A request a Workflow's annotation makes for a Job of its own (a trace, a match report):
    taken once by its id, then followed to its end."""

    id: str = Field(description="The request's id, as its annotation gave it.")
    job_name: str | None = Field(default=None, description="Name of the request's Job.")
    requested_at: Timestamp | None = Field(default=None, description="When it was taken up.")
    completed_at: Timestamp | None = Field(default=None, description="When it ended.")
    result: RunResult = Field(
        description="Pending or Running while active; then Succeeded or Failed.")
    exit_code: int | None = Field(
        default=None, description="The exit code the CLI gives for it.")
    message: str = Field(default="", max_length=4096, description="Its outcome, for people.")


class TraceSummary(RequestSummary):
    """The latest `ferry trace --in-cluster` of a workflow: one object, explained by a Job."""

    id: str = Field(description="The request's id (ferry.dev/trace-requested).")
    object: str = Field(max_length=1024, description="The DN, UPN, GUID, mail or account.")
    apply: bool = Field(default=False, description="Whether the traced operation is performed.")
    result: RunResult = Field(
        description="Pending or Running while active; then Succeeded or Failed (with --apply,"
        " the run's result).")
    exit_code: int | None = Field(
        default=None, description="The exit code `ferry trace` gives for it.")
    run: str | None = Field(default=None, description="The run --apply recorded (mode trace).")
    report: str | None = Field(
        default=None, max_length=32768,
        description="The trace as `ferry trace --json` prints it (lists cut to fit, saying so).")


class MatchCounts(StatusModel):
    """A pair's source objects by match status, as the match report's CSV has them."""

    joined: int = Field(default=0, description="A stored join, its target still there.")
    matched: int = Field(default=0, description="A match rule found the target.")
    would_create: int = Field(default=0, description="No target: the next run creates one.")
    unmatched: int = Field(default=0, description="No target, and none is created.")
    conflict: int = Field(default=0, description="Ambiguous: nothing is written.")
    out_of_scope: int = Field(default=0, description="The pair does not sync it.")
    error: int = Field(default=0, description="Staging failed (an expression error).")


class PairMatchCounts(StatusModel):
    source: str = Field(description="The pair's source Environment.")
    target: str = Field(description="The pair's target Environment.")
    counts: MatchCounts = Field(default_factory=MatchCounts, description="Objects by status.")


class MatchReportSummary(RequestSummary):
    """The latest `ferry report matches --in-cluster` of a workflow: its rows are in the state
    store (`ferry report matches NAMESPACE/NAME` writes their CSV files)."""

    id: str = Field(description="The request's id (ferry.dev/match-report-requested).")
    exit_code: int | None = Field(
        default=None, description="The exit code `ferry report matches` gives for it.")
    pairs: list[PairMatchCounts] = Field(
        default_factory=list, max_length=100, description="Each pair's counts, in step order.")


class RunTotals(StatusModel):
    """Every finished run of the workflow summed, added to as each run ends: the source of its
    metrics, so the figures outlive the runs' pods, the history's limit and operator restarts."""

    runs: dict[str, int] = Field(default_factory=dict, description="Finished runs by result.")
    types: dict[str, RunCounts] = Field(
        default_factory=dict, description="What the runs did per object type, summed.")
    duration_seconds: float = Field(default=0.0, description="The runs' durations, summed.")
    graph_throttled: int | None = Field(
        default=None, description="Graph's 429s the runs waited out.")
    graph_retries: int | None = Field(
        default=None, description="Graph requests the runs sent again.")
    last_success_time: Timestamp | None = Field(
        default=None, description="When the latest run that succeeded ended.")

    def added(self, run: RunSummary) -> RunTotals:
        """These totals with the finished `run` added."""
        types = {name: counts.model_copy() for name, counts in self.types.items()}
        for name, counts in run.types.items():
            total = types.setdefault(name, RunCounts())
            for field in counts.model_fields_set:
                setattr(total, field, getattr(total, field) + getattr(counts, field))
        took = (run.completion_time - run.start_time).total_seconds() \
            if run.completion_time and run.start_time else 0.0
        succeeded = run.result == RunResult.SUCCEEDED and run.completion_time is not None
        return RunTotals(
            runs={**self.runs, run.result.value: self.runs.get(run.result.value, 0) + 1},
            types=types, duration_seconds=self.duration_seconds + max(took, 0.0),
            graph_throttled=_sum(self.graph_throttled, run.graph_throttled),
            graph_retries=_sum(self.graph_retries, run.graph_retries),
            last_success_time=run.completion_time if succeeded else self.last_success_time)


def _sum(total: int | None, more: int | None) -> int | None:
    """None while nothing was ever counted (the field stays out of status)."""
    return None if total is None and more is None else (total or 0) + (more or 0)


class WorkflowStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Running, Succeeded (last run) and Scheduled."
    )
    schedule: str | None = Field(
        default=None, description="The schedule in words: manual, every 60m, daily 02:00 UTC."
    )
    active_run: RunSummary | None = Field(
        default=None, description="The run in progress; at most one per workflow."
    )
    last_run: RunSummary | None = Field(default=None, description="The latest finished run.")
    next_run_time: Timestamp | None = Field(
        default=None, description="When the schedule starts the next run."
    )
    last_schedule_time: Timestamp | None = Field(
        default=None, description="The scheduled time last acted on (run or skipped)."
    )
    last_run_request: str | None = Field(
        default=None,
        description="Value of the ferry.dev/run-requested annotation last acted on.",
    )
    history: list[RunSummary] = Field(
        default_factory=list, max_length=20, description="Recent finished runs, newest first."
    )
    alerts: list[AlertDelivery] = Field(
        default_factory=list, max_length=50,
        description="Alerts of the latest runs, newest first, with their delivery.")
    last_trace: TraceSummary | None = Field(
        default=None, description="The latest in-cluster trace of one object.")
    last_match_report: MatchReportSummary | None = Field(
        default=None, description="The latest in-cluster match report of its pairs.")
    totals: RunTotals | None = Field(
        default=None, description="All finished runs summed: what the metrics count.")


class AgentStatus(StatusModel):
    name: str = Field(description="Agent name.")
    version: str | None = Field(default=None, description="Agent version.")
    host: str | None = Field(default=None, description="Host the agent runs on.")
    last_heartbeat: datetime | None = Field(default=None, description="Last heartbeat received.")
    connected: bool = Field(default=False, description="Connected to the gateway now.")


class DiscoveryRun(StatusModel):
    """One discovery of an environment, run as a Job."""

    id: str = Field(description="Run id; the Job is labelled ferry.dev/run=<id>.")
    job_name: str | None = Field(default=None, description="Name of the discovery Job.")
    trigger: str | None = Field(default=None, description="Schedule, Initial or Reset.")
    full: bool = Field(default=False, description="Whether it read everything (no delta).")
    start_time: Timestamp | None = Field(default=None, description="When the Job was created.")
    completion_time: Timestamp | None = Field(default=None, description="When it ended.")
    result: RunResult = Field(description="Outcome; Pending or Running while active.")
    message: str = Field(default="", description="Why it ended as it did.")


class EnvironmentStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready (configuration usable) and Connected."
    )
    agents: list[AgentStatus] = Field(
        default_factory=list, description="Agents enrolled for this environment."
    )
    agents_connected: str | None = Field(
        default=None, description="Agents connected/enrolled, e.g. 2/3; empty in direct mode."
    )
    object_counts: dict[str, int] = Field(
        default_factory=dict, description="Objects found by the last discovery, by type."
    )
    objects: int | None = Field(default=None, description="All objects found by discovery.")
    last_discovery: Timestamp | None = Field(
        default=None, description="When the last successful discovery finished."
    )
    active_discovery: DiscoveryRun | None = Field(
        default=None, description="The discovery in progress."
    )
    discovery: DiscoveryRun | None = Field(default=None, description="The latest discovery.")
    next_discovery_time: Timestamp | None = Field(
        default=None, description="When the next scheduled discovery starts."
    )
    last_watermark_reset: str | None = Field(
        default=None,
        description="Value of the ferry.dev/reset-watermark annotation last acted on.",
    )


class TemplateStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready: every expression compiles."
    )


class DevicePhase(StrEnum):
    """Where one device is in its migration."""

    PENDING = "Pending"              # no device agent yet, or its wave has not started
    READY = "Ready"                  # prepared; waiting for its wave's cutover
    REACL = "ReACL"
    CACHING_CREDENTIALS = "CachingCredentials"
    JOINING = "Joining"
    REBOOTING = "Rebooting"
    DONE = "Done"
    FAILED = "Failed"
    ROLLING_BACK = "RollingBack"
    ROLLED_BACK = "RolledBack"


class MigrationPhase(StrEnum):
    """The whole DeviceMigration, for its printer column."""

    PENDING = "Pending"        # nothing started
    RUNNING = "Running"
    PAUSED = "Paused"
    COMPLETED = "Completed"    # every device done (or rolled back)
    FAILED = "Failed"          # nothing left to run and some device failed


class ActionState(StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class DeviceActionStatus(StatusModel):
    """One action on one device: its result, when, and what the device said."""

    id: str = Field(description="Action id, e.g. 1-ReACL.")
    action: str = Field(description="The action.")
    state: ActionState = Field(description="Pending, Running, Succeeded or Failed.")
    time: Timestamp | None = Field(default=None, description="When it finished.")
    attempts: int = Field(default=0, description="Times the device ran it.")
    message: str | None = Field(default=None, description="The device's report.")


class DeviceStatus(StatusModel):
    name: str = Field(description="Computer name.")
    wave: str = Field(description="Wave the device belongs to.")
    phase: DevicePhase = Field(description="Where the device is.")
    message: str | None = Field(default=None, description="Why, for people.")
    actions: list[DeviceActionStatus] = Field(default_factory=list, description="Per action.")
    retries: int = Field(default=0, description="Retries requested for this device.")
    agent: str | None = Field(default=None, description="Its device agent's id.")
    last_contact: Timestamp | None = Field(default=None, description="Its agent's last poll.")


class WaveStatus(StatusModel):
    name: str = Field(description="Wave name.")
    cutover: Timestamp | None = Field(default=None, description="When cutover actions start.")
    paused: bool = Field(default=False, description="Held by spec.")
    total: int = Field(default=0, description="Devices in the wave.")
    done: int = Field(default=0, description="Devices done.")
    failed: int = Field(default=0, description="Devices failed.")
    rolled_back: int = Field(default=0, description="Devices rolled back.")


class DeviceMigrationStatus(StatusModel):
    observed_generation: int | None = Field(
        default=None, description="metadata.generation the operator last acted on."
    )
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready (spec and references usable) and Progressing.")
    phase: MigrationPhase | None = Field(
        default=None, description="Pending, Running, Paused, Completed or Failed.")
    devices_done: int = Field(default=0, description="Devices that finished every action.")
    devices_failed: int = Field(default=0, description="Devices whose last action failed.")
    devices_rolled_back: int = Field(default=0, description="Devices rolled back.")
    devices_total: int = Field(default=0, description="Devices in all waves.")
    progress: str | None = Field(default=None, description="Devices done/total, e.g. 12/40.")
    current_wave: str | None = Field(default=None, description="First wave not finished.")
    sid_translations: int = Field(default=0, description="Entries in the SID table.")
    unmatched_devices: list[str] = Field(
        default_factory=list, description="Enrolled device agents no wave selects (first 20).")
    waves: list[WaveStatus] = Field(default_factory=list, description="Per wave.")
    devices: list[DeviceStatus] = Field(
        default_factory=list, description="Per device (at most 500: failed and active first;"
        " `ferry devices list` shows all).")
    handled_retry: str | None = Field(
        default=None, description="The ferry.dev/retry-devices value last acted on.")
