"""DeviceMigration: move workstations between domains through device agents."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ferry.api.base import (
    NAME_PATTERN,
    ApiModel,
    CrdNames,
    PrinterColumn,
    Resource,
    cel,
    validations,
)
from ferry.api.status import DeviceMigrationStatus


class DeviceAction(StrEnum):
    REACL = "ReACL"
    CACHE_CREDENTIALS = "CacheCredentials"
    OFFLINE_DOMAIN_JOIN = "OfflineDomainJoin"
    DOMAIN_JOIN = "DomainJoin"
    ENTRA_JOIN = "EntraJoin"
    REBOOT = "Reboot"
    UPLOAD_LOGS = "UploadLogs"


class Wave(ApiModel):
    """Devices that move together."""

    name: str = Field(max_length=63, description="Wave name.")
    devices: list[str] = Field(default_factory=list, description="Device names in this wave.")
    cutover: str | None = Field(default=None, description="RFC 3339 time the wave cuts over.")


class DeviceMigrationSpec(ApiModel):
    """Which devices move, from where to where, and what is done on each."""

    model_config = validations(
        cel("self.source != self.target", "source and target must be different environments"),
    )

    source: str = Field(pattern=NAME_PATTERN, description="Environment the devices leave.")
    target: str = Field(pattern=NAME_PATTERN, description="Environment the devices join.")
    workflow: str = Field(
        pattern=NAME_PATTERN, description="Workflow whose user and group matches drive ReACL."
    )
    actions: list[DeviceAction] = Field(
        min_length=1, description="Actions run on each device, in order."
    )
    waves: list[Wave] = Field(default_factory=list, description="Waves of devices, in order.")

    @model_validator(mode="after")
    def _distinct(self) -> DeviceMigrationSpec:
        if self.source == self.target:
            raise ValueError("source and target must be different environments")
        return self


class DeviceMigration(Resource):
    """Move workstations between domains through device agents, in waves."""

    kind: Literal["DeviceMigration"]
    spec: DeviceMigrationSpec = Field(description="The devices and what to do on each.")
    status: DeviceMigrationStatus | None = Field(default=None, description="Set by Ferry.")

    crd: ClassVar[CrdNames] = CrdNames(
        plural="devicemigrations",
        short_names=("fdm",),
        columns=(
            PrinterColumn("Phase", ".status.phase"),
            PrinterColumn("Devices", ".status.progress", description="Devices done/total."),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
