"""DeviceMigration: move workstations between domains through device agents."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from ferry.api.base import ApiModel, Resource


class DeviceAction(StrEnum):
    REACL = "ReACL"
    CACHE_CREDENTIALS = "CacheCredentials"
    OFFLINE_DOMAIN_JOIN = "OfflineDomainJoin"
    DOMAIN_JOIN = "DomainJoin"
    ENTRA_JOIN = "EntraJoin"
    REBOOT = "Reboot"
    UPLOAD_LOGS = "UploadLogs"


class Wave(ApiModel):
    name: str
    devices: list[str] = Field(default_factory=list, description="Device names in this wave.")
    cutover: str | None = Field(default=None, description="RFC 3339 time the wave cuts over.")


class DeviceMigrationSpec(ApiModel):
    source: str = Field(description="Environment the devices leave.")
    target: str = Field(description="Environment the devices join.")
    workflow: str = Field(description="Workflow whose user and group matches drive ReACL.")
    actions: list[DeviceAction] = Field(
        min_length=1, description="Actions run on each device, in order."
    )
    waves: list[Wave] = Field(default_factory=list)


class DeviceMigration(Resource):
    kind: Literal["DeviceMigration"]
    spec: DeviceMigrationSpec
