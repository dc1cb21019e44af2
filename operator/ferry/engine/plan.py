"""The engine's output: operations to apply, conflicts to report, counts to show."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ferry.engine.migration import PasswordSync, SidHistoryAdd
from ferry.engine.records import AttributeValue, ObjectType


class Count(StrEnum):
    """What a plan and a run count, per object type: the one list every count form follows
    (run outcomes, the state store's run rows, Workflow status's RunCounts, the CLI's tables)."""

    CREATED = "created"
    UPDATED = "updated"
    MOVED = "moved"
    DELETED = "deleted"
    UNCHANGED = "unchanged"
    CONFLICTS = "conflicts"
    ERRORS = "errors"
    DEFERRED = "deferred"
    OUT_OF_SCOPE = "outOfScope"  # references to objects outside the pairs' scope
    SID_HISTORY = "sidHistory"   # source SIDs added to targets' sIDHistory
    PASSWORDS = "passwords"      # source passwords set on joined target users
    NEW_CONFLICTS = "newConflicts"  # conflicts the workflow's previous run did not have


# The counts a run's one-line summary shows (`ferry runs`, `ferry run --in-cluster --wait`).
SUMMARY_COUNT_KEYS = (Count.CREATED, Count.UPDATED, Count.MOVED, Count.DELETED,
                      Count.CONFLICTS, Count.ERRORS)


class OpKind(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    MOVE = "move"            # rename and/or move: new_dn differs from dn
    DELETE = "delete"
    REFERENCES = "references"  # group members / manager, applied after all objects exist


class AttributeChanges(Mapping[str, AttributeValue | None]):
    """Attribute -> new value (None clears it): a read-only view of two aligned tuples."""

    __slots__ = ("_names", "_values")

    def __init__(self, names: tuple[str, ...], values: tuple[AttributeValue | None, ...]) -> None:
        if len(names) != len(values):
            raise ValueError(f"{len(names)} attribute names for {len(values)} values")
        self._names = names
        self._values = values

    def __getitem__(self, name: str) -> AttributeValue | None:
        try:
            return self._values[self._names.index(name)]
        except ValueError:
            raise KeyError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __hash__(self) -> int:
        return hash((self._names, self._values))

    def __repr__(self) -> str:
        return f"AttributeChanges({dict(zip(self._names, self._values, strict=True))!r})"


def shared_names(names: tuple[str, ...]) -> tuple[str, ...]:
    """names, or an equal tuple handed out before: operations setting the same attributes
    share one tuple of their names."""
    shared = _NAMES.get(names)
    if shared is None:
        if len(_NAMES) >= _NAMES_LIMIT:
            _NAMES.clear()  # bounded: only sharing is lost, never correctness
        shared = _NAMES.setdefault(names, names)
    return shared


_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}
_NAMES_LIMIT = 4096


@dataclass(slots=True)
class Operation:
    """One change to one target object.

    For CREATE, target_anchor is None until applied; later phases resolve the object through
    the join made for source_anchor. `changes` maps attribute -> new value (None clears it).
    For REFERENCES, `add` holds *source* anchors (resolved through joins at apply time, since
    they may be created in the same run) and `remove` holds *target* anchors.
    """

    # A plan may hold a million operations, so the changes are two aligned tuples rather
    # than a mapping object each (a dict costs 250-650 bytes): the names tuple is shared
    # by every operation setting the same attributes (see shared_names), and only the values
    # are the operation's own. `changes` reads them as a mapping.

    kind: OpKind
    object_type: ObjectType
    pair: str
    source_anchor: str | None
    target_anchor: str | None
    dn: str                                   # current target DN (desired DN for CREATE)
    new_dn: str | None = None                 # MOVE only
    change_names: tuple[str, ...] = ()        # CREATE/UPDATE: the attributes set ...
    change_values: tuple[AttributeValue | None, ...] = ()  # ... and their new values
    enabled: bool | None = None               # CREATE/UPDATE of users: desired state
    attribute: str | None = None              # REFERENCES: "member" or "manager"
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()
    reason: str = ""

    @property
    def changes(self) -> AttributeChanges:
        """Attribute -> new value (None clears it), for CREATE and UPDATE."""
        return AttributeChanges(self.change_names, self.change_values)


@dataclass(frozen=True, slots=True)
class Conflict:
    """A source object that matched ambiguously: nothing is written for it."""

    pair: str
    source_anchor: str
    source_dn: str
    object_type: ObjectType
    rule: str            # e.g. "mail -> mail"
    value: str
    candidates: tuple[str, ...]   # DNs of the competing target or source objects
    message: str


@dataclass(frozen=True, slots=True)
class StagingError:
    """A source object whose staging failed (e.g. an expression error); nothing is written."""

    pair: str
    source_anchor: str
    source_dn: str
    object_type: ObjectType
    message: str


@dataclass(frozen=True, slots=True)
class OutOfScope:
    """A reference (a member, a manager) to a source object the pair never syncs: outside its
    source OUs, filter, object types or the source Environment's scope. Stable, not retried."""

    pair: str
    source_anchor: str        # the object holding the reference (a group, say)
    object_type: ObjectType
    dn: str                   # that object's DN in the target
    attribute: str            # "member" or "manager"
    reference: str            # source anchor of the referenced object
    reference_dn: str = ""    # its source DN, where known

    @property
    def message(self) -> str:
        return (f"{self.object_type.value} {self.dn}: {self.attribute} "
                f"{self.reference_dn or self.reference} is outside the pair's scope, so it is"
                " never synced")


@dataclass(slots=True)
class PairPlan:
    pair: str
    operations: list[Operation] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)
    errors: list[StagingError] = field(default_factory=list)
    # source anchor -> target anchor for joins discovered by match rules this run (to persist).
    new_joins: dict[str, str] = field(default_factory=dict)
    # source anchor -> what found each of new_joins: the match rule ("mail -> mail") or
    # "pending create" (reports say how an object was matched).
    matched_by: dict[str, str] = field(default_factory=dict)
    # source anchors whose joins should be forgotten (their target was deleted or vanished).
    dropped_joins: list[str] = field(default_factory=list)
    # source anchors of objects with references to objects not synced yet: retried next run.
    deferred: list[str] = field(default_factory=list)
    # deferred, counted per object type (for summaries).
    deferred_counts: Counter[ObjectType] = field(default_factory=Counter)
    # references to source objects outside the pair's scope: never written, not retried.
    out_of_scope: list[OutOfScope] = field(default_factory=list)
    unchanged: Counter[ObjectType] = field(default_factory=Counter)
    threshold_hit: bool = False
    threshold_message: str = ""
    # source SIDs for joined targets' sIDHistory, worked out once the objects are written.
    sid_history: list[SidHistoryAdd] = field(default_factory=list)
    # users whose source password is set on their target (which, never the password).
    passwords: list[PasswordSync] = field(default_factory=list)

    def count(self, kind: OpKind, object_type: ObjectType | None = None) -> int:
        return sum(
            1
            for op in self.operations
            if op.kind == kind and (object_type is None or op.object_type == object_type)
        )
