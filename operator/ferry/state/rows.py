"""What the state store takes and hands back, as typed values; no SQL here, so connectors and
the gateway can use them without loading the database layer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
