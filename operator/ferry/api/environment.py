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
from ferry.api.distinguished_name import DistinguishedName
from ferry.api.status import EnvironmentStatus

MAX_SCOPE_IDS = 16


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
    base_dn: DistinguishedName = Field(alias="baseDN",
                                       description="Naming context, e.g. DC=corp,DC=example.")
    tls: TlsSettings = Field(default_factory=TlsSettings, description="LDAPS trust settings.")
    credentials: Credentials | None = Field(
        default=None,
        description="Account Ferry binds as; required for connection: direct. With agents,"
        " each agent binds with the credentials of its own host's configuration.",
    )
    write_connections: int = Field(
        default=4, ge=1, le=16,
        description="LDAP connections a batch of writes spreads over (direct, or on the agent"
        " that carries it out); each object's writes stay in order on one of them.",
    )


class AzureCloud(StrEnum):
    PUBLIC = "AzurePublic"
    US_GOVERNMENT = "AzureUSGovernment"
    CHINA = "AzureChina"


class CertificateCredential(ApiModel):
    """An app registration certificate: Ferry signs a client assertion with its key."""

    pem: ValueSource = Field(
        description="PEM holding the certificate and its private key (unencrypted, or"
        " encrypted with password)."
    )
    password: ValueSource | None = Field(
        default=None, description="Password of an encrypted private key."
    )


class WorkloadIdentityCredential(ApiModel):
    """Workload identity federation: a Kubernetes service account token the app trusts."""

    token_file: str = Field(
        default="/var/run/secrets/azure/tokens/azure-identity-token",
        description="Projected service account token file (AKS workload identity sets"
        " AZURE_FEDERATED_TOKEN_FILE to this path).",
    )


