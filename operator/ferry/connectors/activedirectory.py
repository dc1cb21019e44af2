"""Active Directory: records and anchors on top of a directory session.

The session is the agent's DirectorySession (LDAP from here, in direct mode) or anything with
the same methods, such as one whose calls an agent carries out (agent mode).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

from ferry.connectors.base import ConnectorCheckError, ObjectError, ReadResult, Watermark
from ferry.engine.plan import Operation
from ferry.engine.records import (
    REFERENCE_ATTRIBUTES,
    AttributeValue,
    ObjectType,
    Record,
    parent_of,
)
from ferry_agent.directory import read as ad_read
from ferry_agent.directory.errors import DirectoryError

# Read on every object whatever the workflow asks: identity, placement, state, references.
BASE_ATTRIBUTES = ("cn", "objectClass", "userAccountControl", "member", "manager")
# Attributes that are not data to stage: they describe the object, not the person.
_NOT_STAGED = frozenset(a.lower() for a in (
    "objectClass", "objectGUID", "userAccountControl", "uSNChanged", "distinguishedName",
    "member", "manager"))


class DirectoryOperations(Protocol):
    """What the connector needs from a directory session (ferry_agent's DirectorySession)."""

    def close(self) -> None: ...
    def exists(self, dn: str) -> bool: ...
    def initial_watermark(self, scope: ad_read.Scope) -> ad_read.Watermark: ...
    def read_full(self, scope: ad_read.Scope, attributes: Sequence[str]
                  ) -> Iterable[ad_read.Entry]: ...
    def read_changes(self, scope: ad_read.Scope, attributes: Sequence[str],
                     watermark: ad_read.Watermark) -> ad_read.Changes: ...
    def read_by_guids(self, guids: Sequence[str], attributes: Sequence[str]
                      ) -> Iterable[ad_read.Entry]: ...
    def resolve_dns(self, dns: Sequence[str]) -> dict[str, str]: ...
    def create(self, object_type: str, dn: str, attributes: dict[str, list[str]], *,
               password: str | None = None, must_change_password: bool = False,
               enabled: bool | None = None) -> str: ...
    def update(self, dn: str, changes: dict[str, list[str] | None]) -> None: ...
    def set_enabled(self, dn: str, enabled: bool) -> None: ...
    def move(self, dn: str, new_dn: str) -> None: ...
    def delete(self, dn: str) -> None: ...
    def add_members(self, group_dn: str, member_dns: Sequence[str]) -> None: ...
    def remove_members(self, group_dn: str, member_dns: Sequence[str]) -> None: ...
    def ensure_ou(self, dn: str) -> list[str]: ...


class ActiveDirectoryConnector:
    """One AD domain: full and delta reads into Records, and operations applied by anchor."""

    def __init__(self, name: str, directory: DirectoryOperations, base_dn: str,
                 scope_ous: Sequence[str] = (), where: str = ""):
        self.name = name
        self.directory = directory
        self.base_dn = base_dn
        self.scope_ous = list(scope_ous) or [base_dn]
        self.where = where or name    # e.g. host:port, for messages
        self._dn_of: dict[str, str] = {}      # anchor -> DN, kept current through writes
        self._anchor_of: dict[str, str] = {}  # lower-case DN -> anchor
        self._known_ous: set[str] = set()

    def check(self) -> str:
        missing = [dn for dn in self.scope_ous if not self.directory.exists(dn)]
        if missing:
            raise ConnectorCheckError(f"bound to {self.where}, but scope container {missing[0]}"
                                      " does not exist; fix spec.scope.ous")
        return f"bound to {self.where}; {len(self.scope_ous)} scope container(s) readable"

    def close(self) -> None:
        self.directory.close()

    # reading ---------------------------------------------------------------------------
    def read(self, object_types: Collection[ObjectType], attributes: Collection[str],
             watermark: Watermark | None = None, *, missing_scope_ok: bool = False
             ) -> ReadResult:
        bases = self.scope_ous
        if missing_scope_ok:
            # A target's OUs appear with its first objects; until then they hold nothing.
            bases = [dn for dn in bases if self.directory.exists(dn)]
            if not bases:
                return ReadResult([], [], None, True)
        scope = ad_read.Scope(base_dns=bases, object_types=[t.value for t in object_types])
        wanted = sorted({*BASE_ATTRIBUTES, *attributes})
        if watermark is None:
            start = self.directory.initial_watermark(scope)
            entries = list(self.directory.read_full(scope, wanted))
            deleted: list[str] = []
            full = True
        else:
            changes = self.directory.read_changes(
                scope, wanted, ad_read.Watermark(watermark.kind, watermark.value))
            # An object that left the scope is, for this directory's joins, gone.
            entries, start, full = changes.entries, changes.watermark, False
            deleted = [*changes.deleted, *changes.out_of_scope]
        records = self._records(entries)
        return ReadResult(records, deleted, Watermark(start.kind, start.value), full)

    def read_anchors(self, anchors: Collection[str], attributes: Collection[str]) -> list[Record]:
        wanted = sorted({*BASE_ATTRIBUTES, *attributes})
        return self._records(list(self.directory.read_by_guids(list(anchors), wanted)))

    def _records(self, entries: list[ad_read.Entry]) -> list[Record]:
        for entry in entries:
            self._remember(entry.guid, entry.dn)
        referenced = {
            dn.lower() for e in entries
            for dn in (*e.members, *e.attributes.get("manager", ()))
        }
        unknown = [dn for dn in referenced if dn not in self._anchor_of]
        if unknown:
            for dn, guid in self.directory.resolve_dns(unknown).items():
                self._remember(guid, dn)
        return [self._record(e) for e in entries]

    def _record(self, entry: ad_read.Entry) -> Record:
        attributes: dict[str, AttributeValue] = {}
        for name, values in entry.attributes.items():
            if name.lower() in _NOT_STAGED or not values:
                continue
            attributes[name] = values[0] if len(values) == 1 else tuple(values)
        references: dict[str, tuple[str, ...]] = {}
        members = self._anchors(entry.members)
        if entry.object_type == "group":
            references["member"] = members
        manager = self._anchors(entry.attributes.get("manager", ()))
        if manager:
            references["manager"] = manager
        return Record(
            anchor=entry.guid,
            object_type=ObjectType(entry.object_type),
            dn=entry.dn,
            attributes=attributes,
            references=references,
            enabled=entry.enabled if entry.object_type == "user" else None,
        )

    def _anchors(self, dns: Iterable[str]) -> tuple[str, ...]:
        # A reference to an object outside what can be resolved is not Ferry's to manage.
        return tuple(a for a in (self._anchor_of.get(dn.lower()) for dn in dns) if a)

    def _remember(self, anchor: str, dn: str) -> None:
        old = self._dn_of.get(anchor)
        if old is not None:
            self._anchor_of.pop(old.lower(), None)
        self._dn_of[anchor] = dn
        self._anchor_of[dn.lower()] = anchor

    def dn_of(self, anchor: str) -> str:
        try:
            return self._dn_of[anchor]
        except KeyError:
            raise ObjectError(anchor, "resolve",
                              f"object {anchor} not found in the last read") from None

    # writing ---------------------------------------------------------------------------
    def create(self, op: Operation, password: str | None, must_change_password: bool) -> str:
        values = {k: _values(v) for k, v in op.changes.items() if v is not None}
        with _object_errors(op.dn, "create"):
            self._ensure_parent(op.dn)
            guid = self.directory.create(
                op.object_type.value, op.dn, values, password=password,
                must_change_password=must_change_password, enabled=op.enabled)
        self._remember(guid, op.dn)
        return guid

    def update(self, op: Operation) -> None:
        dn = self.dn_of(op.target_anchor or "")
        changes = {k: (None if v is None else _values(v)) for k, v in op.changes.items()
                   if k not in REFERENCE_ATTRIBUTES}
        with _object_errors(dn, "update"):
            if changes:
                self.directory.update(dn, changes)
            if op.enabled is not None:
                self.directory.set_enabled(dn, op.enabled)

    def move(self, op: Operation) -> None:
        anchor = op.target_anchor or ""
        dn, new_dn = self.dn_of(anchor), op.new_dn or ""
        with _object_errors(dn, "move"):
            self._ensure_parent(new_dn)
            self.directory.move(dn, new_dn)
        self._remember(anchor, new_dn)

    def delete(self, op: Operation) -> None:
        anchor = op.target_anchor or ""
        dn = self.dn_of(anchor)
        with _object_errors(dn, "delete"):
            self.directory.delete(dn)
        self._anchor_of.pop(dn.lower(), None)
        self._dn_of.pop(anchor, None)

    def set_references(self, target_anchor: str, attribute: str,
                       add: Sequence[str], remove: Sequence[str]) -> None:
        dn = self.dn_of(target_anchor)
        add_dns = [self.dn_of(a) for a in add]
        # An object deleted meanwhile has already left every group: nothing to remove.
        remove_dns = [dn for dn in map(self._dn_of.get, remove) if dn]
        with _object_errors(dn, f"set {attribute}"):
            if attribute == "member":
                if add_dns:
                    self.directory.add_members(dn, add_dns)
                if remove_dns:
                    self.directory.remove_members(dn, remove_dns)
            else:  # single-valued references such as manager
                self.directory.update(dn, {attribute: add_dns[:1] or None})

    def _ensure_parent(self, dn: str) -> None:
        parent = parent_of(dn)
        if parent.lower() in self._known_ous or parent.lower() == self.base_dn.lower():
            return
        self.directory.ensure_ou(parent)
        self._known_ous.add(parent.lower())


def _values(value: AttributeValue) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


@contextmanager
def _object_errors(target: str, operation: str) -> Iterator[None]:
    """Turn a directory error for one object into an ObjectError the run records."""
    try:
        yield
    except DirectoryError as exc:
        raise ObjectError(target, operation, str(exc)) from exc
