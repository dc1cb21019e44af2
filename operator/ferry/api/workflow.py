"""Workflow: ordered sync steps between environments, on a schedule."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ferry.api.base import (
    NAME_PATTERN,
    ApiModel,
    CrdNames,
    PrinterColumn,
    Resource,
    ValueSource,
    cel,
    validations,
)
from ferry.api.distinguished_name import DistinguishedName
from ferry.api.environment import ScopeObjectType
from ferry.api.errors import quoted
from ferry.api.status import WorkflowStatus

# Bounds keep the API server's CEL cost estimate of the cross-step rules within budget.
MAX_STEPS = 20
MAX_LIST = 16
ObjectName = Annotated[str, Field(max_length=63, pattern=NAME_PATTERN)]

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Schedule(ApiModel):
    """Manual when empty; otherwise every intervalMinutes, or daily at timeOfDay."""

    model_config = validations(cel(
        "!(has(self.intervalMinutes) && has(self.timeOfDay))",
        "set intervalMinutes or timeOfDay, not both",
    ))

    interval_minutes: int | None = Field(
        default=None, ge=15, description="Run every N minutes (at least 15)."
    )
    time_of_day: str | None = Field(
        default=None, pattern=_TIME_OF_DAY.pattern, description="Run daily at HH:MM (24 h)."
    )
    time_zone: str = Field(
        default="UTC",
        max_length=64,
        description="IANA time zone for timeOfDay, e.g. Europe/Berlin.",
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.interval_minutes is not None and self.time_of_day is not None:
            raise ValueError("set intervalMinutes or timeOfDay, not both")
        if self.time_of_day is not None and not _TIME_OF_DAY.match(self.time_of_day):
            raise ValueError(f"timeOfDay must be HH:MM (24 h), not {quoted(self.time_of_day)}")
        return self


class ReadFromStep(ApiModel):
    """Read objects from environments (their scope decides which)."""

    environments: list[ObjectName] = Field(
        min_length=1, max_length=MAX_LIST, description="Environments to read."
    )


class MatchRule(ApiModel):
    """Objects whose attributes are equal (case-insensitive) are the same identity."""

    source_attribute: str = Field(max_length=128, description="Source attribute, e.g. mail.")
    target_attribute: str = Field(
        default="userPrincipalName", max_length=128,
        description="Target attribute compared with it.",
    )
    guest: bool = Field(
        default=False,
        description="Match B2B guests: the source value local@domain, when a domain mapping"
        " of the pair's template covers domain, equals a target userPrincipalName"
        " local_domain#EXT#@tenant. Without a domain mapping nothing matches this way.",
    )


class MatchStep(ApiModel):
    """Join source objects to existing target objects; existing joins always win."""

    source: ObjectName = Field(description="Source environment.")
    target: ObjectName = Field(description="Target environment.")
    rules: list[MatchRule] = Field(
        min_length=1,
        max_length=MAX_LIST,
        description="Tried in order; the first rule with exactly one candidate joins the"
        " objects. Two or more candidates is a conflict and nothing is written.",
    )


class StagePair(ApiModel):
    """Objects of source become desired objects of target."""

    model_config = validations(cel(
        "self.source != self.target", "source and target must be different environments"
    ))

    source: ObjectName = Field(description="Source environment.")
    target: ObjectName = Field(description="Target environment.")
    source_ous: list[DistinguishedName] = Field(
        default_factory=list,
        alias="sourceOUs",
        max_length=MAX_LIST,
        description="Only objects below these DNs; empty: the source's whole scope.",
    )
    filter: str | None = Field(
        default=None, description="CEL expression over `source`; false leaves the object out."
    )
    object_types: list[ScopeObjectType] = Field(
        default_factory=lambda: [
            ScopeObjectType.USERS, ScopeObjectType.GROUPS, ScopeObjectType.CONTACTS
        ],
        min_length=1,
        max_length=4,
        description="Object types this pair syncs.",
    )


class StageDataStep(ApiModel):
    """Turn source objects into desired target objects with a Template."""

    template: ObjectName = Field(description="Template that stages the objects.")
    pairs: list[StagePair] = Field(
        min_length=1, max_length=MAX_LIST, description="Source/target environment pairs."
    )


class WriteToStep(ApiModel):
    """Create, update and move objects in environments a stageData pair targets."""

    environments: list[ObjectName] = Field(
        min_length=1, max_length=MAX_LIST, description="Environments to write."
    )


class DeletePair(ApiModel):
    """A pair whose joined targets are deleted when their source is gone."""

    source: ObjectName = Field(description="Source environment of a stageData pair.")
    target: ObjectName = Field(description="Target environment of that pair.")
    threshold: int = Field(
        default=10,
        ge=0,
        description="Most objects one run may delete in the target; above it none are deleted.",
    )


class DeleteObjectsStep(ApiModel):
    """Delete joined target objects whose source was deleted or left scope."""

    pairs: list[DeletePair] = Field(
        min_length=1, max_length=MAX_LIST, description="Pairs to delete in, each with a threshold."
    )


class ScriptFailure(StrEnum):
    """What a failed or timed-out script does to its run."""

    FAIL = "fail"          # the run fails (later steps do not run)
    CONTINUE = "continue"  # recorded; the run goes on and keeps its result


class ConfigMapKeySelector(ApiModel):
    """A key of a ConfigMap in the object's namespace (outside a cluster: a ConfigMap
    manifest in the same folder)."""

    name: str = Field(max_length=253, description="Name of the ConfigMap.")
    key: str = Field(max_length=253, description="Key within the ConfigMap's data.")


# A script's text travels in the manifest, a ConfigMap or a work item: keep it small.
MAX_SCRIPT_BYTES = 256 * 1024


class ScriptSource(ApiModel):
    """The script's text: inline in the manifest, or a ConfigMap key; never a path on the
    host that runs it."""

    model_config = validations(cel(
        "[has(self.inline), has(self.configMapKeyRef)].exists_one(x, x)",
        "set exactly one of inline or configMapKeyRef",
    ))

    inline: str | None = Field(
        default=None, max_length=MAX_SCRIPT_BYTES, description="The script's text."
    )
    config_map_key_ref: ConfigMapKeySelector | None = Field(
        default=None, description="A ConfigMap key holding the script's text."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ScriptSource:
        if (self.inline is None) == (self.config_map_key_ref is None):
            raise ValueError("set exactly one of inline or configMapKeyRef")
        return self


class ScriptEnvVar(ApiModel):
    """An environment variable for the script: a value, or a secret from valueFrom."""

    model_config = validations(cel(
        "[has(self.value), has(self.valueFrom)].exists_one(x, x)",
        "set exactly one of value or valueFrom",
    ))

    name: str = Field(max_length=128, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                      description="Variable name.")
    value: str | None = Field(default=None, max_length=4096, description="Its value.")
    value_from: ValueSource | None = Field(
        default=None, description="A secret value (Secret key, environment or file)."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ScriptEnvVar:
        if (self.value is None) == (self.value_from is None):
            raise ValueError(f"env {self.name}: set exactly one of value or valueFrom")
        return self


class RunScriptStep(ApiModel):
    """Run a command at this point of the workflow, every run that writes (test mode lists
    it in the plan and does not run it)."""

    model_config = validations(
        cel("!(has(self.image) && has(self.environment))",
            "set image or environment, not both"),
        cel("!has(self.environment) || has(self.script)",
            "a script run on an agent (environment) needs script: the agent runs no host path"),
    )

    command: list[Annotated[str, Field(max_length=4096)]] = Field(
        min_length=1, max_length=32,
        description="Program and arguments; with script, the script file's path is added"
        " last (e.g. [/bin/sh] or [pwsh, -NoProfile, -File]). Never put secrets here: use env.",
    )
    script: ScriptSource | None = Field(
        default=None, description="The script's text, written to a file for the command."
    )
    image: str | None = Field(
        default=None, max_length=512,
        description="In a cluster: run in a Job of its own from this image, which the run"
        " waits for. Unset: in the sync Job's pod (outside a cluster: a local process).",
    )
    environment: ObjectName | None = Field(
        default=None,
        description="Run on an agent of this Environment (on premises, next to the"
        " directory); the agent's INI must allow the command.",
    )
    timeout_seconds: int = Field(
        default=600, ge=1, le=86400, description="Killed and failed after this long."
    )
    on_failure: ScriptFailure = Field(
        default=ScriptFailure.FAIL,
        description="fail: a failed script fails the run; continue: it is recorded and the"
        " run goes on.",
    )
    env: list[ScriptEnvVar] = Field(
        default_factory=list, max_length=32, description="Extra environment variables."
    )

    @model_validator(mode="after")
    def _where(self) -> RunScriptStep:
        if self.image is not None and self.environment is not None:
            raise ValueError("set image or environment, not both")
        if self.environment is not None and self.script is None:
            raise ValueError("a script run on an agent (environment) needs script:"
                             " the agent runs no host path")
        names = [e.name for e in self.env]
        if len(names) != len(set(names)):
            raise ValueError("env names must be unique")
        return self


class AlertOutcome(StrEnum):
    """The run outcomes an alert can be sent for."""

    FAILED = "Failed"
    COMPLETED_WITH_ERRORS = "CompletedWithErrors"
    THRESHOLD_HIT = "ThresholdHit"
    NEW_CONFLICTS = "NewConflicts"     # conflicts the previous run did not have
    RECOVERED = "Recovered"            # the first successful run after one that was not
    SUCCEEDED = "Succeeded"            # off by default


DEFAULT_ALERT_OUTCOMES = (
    AlertOutcome.FAILED, AlertOutcome.COMPLETED_WITH_ERRORS, AlertOutcome.THRESHOLD_HIT,
    AlertOutcome.NEW_CONFLICTS, AlertOutcome.RECOVERED,
)


class WebhookChannel(ApiModel):
    """A JSON POST per alert, signed with HMAC-SHA256 in the X-Ferry-Signature header."""

    url: str = Field(max_length=2048, pattern=r"^https?://", description="Where to POST.")
    signing_key: ValueSource = Field(description="The HMAC key (a Secret key, env or file).")
    ca_file: str | None = Field(
        default=None, max_length=1024, description="CA bundle for an https URL (PEM file)."
    )


class SmtpServer(ApiModel):
    """An SMTP submission server."""

    model_config = validations(
        cel("has(self.username) == has(self.password)",
            "smtp: set both username and password, or neither"),
        cel("!has(self.password) || self.startTLS",
            "smtp: a password is only sent after STARTTLS: set startTLS: true"),
    )

    host: str = Field(max_length=253, description="Host name or address.")
    port: int = Field(default=587, ge=1, le=65535, description="Port (587: submission).")
    start_tls: bool = Field(
        default=True, alias="startTLS", description="Upgrade with STARTTLS before logging in."
    )
    username: str | None = Field(default=None, max_length=256, description="Login name.")
    password: ValueSource | None = Field(default=None, description="Login password.")
    ca_file: str | None = Field(
        default=None, max_length=1024, description="CA bundle for STARTTLS (PEM file)."
    )

    @model_validator(mode="after")
    def _login(self) -> SmtpServer:
        if (self.username is None) != (self.password is None):
            raise ValueError("smtp: set both username and password, or neither")
        if self.password is not None and not self.start_tls:
            raise ValueError("smtp: a password is only sent after STARTTLS: set startTLS: true")
        return self


class EmailChannel(ApiModel):
    """An e-mail per alert."""

    to: list[Annotated[str, Field(max_length=320)]] = Field(
        min_length=1, max_length=MAX_LIST, description="Recipients."
    )
    from_address: str = Field(alias="from", max_length=320, description="Sender address.")
    smtp: SmtpServer = Field(description="The server that sends it.")


class Alert(ApiModel):
    """Who hears about which run outcomes (Kubernetes Events are always posted)."""

    model_config = validations(cel(
        "[has(self.webhook), has(self.email)].exists_one(x, x)",
        "set exactly one of webhook or email",
    ))

    name: ObjectName = Field(description="Name of this alert, unique in the Workflow.")
    on: list[AlertOutcome] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_OUTCOMES), min_length=1, max_length=6,
        description="Outcomes that send it; default all but Succeeded.",
    )
    webhook: WebhookChannel | None = Field(default=None, description="A webhook.")
    email: EmailChannel | None = Field(default=None, description="E-mail over SMTP.")

    @model_validator(mode="after")
    def _one_channel(self) -> Alert:
        if (self.webhook is None) == (self.email is None):
            raise ValueError(f"alert {self.name}: set exactly one of webhook or email")
        return self


STEP_KINDS = ("readFrom", "match", "stageData", "writeTo", "deleteObjects", "runScript")


class Step(ApiModel):
    """One workflow step: set exactly one of the step fields."""

    model_config = validations(cel(
        "[has(self.readFrom), has(self.match), has(self.stageData), has(self.writeTo),"
        " has(self.deleteObjects), has(self.runScript)].exists_one(x, x)",
        f"a step sets exactly one of {', '.join(STEP_KINDS)}",
    ))

    name: str | None = Field(default=None, max_length=63, description="Label for logs.")
    read_from: ReadFromStep | None = Field(default=None, description="Read environments.")
    match: MatchStep | None = Field(default=None, description="Join sources to targets.")
    stage_data: StageDataStep | None = Field(
        default=None, description="Build desired target objects."
    )
    write_to: WriteToStep | None = Field(default=None, description="Write to environments.")
    delete_objects: DeleteObjectsStep | None = Field(
        default=None, description="Delete targets whose source is gone."
    )
    run_script: RunScriptStep | None = Field(default=None, description="Run a command.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Step:
        chosen = [k for k in STEP_KINDS if getattr(self, _snake(k)) is not None]
        if len(chosen) != 1:
            raise ValueError(f"a step sets exactly one of {', '.join(STEP_KINDS)}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in STEP_KINDS if getattr(self, _snake(k)) is not None)


class WorkflowSpec(ApiModel):
    """Ordered steps; each run reads, matches, stages, writes and deletes in that order."""

    model_config = validations(
        cel(
            "self.steps.all(s, !has(s.match) || [s.match.source, s.match.target].all(e,"
            " self.steps.exists(r, has(r.readFrom) && e in r.readFrom.environments"
            " && self.steps.indexOf(r) < self.steps.indexOf(s))))",
            "a match step needs an earlier readFrom step reading its source and its target",
        ),
        cel(
            "self.steps.all(s, !has(s.stageData) || s.stageData.pairs.all(p,"
            " [p.source, p.target].all(e, self.steps.exists(r, has(r.readFrom)"
            " && e in r.readFrom.environments"
            " && self.steps.indexOf(r) < self.steps.indexOf(s)))))",
            "a stageData pair needs an earlier readFrom step reading its source and its target",
        ),
        cel(
            "self.steps.all(s, !has(s.writeTo) || s.writeTo.environments.all(e,"
            " self.steps.exists(t, has(t.stageData) && t.stageData.pairs.exists(p, p.target == e)"
            " && self.steps.indexOf(t) < self.steps.indexOf(s))))",
            "writeTo may only write environments that an earlier stageData pair targets",
        ),
        cel(
            "self.steps.all(s, !has(s.deleteObjects) || s.deleteObjects.pairs.all(d,"
            " self.steps.exists(t, has(t.stageData) && t.stageData.pairs.exists(p,"
            " p.source == d.source && p.target == d.target)"
            " && self.steps.indexOf(t) < self.steps.indexOf(s))))",
            "deleteObjects may only name source/target pairs of an earlier stageData step",
        ),
        cel(
            "(has(self.testMode) && self.testMode) || self.steps.all(t, !has(t.stageData)"
            " || t.stageData.pairs.all(p, self.steps.exists(w, has(w.writeTo)"
            " && p.target in w.writeTo.environments)))",
            "every stageData target needs a writeTo step (or set testMode: true)",
        ),
    )

    steps: list[Step] = Field(
        min_length=1, max_length=MAX_STEPS, description="The steps, run in order."
    )
    schedule: Schedule = Field(
        default_factory=Schedule, description="When runs start; empty: only on request."
    )
    test_mode: bool = Field(default=False, description="Plan only: nothing is written anywhere.")
    changed_objects_only: bool = Field(
        default=False,
        description="Process only objects changed since the last run (and earlier failures).",
    )
    suspend: bool = Field(default=False, description="Stop scheduling new runs.")
    alerts: list[Alert] = Field(
        default_factory=list, max_length=MAX_LIST,
        description="Webhooks and e-mails sent for run outcomes, once per run and outcome.",
    )

    @model_validator(mode="after")
    def _unique_alerts(self) -> WorkflowSpec:
        names = [a.name for a in self.alerts]
        if len(names) != len(set(names)):
            raise ValueError("spec.alerts: names must be unique")
        return self

    def steps_of(self, kind: str) -> list[tuple[int, Step]]:
        return [(i, s) for i, s in enumerate(self.steps) if s.kind == kind]


class Workflow(Resource):
    """Sync steps between environments, run as a Kubernetes Job on a schedule or on request."""

    kind: Literal["Workflow"]
    spec: WorkflowSpec = Field(description="What the workflow does and when.")
    status: WorkflowStatus | None = Field(default=None, description="Set by Ferry.")

    crd: ClassVar[CrdNames] = CrdNames(
        plural="workflows",
        short_names=("fwf",),
        columns=(
            PrinterColumn("Schedule", ".status.schedule"),
            PrinterColumn("Last Run", ".status.lastRun.startTime", "date"),
            PrinterColumn("Result", ".status.lastRun.result"),
            PrinterColumn("Created", ".status.lastRun.counts.created", "integer"),
            PrinterColumn("Updated", ".status.lastRun.counts.updated", "integer"),
            PrinterColumn("Deleted", ".status.lastRun.counts.deleted", "integer"),
            PrinterColumn("Next Run", ".status.nextRunTime", priority=1),
            PrinterColumn("Message", ".status.lastRun.message", priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", camel).lower()
