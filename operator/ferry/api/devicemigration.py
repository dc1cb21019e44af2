"""DeviceMigration: move workstations between domains through device agents, in waves."""

from __future__ import annotations

from datetime import datetime
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
from ferry.api.status import DeviceMigrationStatus
from ferry_agent.device.outcome import ReaclMode, ReaclScope

# A computer's NetBIOS name: what sAMAccountName holds without its "$".
DEVICE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9-]{0,14}$"
LABEL_KEY_PATTERN = r"^([a-z0-9.-]{1,253}/)?[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$"
DeviceName = Annotated[str, Field(pattern=DEVICE_NAME_PATTERN)]


class DeviceAction(StrEnum):
    REACL = "ReACL"
    CACHE_CREDENTIALS = "CacheCredentials"
    OFFLINE_DOMAIN_JOIN = "OfflineDomainJoin"
    DOMAIN_JOIN = "DomainJoin"
    ENTRA_JOIN = "EntraJoin"
    REBOOT = "Reboot"
    UPLOAD_LOGS = "UploadLogs"


# Actions that change what the device is joined to, or restart it: they wait for the wave's
# cutover; the others prepare the device as soon as its wave may start.
CUTOVER_ACTIONS = frozenset({DeviceAction.DOMAIN_JOIN, DeviceAction.OFFLINE_DOMAIN_JOIN,
                             DeviceAction.ENTRA_JOIN, DeviceAction.REBOOT})
