"""Environment: a directory and how Ferry reaches it."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from ferry.api.base import (
    ApiModel,
    CrdNames,
    PrinterColumn,
    Resource,
    ValueSource,
    cel,
    validations,
)
from ferry.api.status import EnvironmentStatus


class DirectoryType(StrEnum):
    ACTIVE_DIRECTORY = "ActiveDirectory"
    ENTRA_ID = "EntraID"


class ConnectionMode(StrEnum):
    DIRECT = "direct"
    AGENT = "agent"


class ScopeObjectType(StrEnum):
    USERS = "users"
    GROUPS = "groups"
    CONTACTS = "contacts"
    DEVICES = "devices"


class TlsSettings(ApiModel):
    """How Ferry trusts the domain controllers' LDAPS certificates."""

    ca: ValueSource | None = Field(
        default=None, description="PEM CA bundle that signed the domain controllers' certificates."
    )
    server_name: str | None = Field(
        default=None,
        description="Name to expect in the DC's certificate when host is an address.",
    )
    insecure_skip_verify: bool = Field(
        default=False,
        description="Accept any server certificate. Only for labs; never in production.",
    )


class Credentials(ApiModel):
    """The account Ferry uses; the password never appears in the manifest itself."""

    username: str = Field(
        description="Account Ferry binds as: a UPN (svc-ferry@corp.example), DOMAIN\\user or a DN."
    )
    password: ValueSource = Field(description="Where the account's password comes from.")


class ActiveDirectorySpec(ApiModel):
    """An Active Directory domain reached over LDAPS."""

    host: str = Field(description="Domain controller host name or address.")
    port: int = Field(default=636, ge=1, le=65535, description="LDAPS port.")
    base_dn: str = Field(alias="baseDN", description="Naming context, e.g. DC=corp,DC=example.")
    tls: TlsSettings = Field(default_factory=TlsSettings, description="LDAPS trust settings.")
    credentials: Credentials | None = Field(
        default=None,
        description="Account Ferry binds as; required for connection: direct. With agents,"
        " each agent binds with the credentials of its own host's configuration.",
    )


class EntraIdSpec(ApiModel):
    """A Microsoft Entra ID tenant reached through Microsoft Graph."""

    tenant_id: str = Field(description="Directory (tenant) id or verified domain.")
    client_id: str = Field(description="Application (client) id of Ferry's app registration.")
    client_secret: ValueSource | None = Field(default=None, description="Client secret source.")
    authority_host: str = Field(
        default="https://login.microsoftonline.com",
        description="Sign-in authority; change for national clouds.",
    )


class Scope(ApiModel):
    """Which part of the directory Ferry reads."""

    ous: list[str] = Field(
        default_factory=list,
        description="Containers to read (DNs). Empty: the whole naming context.",
    )
    object_types: list[ScopeObjectType] = Field(
        default_factory=lambda: [
            ScopeObjectType.USERS, ScopeObjectType.GROUPS, ScopeObjectType.CONTACTS
        ],
        min_length=1,
        max_length=4,
        description="Object types read from this directory.",
    )


class Discovery(ApiModel):
    """Periodic inventory of the environment: object counts in status."""

    interval_minutes: int = Field(
        default=1440, ge=15, description="Minutes between discoveries (full first, then delta)."
    )


class EnvironmentSpec(ApiModel):
    """A directory and how Ferry reaches it."""

    model_config = validations(
        cel("self.type != 'ActiveDirectory' || has(self.activeDirectory)",
            "type ActiveDirectory needs the activeDirectory block"),
        cel("self.type != 'ActiveDirectory' || !has(self.entraID)",
            "type ActiveDirectory takes only activeDirectory; remove entraID"),
        cel("self.type != 'EntraID' || has(self.entraID)",
            "type EntraID needs the entraID block"),
        cel("self.type != 'EntraID' || !has(self.activeDirectory)",
            "type EntraID takes only entraID; remove activeDirectory"),
        cel("!has(self.activeDirectory) || self.connection == 'agent'"
            " || has(self.activeDirectory.credentials)",
            "connection direct needs activeDirectory.credentials"),
    )

    type: DirectoryType = Field(description="Kind of directory.")
    connection: ConnectionMode = Field(
        default=ConnectionMode.DIRECT,
        description="direct: Ferry connects itself. agent: through on-premises agents.",
    )
    active_directory: ActiveDirectorySpec | None = Field(
        default=None, description="Connection details; required when type is ActiveDirectory."
    )
    entra_id: EntraIdSpec | None = Field(
        default=None, alias="entraID", description="Tenant details; required when type is EntraID."
    )
    scope: Scope = Field(default_factory=Scope, description="What Ferry reads.")
    discovery: Discovery = Field(
        default_factory=Discovery, description="How often Ferry takes inventory."
    )

    @model_validator(mode="after")
    def _block_matches_type(self) -> EnvironmentSpec:
        wanted = {
            DirectoryType.ACTIVE_DIRECTORY: "activeDirectory",
            DirectoryType.ENTRA_ID: "entraID",
        }[self.type]
        present = {
            "activeDirectory": self.active_directory is not None,
            "entraID": self.entra_id is not None,
        }
        if not present[wanted]:
            raise ValueError(f"type {self.type.value} needs the {wanted} block")
        extra = [name for name, there in present.items() if there and name != wanted]
        if extra:
            raise ValueError(f"type {self.type.value} takes only {wanted}; remove {extra[0]}")
        if (self.active_directory is not None and self.connection is ConnectionMode.DIRECT
                and self.active_directory.credentials is None):
            raise ValueError("connection direct needs activeDirectory.credentials")
        return self


class Environment(Resource):
    """A directory (Active Directory domain or Entra ID tenant) and how Ferry reaches it."""

    kind: Literal["Environment"]
    spec: EnvironmentSpec = Field(description="The directory and how to reach it.")
    status: EnvironmentStatus | None = Field(default=None, description="Set by Ferry.")

    crd: ClassVar[CrdNames] = CrdNames(
        plural="environments",
        short_names=("fenv",),
        columns=(
            PrinterColumn("Type", ".spec.type"),
            PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status'),
            PrinterColumn("Connected", '.status.conditions[?(@.type=="Connected")].status'),
            PrinterColumn("Agents", ".status.agentsConnected"),
            PrinterColumn("Objects", ".status.objects", "integer"),
            PrinterColumn("Connection", ".spec.connection", priority=1),
            PrinterColumn(
                "Message", '.status.conditions[?(@.type=="Connected")].message', priority=1
            ),
            PrinterColumn("Age", ".metadata.creationTimestamp", "date"),
        ),
    )
