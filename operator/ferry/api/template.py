"""Template: reusable rules that turn a source object into the desired target object."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ferry.api.base import ApiModel, CrdNames, PrinterColumn, Resource, ValueSource
from ferry.api.distinguished_name import DistinguishedName
from ferry.api.environment import (
    ConnectionMode,
    DirectoryType,
    EnvironmentSpec,
    ScopeObjectType,
)
from ferry.api.status import TemplateStatus
from ferry_agent.dn import DNError, is_under


class ApplyWhen(StrEnum):
    ALWAYS = "Always"
    ON_CREATE = "OnCreate"
    WHEN_EMPTY = "WhenEmpty"


class AttributeMapping(ApiModel):
    """How one target attribute gets its value."""

    target: str = Field(description="Target attribute to set.")
    expression: str = Field(
        description="CEL expression over `source` (the source attributes), `dn` and `objectType`;"
        " null leaves the attribute empty.",
        min_length=1,
    )
    apply: ApplyWhen = Field(
        default=ApplyWhen.ALWAYS,
        description="Always: every run. OnCreate: only when creating. WhenEmpty: only when the"
        " target attribute has no value.",
    )
    object_types: list[ScopeObjectType] = Field(
        default_factory=list, description="Object types this mapping applies to; empty: all."
    )


class DomainMapping(ApiModel):
    """A source domain and the domain it becomes in the target."""

    source: str = Field(description="Source domain, e.g. contoso.com.")
    target: str = Field(description="Domain it becomes in the target, e.g. fabrikam.com.")


class OuMapping(ApiModel):
    """Objects below a source OU go to a target OU."""

    source_ou: DistinguishedName = Field(alias="sourceOU", description="Source container (DN).")
    target_ou: DistinguishedName = Field(alias="targetOU",
                                         description="Target container (DN) objects go to.")


class TargetOu(ApiModel):
    """Where created objects are placed."""

    default: DistinguishedName = Field(
        description="Container for objects no mapping covers (DN).")
    mappings: list[OuMapping] = Field(
        default_factory=list, description="Per source OU placement; the deepest match wins."
    )


class TypeSwitch(ApiModel):
    """What Ferry may do to objects of one type."""

    create: bool = Field(default=True, description="Create unmatched objects of this type.")
    update: bool = Field(default=True, description="Update matched objects of this type.")
    delete: bool = Field(default=True, description="Allow DeleteObjects for this type.")


class ObjectTypeSwitches(ApiModel):
    """Create, update and delete switches per object type."""

    users: TypeSwitch = Field(default_factory=TypeSwitch, description="User accounts.")
    groups: TypeSwitch = Field(default_factory=TypeSwitch, description="Groups.")
    contacts: TypeSwitch = Field(default_factory=TypeSwitch, description="Mail contacts.")
    devices: TypeSwitch = Field(
        default_factory=lambda: TypeSwitch(create=False, update=False),
        description="Computer objects; off by default (devices move with DeviceMigration).",
    )


class PasswordSyncMode(StrEnum):
    OFF = "Off"
    REPLICATION = "Replication"   # NT hashes read by directory replication, set over SAMR
    DC_AGENT = "DCAgent"          # changes caught on the source DCs by Ferry's DC agent


class PasswordSync(ApiModel):
    """Users keep their source password in the target (Active Directory to Active Directory)."""

    mode: PasswordSyncMode = Field(
        default=PasswordSyncMode.OFF,
        description="Off: created users get an initial password (value, or a random one)."
        " Replication: each run reads the NT hashes of users whose password changed (all on"
        " the first run) from the source by directory replication (the source account needs"
        " Replicating Directory Changes and Replicating Directory Changes All on the domain),"
        " and sets them on their joined target users over SAMR on SMB (the target account"
        " needs Reset Password on the target OU); users Ferry creates get their source"
        " password. A hash-only set gives the target the NT hash and the RC4 Kerberos key:"
        " AES-only Kerberos clients work again after the user's next password change."
        " DCAgent: all of Replication on each run, and besides Ferry's agent on each source"
        " DC ([dc] password_changes in its configuration) sends every change within"
        " seconds, which the target's agents set as the user's password (so the target"
        " computes every key, AES included).",
    )


class PasswordOptions(ApiModel):
    """Initial passwords of created users, or the source password kept (sync)."""

    value: ValueSource | None = Field(
        default=None,
        description="Initial password for created users. Unset: each created user gets its own"
        " random password meeting AD complexity, never stored or shown.",
    )
    must_change_at_next_logon: bool = Field(
        default=True, description="Require created users to change the password at next"
        " sign-in. With sync, users keep their own password, so it must not be set to true.",
    )
    sync: PasswordSync = Field(
        default_factory=PasswordSync,
        description="Keep users' source passwords in the target instead.",
    )

    @property
    def synced(self) -> bool:
        return self.sync.mode is not PasswordSyncMode.OFF

    @property
    def must_change(self) -> bool:
        """Whether created users must change their password: never when it is synced."""
        return self.must_change_at_next_logon and not self.synced

    @model_validator(mode="after")
    def _sync_keeps_the_password(self) -> PasswordOptions:
        if self.synced and "must_change_at_next_logon" in self.model_fields_set \
                and self.must_change_at_next_logon:
            raise ValueError(
                f"sync.mode {self.sync.mode.value} keeps each user's source password, so"
                " mustChangeAtNextLogon: true would make them change it at once; remove"
                " mustChangeAtNextLogon or set it to false")
        if self.synced and self.value is not None:
            raise ValueError(f"sync.mode {self.sync.mode.value} gives created users their"
                             " source password; remove value")
        return self


class SidHistoryObjectType(StrEnum):
    USERS = "users"
    GROUPS = "groups"


class SidHistoryOptions(ApiModel):
    """Source objectSids in the target's sIDHistory (Active Directory to Active Directory), so
    resources the source domain granted keep working before and after they are ReACL'd."""

    enabled: bool = Field(
        default=False,
        description="Add each joined source object's objectSid to its target's sIDHistory,"
        " once. On Samba this is done by the target Environment's agents on its DCs"
        " (connection: agent, [dc] smb_conf in the agent's configuration); AD offers no"
        " LDAP way.",
    )
    object_types: list[SidHistoryObjectType] = Field(
        default_factory=lambda: [SidHistoryObjectType.USERS, SidHistoryObjectType.GROUPS],
        min_length=1, description="Which object types get sIDHistory.",
    )


