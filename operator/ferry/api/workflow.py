"""Workflow: ordered sync steps between environments, on a schedule."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from ferry.api.base import ApiModel, Resource
from ferry.api.environment import ScopeObjectType

_TIME_OF_DAY = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class Schedule(ApiModel):
    """Manual when empty; otherwise every intervalMinutes, or daily at timeOfDay."""

    interval_minutes: int | None = Field(
        default=None, ge=15, description="Run every N minutes (at least 15)."
    )
    time_of_day: str | None = Field(default=None, description="Run daily at HH:MM.")
    time_zone: str = Field(default="UTC", description="IANA time zone for timeOfDay.")

    @model_validator(mode="after")
    def _one_kind(self) -> Schedule:
        if self.interval_minutes is not None and self.time_of_day is not None:
            raise ValueError("set intervalMinutes or timeOfDay, not both")
        if self.time_of_day is not None and not _TIME_OF_DAY.match(self.time_of_day):
            raise ValueError(f"timeOfDay must be HH:MM (24 h), not {self.time_of_day!r}")
        return self


class ReadFromStep(ApiModel):
    environments: list[str] = Field(min_length=1, description="Environments to read.")


class MatchRule(ApiModel):
    source_attribute: str = Field(description="Source attribute, e.g. mail.")
    target_attribute: str = Field(description="Target attribute compared with it.")


class MatchStep(ApiModel):
    source: str = Field(description="Source environment.")
    target: str = Field(description="Target environment.")
    rules: list[MatchRule] = Field(
        min_length=1,
        description="Tried in order; the first rule with exactly one candidate joins the"
        " objects. Two or more candidates is a conflict and nothing is written.",
    )


class StagePair(ApiModel):
    source: str = Field(description="Source environment.")
    target: str = Field(description="Target environment.")
    source_ous: list[str] = Field(
        default_factory=list, alias="sourceOUs", description="Only objects below these DNs."
    )
    filter: str | None = Field(
        default=None, description="CEL expression over `source`; false leaves the object out."
    )
    object_types: list[ScopeObjectType] = Field(
        default_factory=lambda: [
            ScopeObjectType.USERS, ScopeObjectType.GROUPS, ScopeObjectType.CONTACTS
        ],
        min_length=1,
    )


class StageDataStep(ApiModel):
    template: str = Field(description="Template that stages the objects.")
    pairs: list[StagePair] = Field(min_length=1)


class WriteToStep(ApiModel):
    environments: list[str] = Field(min_length=1, description="Environments to write.")


class DeletePair(ApiModel):
    source: str
    target: str
    threshold: int = Field(
        default=10,
        ge=0,
        description="Most objects one run may delete in the target; above it none are deleted.",
    )


class DeleteObjectsStep(ApiModel):
    pairs: list[DeletePair] = Field(min_length=1)


class RunScriptStep(ApiModel):
    image: str | None = Field(default=None, description="Container image (in-cluster runs).")
    command: list[str] = Field(min_length=1, description="Command and arguments.")


STEP_KINDS = ("readFrom", "match", "stageData", "writeTo", "deleteObjects", "runScript")


class Step(ApiModel):
    """One workflow step: set exactly one of the step fields."""

    name: str | None = None
    read_from: ReadFromStep | None = None
    match: MatchStep | None = None
    stage_data: StageDataStep | None = None
    write_to: WriteToStep | None = None
    delete_objects: DeleteObjectsStep | None = None
    run_script: RunScriptStep | None = None

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
    steps: list[Step] = Field(min_length=1)
    schedule: Schedule = Field(default_factory=Schedule)
    test_mode: bool = Field(default=False, description="Plan only: nothing is written anywhere.")
    changed_objects_only: bool = Field(
        default=False,
        description="Process only objects changed since the last run (and earlier failures).",
    )
    suspend: bool = Field(default=False, description="Stop scheduling new runs.")

    def steps_of(self, kind: str) -> list[tuple[int, Step]]:
        return [(i, s) for i, s in enumerate(self.steps) if s.kind == kind]


class Workflow(Resource):
    kind: Literal["Workflow"]
    spec: WorkflowSpec


def _snake(camel: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", camel).lower()