class EntraCredentials(ApiModel):
    """How Ferry's app registration signs in: exactly one of the three."""

    model_config = validations(cel(
        "[has(self.clientSecret), has(self.certificate), has(self.workloadIdentity)]"
        ".exists_one(x, x)",
        "set exactly one of clientSecret, certificate or workloadIdentity",
    ))

    client_secret: ValueSource | None = Field(default=None, description="A client secret.")
    certificate: CertificateCredential | None = Field(
        default=None, description="A certificate registered on the app.")
    workload_identity: WorkloadIdentityCredential | None = Field(
        default=None, description="A federated credential trusting this cluster's tokens.")

    @model_validator(mode="after")
    def _exactly_one(self) -> EntraCredentials:
        chosen = [n for n in ("client_secret", "certificate", "workload_identity")
                  if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of clientSecret, certificate or workloadIdentity")
        return self


class EntraTls(ApiModel):
    """Trust for the sign-in and Graph endpoints, e.g. behind a TLS-inspecting proxy."""

    ca: ValueSource | None = Field(
        default=None, description="PEM CA bundle to trust instead of the system's."
    )


class GraphWriteQuota(ApiModel):
    """How many writes Ferry may send to the tenant over a window; it paces itself below."""

    writes: int = Field(default=3000, ge=1, le=100000, description="Writes per window.")
    per_seconds: int = Field(default=150, ge=1, le=3600, description="Window in seconds.")


class EntraIdSpec(ApiModel):
    """A Microsoft Entra ID tenant reached through Microsoft Graph."""

    tenant_id: str = Field(description="Directory (tenant) id or verified domain.")
    client_id: str = Field(description="Application (client) id of Ferry's app registration.")
    credentials: EntraCredentials = Field(description="How the app signs in.")
    cloud: AzureCloud = Field(
        default=AzureCloud.PUBLIC,
        description="Which cloud the tenant lives in; sets the sign-in and Graph endpoints.",
    )
    authority_host: str | None = Field(
        default=None, pattern=r"^https://",
        description="Sign-in authority, overriding the cloud's (https://...).",
    )
    graph_endpoint: str | None = Field(
        default=None, pattern=r"^https://",
        description="Microsoft Graph root, overriding the cloud's (https://...).",
    )
    tls: EntraTls = Field(default_factory=EntraTls, description="TLS trust settings.")
    write_quota: GraphWriteQuota = Field(
        default_factory=GraphWriteQuota,
        description="Microsoft documents 3,000 identity writes per 150 s per app and tenant;"
        " lower it when other tools write to the tenant with the same app.",
    )


class Scope(ApiModel):
    """Which part of the directory Ferry reads."""

    ous: list[DistinguishedName] = Field(
        default_factory=list,
        description="Active Directory: containers to read (DNs). Empty: the whole naming"
        " context.",
    )
    object_types: list[ScopeObjectType] = Field(
        default_factory=lambda: [
            ScopeObjectType.USERS, ScopeObjectType.GROUPS, ScopeObjectType.CONTACTS
        ],
        min_length=1,
        max_length=4,
        description="Object types read from this directory.",
    )
    groups: list[str] = Field(
        default_factory=list, max_length=MAX_SCOPE_IDS,
        description="Entra ID: only users, groups and devices that are (transitive) members of"
        " these groups (object ids). Empty: no group limit.",
    )
    administrative_units: list[str] = Field(
        default_factory=list, max_length=MAX_SCOPE_IDS,
        description="Entra ID: only members of these administrative units (object ids).",
    )
    user_filter: str | None = Field(
        default=None, max_length=1024,
        description="Entra ID: an OData $filter users must meet, e.g. \"department eq"
        " 'Sales'\".",
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
        cel("self.type != 'EntraID' || self.connection == 'direct'",
            "Ferry reaches Entra ID through Microsoft Graph itself: use connection direct"),
        cel("self.type != 'EntraID' || !has(self.scope) || !has(self.scope.ous)"
            " || size(self.scope.ous) == 0",
            "scope.ous is for Active Directory; for Entra ID use scope.groups,"
            " scope.administrativeUnits or scope.userFilter"),
        cel("self.type != 'ActiveDirectory' || !has(self.scope)"
            " || ((!has(self.scope.groups) || size(self.scope.groups) == 0)"
            " && (!has(self.scope.administrativeUnits)"
            " || size(self.scope.administrativeUnits) == 0)"
            " && !has(self.scope.userFilter))",
            "scope.groups, scope.administrativeUnits and scope.userFilter are for Entra ID;"
            " for Active Directory use scope.ous"),
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

    def secret_sources(self) -> list[tuple[ValueSource, str]]:
        """Every secret this environment refers to, with its field path (for messages)."""
        found: list[tuple[ValueSource | None, str]] = []
        ad, entra = self.active_directory, self.entra_id
        if ad is not None:
            found += [(ad.credentials.password if ad.credentials else None,
                       "spec.activeDirectory.credentials.password"),
                      (ad.tls.ca, "spec.activeDirectory.tls.ca")]
        if entra is not None:
            creds = entra.credentials
            found += [(creds.client_secret, "spec.entraID.credentials.clientSecret"),
                      (entra.tls.ca, "spec.entraID.tls.ca")]
            if creds.certificate is not None:
                found += [(creds.certificate.pem, "spec.entraID.credentials.certificate.pem"),
                          (creds.certificate.password,
                           "spec.entraID.credentials.certificate.password")]
        return [(source, path) for source, path in found if source is not None]

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
        if self.type is DirectoryType.ENTRA_ID:
            if self.connection is not ConnectionMode.DIRECT:
                raise ValueError("Ferry reaches Entra ID through Microsoft Graph itself:"
                                 " use connection direct")
            if self.scope.ous:
                raise ValueError("scope.ous is for Active Directory; for Entra ID use"
                                 " scope.groups, scope.administrativeUnits or scope.userFilter")
        elif self.scope.groups or self.scope.administrative_units or self.scope.user_filter:
            raise ValueError("scope.groups, scope.administrativeUnits and scope.userFilter are"
                             " for Entra ID; for Active Directory use scope.ous")
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