class GuestOptions(ApiModel):
    """Entra ID targets: B2B guests for coexistence, and their conversion to members."""

    create_unmatched_as_guests: bool = Field(
        default=False,
        description="Create unmatched users as B2B guests homed in their source tenant,"
        " through the invitations API, without sending an invitation (`ferry guests invite`"
        " sends them later). While set, a user's userPrincipalName and mail are set only when"
        " it is created: a guest keeps its B2B addresses.",
    )
    show_in_address_list: bool = Field(
        default=True, description="Guests Ferry creates appear in the global address list."
    )
    convert_to_members: bool = Field(
        default=False,
        description="Turn matched guests into members (userType Member, the mapped"
        " userPrincipalName and mail); they keep their object id, groups and access.",
    )
    invite_redirect_url: str = Field(
        default="https://myapps.microsoft.com", pattern=r"^https://",
        description="Where an invited guest lands after redeeming the invitation.",
    )


class TemplateSpec(ApiModel):
    """Staging rules shared by workflows."""

    include_default_mappings: bool = Field(
        default=True,
        description="Start from Ferry's built-in mappings (names, mail, UPN, org attributes);"
        " attributeMappings override them per target attribute.",
    )
    attribute_mappings: list[AttributeMapping] = Field(
        default_factory=list, description="Target attributes and the expressions that fill them."
    )
    domain_mappings: list[DomainMapping] = Field(
        default_factory=list,
        description="Rewrite domains in userPrincipalName, mail and proxyAddresses.",
    )
    target_ou: TargetOu | None = Field(
        default=None, alias="targetOU",
        description="Where created objects go in Active Directory; required when a pair"
        " using this template writes Active Directory (Entra ID has no containers).",
    )
    object_types: ObjectTypeSwitches = Field(
        default_factory=ObjectTypeSwitches, description="What may be done per object type."
    )
    password: PasswordOptions = Field(
        default_factory=PasswordOptions, description="Initial passwords of created users."
    )
    mirror_account_state: bool = Field(
        default=True, description="Disable target users whose source is disabled, and back."
    )
    guests: GuestOptions = Field(
        default_factory=GuestOptions, description="Entra ID targets: B2B guest users."
    )
    sid_history: SidHistoryOptions = Field(
        default_factory=SidHistoryOptions, alias="sidHistory",
        description="Active Directory to Active Directory: source SIDs in sIDHistory.",
    )