JOIN_ACTIONS = frozenset({DeviceAction.DOMAIN_JOIN, DeviceAction.OFFLINE_DOMAIN_JOIN,
                          DeviceAction.ENTRA_JOIN})


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelRequirement(ApiModel):
    """One matchExpressions entry, as in metav1.LabelSelector."""

    key: str = Field(pattern=LABEL_KEY_PATTERN, description="Label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[str] = Field(default_factory=list, description="Values for In and NotIn.")

    @model_validator(mode="after")
    def _values_fit(self) -> LabelRequirement:
        needs = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs and not self.values:
            raise ValueError(f"operator {self.operator} needs at least one value")
        if not needs and self.values:
            raise ValueError(f"operator {self.operator} takes no values")
        return self


class LabelSelector(ApiModel):
    """Devices by the labels their agents report (plus ferry.dev/os), as metav1.LabelSelector."""

    match_labels: dict[str, str] = Field(default_factory=dict, description="Exact labels.")
    match_expressions: list[LabelRequirement] = Field(
        default_factory=list, description="Label requirements, all of which must hold.")

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        if not self.match_labels and not self.match_expressions:
            raise ValueError("an empty selector would take every device: give matchLabels or"
                             " matchExpressions")
        return self


class DeviceSelection(ApiModel):
    """Which devices: by name, by label selector, or by the source OU of their computer
    account (as the source Environment's discovery found it); any of them selects."""

    names: list[DeviceName] = Field(
        default_factory=list, description="Computer names (NetBIOS, as sAMAccountName without $).")
    selector: LabelSelector | None = Field(
        default=None, description="Labels of enrolled device agents.")
    ous: list[DistinguishedName] = Field(
        default_factory=list, description="Source OUs whose computer accounts (and those"
        " below) are selected; from the source Environment's discovery.")

    @property
    def empty(self) -> bool:
        return not self.names and self.selector is None and not self.ous


class Wave(ApiModel):
    """Devices that move together; cutover actions wait for `cutover`."""

    name: str = Field(pattern=NAME_PATTERN, max_length=63, description="Wave name.")
    devices: list[DeviceName] = Field(
        default_factory=list, description="Computer names in this wave.")
    selector: LabelSelector | None = Field(default=None, description="Devices by labels.")
    ous: list[DistinguishedName] = Field(
        default_factory=list, description="Devices by source OU.")
    cutover: datetime | None = Field(
        default=None, description="RFC 3339 time from which the wave's devices join the"
        " target and reboot; unset: at once. Preparation (ReACL, caching) starts earlier.")
    paused: bool = Field(
        default=False, description="Hold the wave: no device starts its next action.")

    @property
    def selection(self) -> DeviceSelection:
        return DeviceSelection(names=self.devices, selector=self.selector, ous=self.ous)


class ReaclOptions(ApiModel):
    mode: ReaclMode = Field(
        default=ReaclMode.ADD, description="add keeps source SIDs beside the target ones (a"
        " rollback needs nothing undone), replace swaps them, remove drops the source's.")
    scopes: list[ReaclScope] = Field(
        default_factory=lambda: list(ReaclScope),
        description="Files, Registry, Profiles, LocalGroups (default: all).")


class JoinOptions(ApiModel):
    target_ou: DistinguishedName | None = Field(
        default=None, alias="targetOU", description="OU the computer account is staged in"
        " (default: the target domain's Computers container).")
    domain_controller: str | None = Field(
        default=None, description="Target DC the device joins through (default: the target"
        " Environment's host).")


class CacheCredentialsOptions(ApiModel):
    users: list[str] = Field(
        default_factory=list, description="Target sAMAccountNames whose logon is cached;"
        " default: the users whose profiles the device has.")
    timeout_seconds: int = Field(
        default=3600, ge=60, le=7 * 86400, description="How long the device waits for them.")


class EntraJoinOptions(ApiModel):
    package: ValueSource = Field(
        description="The provisioning package (.ppkg with its bulk enrollment token),"
        " base64-encoded; sealed to each device's own key, never stored in clear.")


class DeviceMigrationOptions(ApiModel):
    reacl: ReaclOptions = Field(default_factory=ReaclOptions, description="Security translation.")
    join: JoinOptions = Field(default_factory=JoinOptions, description="Where devices join.")
    cache_credentials: CacheCredentialsOptions = Field(
        default_factory=CacheCredentialsOptions, description="Cached target logons.")
    entra_join: EntraJoinOptions | None = Field(default=None, description="For EntraJoin.")
    reboot_delay_seconds: int = Field(
        default=300, ge=0, le=86400, description="Notice before a Reboot action restarts.")
    reboot_notice: str = Field(
        default="This computer restarts to finish moving to the new domain.",
        max_length=500, description="What logged-on users are told before a reboot.")
    keep_source_account: bool = Field(
        default=True, description="Leave the source computer account enabled, so a device"
        " can roll back; false: disabled once the device joined the target.")


class DeviceMigrationSpec(ApiModel):
    """Which devices move, from where to where, and what is done on each."""

    model_config = validations(
        cel("self.source != self.target", "source and target must be different environments"),
    )

    source: str = Field(pattern=NAME_PATTERN, description="Environment the devices leave.")
    target: str = Field(pattern=NAME_PATTERN, description="Environment the devices join.")
    workflow: str = Field(
        pattern=NAME_PATTERN, description="Workflow whose user and group matches (source to"
        " target) make the SID translation table.")
    actions: list[DeviceAction] = Field(
        min_length=1, description="Actions run on each device, in order.")
    waves: list[Wave] = Field(min_length=1, description="Waves of devices, in order; a"
                              " device belongs to the first wave that selects it.")
    options: DeviceMigrationOptions = Field(
        default_factory=DeviceMigrationOptions, description="How the actions run.")
    paused: bool = Field(default=False, description="Hold every wave.")

    @model_validator(mode="after")
    def _consistent(self) -> DeviceMigrationSpec:
        if self.source == self.target:
            raise ValueError("source and target must be different environments")
        if len(set(self.actions)) != len(self.actions):
            raise ValueError("actions: each action at most once")
        joins = [a for a in self.actions if a in JOIN_ACTIONS]
        if len(joins) > 1:
            raise ValueError(f"actions: {' and '.join(joins)} both join the device; keep one"
                             " (DomainJoin online, OfflineDomainJoin from a staged blob)")
        if DeviceAction.ENTRA_JOIN in self.actions and self.options.entra_join is None:
            raise ValueError("actions: EntraJoin needs options.entraJoin.package (the"
                             " provisioning package)")
        names = [w.name for w in self.waves]
        if len(set(names)) != len(names):
            raise ValueError("waves: wave names must be unique")
        for wave in self.waves:
            if wave.selection.empty:
                raise ValueError(f"waves[{wave.name}]: select devices by devices, selector"
                                 " or ous")
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
            PrinterColumn("Failed", ".status.devicesFailed", "integer"),
            PrinterColumn("Wave", ".status.currentWave", priority=1),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
