"""The one small interface every directory connector implements."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ferry.api.environment import ScopeObjectType
from ferry.engine.migration import SidHistoryAdd
from ferry.engine.plan import Operation
from ferry.engine.records import ObjectType, Record
from ferry.errors import FerryError
from ferry.state.rows import Watermark

# The object types of manifests (users, groups, ...) as the engine names them.
SCOPE_TYPES = {
    ScopeObjectType.USERS: ObjectType.USER,
    ScopeObjectType.GROUPS: ObjectType.GROUP,
    ScopeObjectType.CONTACTS: ObjectType.CONTACT,
    ScopeObjectType.DEVICES: ObjectType.DEVICE,
}


@dataclass
class ReadResult:
    records: list[Record]
    deleted: list[str] = field(default_factory=list)   # anchors deleted since the watermark
    watermark: Watermark | None = None                  # where the next delta starts
    full: bool = True                                   # False: records are changes only


class ObjectError(FerryError):
    """A write to one object cannot be made; the run records it and goes on."""

    def __init__(self, target: str, operation: str, message: str):
        self.target, self.operation = target, operation
        super().__init__(message)


@dataclass(frozen=True)
class ObjectWrite:
    """One engine operation to apply, with what the applier resolved for it.

    Creates of users carry the initial password, and `restore` when Ferry deleted this
    source's target before: a connector with a recycle bin brings that object back instead.
    Reference operations carry target anchors: `target` is the object whose attribute
    changes, `add` and `remove` the referenced objects.
    """

    op: Operation
    password: str | None = field(default=None, repr=False)
    must_change_password: bool = False
    restore: str = ""
    target: str = ""
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True)
class WriteOutcome:
    """What became of one ObjectWrite: the new anchor of a create, or why it failed."""

    anchor: str = ""
    error: str | None = None
    dn: str = ""          # where the directory says the object is, when it says


class ConnectorCheckError(FerryError):
    """The directory answered, but not as the Environment expects; the message says what."""


@runtime_checkable
class SidHistoryTarget(Protocol):
    """A connector that can add source SIDs to its objects' sIDHistory (Active Directory)."""

    batch_size: int

    def add_sid_history(self, adds: Sequence[SidHistoryAdd], source_domain: str = "",
                        source_dc: str = "") -> list[WriteOutcome]:
        """One outcome per add, in order; a refused object fails alone. The source domain
        and DC name the SIDs' owner for a target that reads them itself (Windows)."""
        ...


@runtime_checkable
class Throttled(Protocol):
    """A connector whose service throttles its callers (Microsoft Graph): what the run met,
    for its record (status, metrics)."""

    def throttling(self) -> tuple[int, int]:
        """(429 answers waited out, requests sent again for any reason) so far."""
        ...


class Connector(Protocol):
    """Reads records of a directory and applies engine operations to it, by anchor."""

    name: str

    def read(self, object_types: Collection[ObjectType], attributes: Collection[str],
             watermark: Watermark | None = None, *, missing_scope_ok: bool = False
             ) -> ReadResult:
        """Full read (watermark None) or changes since watermark, with where the next starts.

        `attributes` are the ones the workflow needs; connectors add what they need themselves.
        `missing_scope_ok`: scope containers that do not exist yet read as empty (targets).
        """
        ...

    def read_anchors(self, anchors: Collection[str], attributes: Collection[str]) -> list[Record]:
        """Current records of these anchors (those that still exist)."""
        ...

    def find(self, attribute: str, values: Collection[str], object_types: Collection[ObjectType],
             attributes: Collection[str]) -> list[Record]:
        """Objects of the scope whose attribute equals one of values, compared as the
        directory compares (`ferry trace`: an object by its key, a match rule's candidates)."""
        ...

    batch_size: int
    """How many ObjectWrites one write() call should carry."""

    def write(self, writes: Sequence[ObjectWrite]) -> list[WriteOutcome]:
        """Apply writes in order; one outcome each. A refused object fails alone.

        Later writes may depend on earlier ones of the same call (an update after a move of
        the same object). Raises only when the directory itself is lost."""
        ...

    def check(self) -> str:
        """Connect, authenticate and read the scope's root; say what was verified.

        Raises on failure, with a message an admin can act on."""
        ...

    def close(self) -> None: ...