class Template(Resource):
    """Rules that turn a source object into the desired target object."""

    kind: Literal["Template"]
    spec: TemplateSpec = Field(description="The staging rules.")
    status: TemplateStatus | None = Field(default=None, description="Set by Ferry.")

    crd: ClassVar[CrdNames] = CrdNames(
        plural="templates",
        short_names=("ftpl",),
        columns=(
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn(
                "Message", '.status.conditions[?(@.type=="Ready")].message', priority=1
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )


def placement_problems(template: str, spec: TemplateSpec, target: str,
                       environment: EnvironmentSpec) -> list[str]:
    """Why the Template would place objects outside what the target Environment reads, one
    message per targetOU (default, mappings); none for a target without containers."""
    # Objects created outside the scope are never read back: each later run would try to
    # create them again and fail (entryAlreadyExists), forever.
    ad = environment.active_directory
    if environment.type is not DirectoryType.ACTIVE_DIRECTORY or spec.target_ou is None \
            or ad is None:
        return []
    scope = environment.scope.ous or [ad.base_dn]
    shown = "spec.scope.ous" if environment.scope.ous else "its baseDN (no spec.scope.ous)"
    placements = [("spec.targetOU.default", spec.target_ou.default)]
    placements += [(f"spec.targetOU.mappings[{i}].targetOU", m.target_ou)
                   for i, m in enumerate(spec.target_ou.mappings)]
    problems: list[str] = []
    for path, dn in placements:
        try:
            inside = any(is_under(dn, container) for container in scope)
        except DNError as exc:
            problems.append(f"Template {template!r} {path}: {exc}")
            continue
        if not inside:
            problems.append(
                f"Template {template!r} {path} {dn!r} is outside the scope of Environment"
                f" {target!r}, {shown}: {'; '.join(scope)}. Objects created there are never"
                " read back, so every later run would fail to create them again; choose a"
                " targetOU at or below one of those containers, or add it to spec.scope.ous"
                f" of {target!r}")
    return problems


def migration_problems(template: str, spec: TemplateSpec, source: str,
                       source_env: EnvironmentSpec, target: str,
                       target_env: EnvironmentSpec) -> list[tuple[str, str]]:
    """Why the Template's password sync or SID history cannot work for this pair:
    (field path, message)."""
    wanted = [(f"Template {template!r} spec.password.sync.mode", spec.password.synced),
              (f"Template {template!r} spec.sidHistory.enabled", spec.sid_history.enabled)]
    found: list[tuple[str, str]] = []
    for what, on in wanted:
        if not on:
            continue
        for name, env in ((source, source_env), (target, target_env)):
            if env.type is not DirectoryType.ACTIVE_DIRECTORY:
                found.append(("", f"{what}: {name!r} is {env.type.value}; passwords and SID"
                              " history move between Active Directory domains only"))
    if found:
        return found
    if spec.sid_history.enabled and target_env.connection is not ConnectionMode.AGENT:
        found.append(("", f"Template {template!r} spec.sidHistory.enabled: no network client"
                      " may write sIDHistory on Samba (and Ferry's DsAddSidHistory is not"
                      f" available for direct connections), so {target!r} needs connection:"
                      " agent with its agents on its domain controllers ([dc] smb_conf)"))
    if spec.password.sync.mode is PasswordSyncMode.DC_AGENT:
        # The changes come from the source's agents on its DCs and go to the target's.
        for name, env in ((source, source_env), (target, target_env)):
            if env.connection is not ConnectionMode.AGENT:
                found.append(("", f"Template {template!r} spec.password.sync.mode DCAgent:"
                              f" {name!r} needs connection: agent (the source's agents run on"
                              " its DCs with [dc] password_changes; the target's set the"
                              " passwords), or use mode Replication"))
    return found
