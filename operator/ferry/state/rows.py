"""What the state store takes and hands back, as typed values; no SQL here, so connectors and
the gateway can use them without loading the database layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import NamedTuple


@dataclass(frozen=True)
class Watermark:
    """Where a changed-objects-only read resumes; opaque to all but the connector that made
    it, kept per workflow and environment."""

    kind: str    # "dirsync" | "usn" | "deltaLink"
    value: str


@dataclass(frozen=True)
class PasswordRoute:
    """A pair whose source passwords DC agents send as they change (DCAgent mode)."""

    pair: str
    source: str    # the environment whose DC agents send
    target: str    # the environment whose agents set them


@dataclass(frozen=True)
class PendingCreate:
    """A create about to be made: the source object, and the type and DN its target gets."""

    source_anchor: str
    object_type: str
    target_dn: str


@dataclass(frozen=True)
class Join:
    """A source object joined to its target object (anchor, type and DN)."""

    source_anchor: str
    target_anchor: str
    object_type: str
    target_dn: str


@dataclass(frozen=True)
class ObjectResult:
    """What a run did to one object."""

    pair: str
    object_type: str
    source_anchor: str | None
    target_dn: str
    operation: str
    outcome: str   # ok | error | conflict | deferred | outOfScope
    message: str = ""


@dataclass(frozen=True)
class StoredRun:
    """A run as the store keeps it: when, how it ended, and its counts by object type."""

    id: str
    workflow: str
    mode: str
    started_at: datetime
    finished_at: datetime | None
    result: str
    exit_code: int | None
    message: str
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class AgentInfo:
    id: str
    name: str
    environment: str
    host: str
    version: str
    enrolled_at: datetime
    last_seen: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Revocation:
    """What revoking an agent by id or name did: the agent it chose (None when no agent or
    several active ones answer to the name, those in `same_name`), and whether it was new."""

    agent: AgentInfo | None
    already_revoked: bool = False
    same_name: tuple[AgentInfo, ...] = ()

    @property
    def revoked(self) -> bool:
        """Whether this call revoked the agent."""
        return self.agent is not None and not self.already_revoked


# -- device migration: what the controller plans and the gateway serves ----------------------

@dataclass(frozen=True)
class StageRequest:
    """A machine secret the gateway has an environment's agents stage before a join: a
    one-time password ("password") or an offline join blob ("offline")."""

    environment: str
    mode: str                 # "password" | "offline"
    name: str                 # the computer name
    ou: str                   # where the computer account is staged
    dns_domain: str
    domain_controller: str


@dataclass(frozen=True)
class PlannedAction:
    """One action of a device's runbook; `not_before` holds cutover actions back."""

    id: str                   # e.g. "1-ReACL", stable within a generation
    action: str               # an api DeviceAction, or RestoreSource / UndoReACL (rollback)
    arguments: dict[str, object]
    not_before: datetime | None = None
    stage: StageRequest | None = None


@dataclass(frozen=True)
class DevicePlan:
    """What one device of a migration is to do: written by the controller only. A retry or
    a rollback starts a new generation (results are kept per generation)."""

    migration: str            # "namespace/name"
    device: str               # computer name, upper case
    wave: str
    generation: int
    state: str                # "run" | "paused"
    source: str               # environment names
    target: str
    actions: tuple[PlannedAction, ...]
    sid_table_version: str = ""


@dataclass(frozen=True)
class DeviceResult:
    """A device's report of one action of one generation."""

    migration: str
    device: str
    generation: int
    action_id: str
    ok: bool
    message: str
    attempt: int
    finished_at: datetime
    details: dict[str, object] | None = None
    started_at: datetime | None = None


@dataclass(frozen=True)
class DeviceAgentInfo:
    """An enrolled device agent: the workstation it runs on and what it reports."""

    id: str
    migration: str
    name: str                 # computer name, upper case
    os: str
    labels: dict[str, str]
    enrolled_at: datetime
    last_seen: datetime | None
    revoked_at: datetime | None = None
    facts: dict[str, str] | None = None
    host: str = ""
    version: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class DiscoveredDevice:
    """A computer account discovery found in an environment."""

    anchor: str
    name: str                 # sAMAccountName without "$", upper case
    dn: str
    os: str = ""


# -- device migration: what the gateway keeps and computes runbooks from ----------------------

@dataclass(frozen=True)
class DeviceSecret:
    """A staged machine secret: ciphertext sealed to the device's key, never the secret."""

    sealed: dict[str, str]   # key id -> ciphertext
    dn: str                  # the staged computer account


@dataclass(frozen=True)
class DeviceProgress:
    """What a device's runbook is computed from: its plan and, for the plan's generation,
    the results and staged secrets by action id, and the migration's SID table version."""

    plan: DevicePlan | None
    results: dict[str, DeviceResult]
    secrets: dict[str, DeviceSecret]
    sid_table_version: str | None     # None: no table written yet


@dataclass(frozen=True)
class MigrationSidTable:
    """A migration's SID translation table as devices get it."""

    version: str
    entries: dict[str, str]  # source SID -> target SID


class SidTranslationTable(NamedTuple):
    """The SID table of some pairs: unambiguous translations, and the source SIDs that joins
    map to more than one target SID (left out of `entries`: never guessed)."""

    entries: dict[str, str]
    conflicts: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class DirectoryObject:
    """An object as discovery last read it: the fields the discovery report shows."""

    anchor: str
    object_type: str          # user | group | contact | device
    dn: str
    name: str = ""            # sAMAccountName (AD), else the display name
    display_name: str = ""
    upn: str = ""
    mail: str = ""
    enabled: bool | None = None          # users (and Entra devices); None: not known
    last_logon: datetime | None = None   # AD lastLogonTimestamp (replicated, ~14 days late)
    created: datetime | None = None
    members: int | None = None           # groups: resolved members
    os: str = ""                         # devices


class MatchStatus(StrEnum):
    JOINED = "joined"              # a stored join, its target still there
    MATCHED = "matched"            # a match rule found the target (joined by the next run)
    WOULD_CREATE = "wouldCreate"   # no target found: the next run creates one
    UNMATCHED = "unmatched"        # no target found, and none is created
    CONFLICT = "conflict"          # ambiguous: nothing is written
    OUT_OF_SCOPE = "outOfScope"    # the pair does not sync it
    ERROR = "error"                # staging failed (an expression error)


@dataclass(frozen=True)
class MatchRow:
    source_dn: str
    source_type: str
    anchor: str
    target_dn: str
    target_type: str
    status: MatchStatus
    rule: str = ""                        # "join", a match rule, "pending create"
    candidates: tuple[str, ...] = ()      # a conflict's competing objects (DNs)
    reason: str = ""


@dataclass(frozen=True)
class PairMatches:
    """One pair's match report: its source objects' rows, as planned or as stored."""

    source: str
    target: str
    rows: list[MatchRow]

    @property
    def file_name(self) -> str:
        return f"{self.source}-to-{self.target}.csv"
