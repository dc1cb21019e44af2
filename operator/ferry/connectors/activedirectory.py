"""Active Directory: records and anchors on top of a directory session.

The session is the agent's DirectorySession (LDAP from here, in direct mode) or anything with
the same methods, such as one whose calls an agent carries out (agent mode).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from ferry.connectors.base import (
    ConnectorCheckError,
    ObjectError,
    ObjectWrite,
    ReadResult,
    WriteOutcome,
)
from ferry.engine.migration import SidHistoryAdd
from ferry.engine.plan import OpKind
from ferry.engine.records import REFERENCE_ATTRIBUTES, AttributeValue, ObjectType, Record
from ferry.state.rows import Watermark
from ferry_agent.dc.sid_history import SidHistoryRequest, SidHistoryResult, SourcePrincipal
from ferry_agent.directory import batch as ad_batch
from ferry_agent.directory import read as ad_read
from ferry_agent.dn import dn_key, parent_dn
from ferry_agent.errors import FerryAgentError
from ferry_agent.passwords.transfer import PasswordSet, SealedPassword
from ferry_agent.sealed import Recipient

# Read on every object whatever the workflow asks: identity, placement, state, references.
BASE_ATTRIBUTES = ("cn", "objectClass", "userAccountControl", "member", "manager")
# Attributes that are not data to stage: they describe the object, not the person.
_NOT_STAGED = frozenset(a.lower() for a in (
    "objectClass", "objectGUID", "userAccountControl", "uSNChanged", "distinguishedName",
    "member", "manager"))


@dataclass(frozen=True)
class MigrationNeeds:
    """What the workflows ask of one AD environment beyond reading and writing objects."""

    replication: bool = False                  # a password sync source: replication rights
    reset_password_ous: tuple[str, ...] = ()   # a password sync target: Reset Password there
    sid_history: bool = False                  # a SID history target: agents on its DCs
    dc_agent: bool = False                     # a DCAgent source: its agents send changes
    source_domains: tuple[str, ...] = ()       # SID history from these (DNS names)

    def __bool__(self) -> bool:
        return (self.replication or bool(self.reset_password_ous) or self.sid_history
                or self.dc_agent)


PASSWORD_WATERMARK = "drs"   # where password replication resumes: a DRSUAPI high-water mark


class SealedPasswords(Protocol):
    """Sealed passwords streamed from a read; `watermark` is set once iterated to the end."""

    watermark: str | None

    def __iter__(self) -> Iterator[SealedPassword]: ...


class DirectoryOperations(Protocol):
    """What the connector needs from a directory session (ferry_agent's DirectorySession)."""

    def close(self) -> None: ...
    def exists(self, dn: str) -> bool: ...
    def initial_watermark(self, scope: ad_read.ReadScope) -> ad_read.AdWatermark: ...
    def read_full(self, scope: ad_read.ReadScope, attributes: Sequence[str]
                  ) -> Iterable[ad_read.Entry]: ...
    def read_changes(self, scope: ad_read.ReadScope, attributes: Sequence[str],
                     watermark: ad_read.AdWatermark) -> ad_read.Changes: ...
    def read_by_guids(self, guids: Sequence[str], attributes: Sequence[str]
                      ) -> Iterable[ad_read.Entry]: ...
    def resolve_dns(self, dns: Sequence[str]) -> dict[str, str]: ...
    def read_by_values(self, attribute: str, values: Sequence[str], attributes: Sequence[str],
                       scope: ad_read.ReadScope) -> Iterable[ad_read.Entry]: ...
    def write(self, writes: Sequence[ad_batch.Write]) -> Iterable[ad_batch.WriteResult]: ...
    def add_sid_history(self, requests: Sequence[SidHistoryRequest]
                        ) -> Sequence[SidHistoryResult | FerryAgentError]: ...
    def recipients(self) -> list[Recipient]: ...
    def check_migration(self, replication: bool, reset_password_ous: Sequence[str],
                        sid_history: bool, dc_agent: bool = False,
                        source_domains: Sequence[str] = ()) -> list[tuple[bool, str]]: ...
    def read_passwords(self, watermark: str | None, guids: Sequence[str] | None,
                       recipients: Sequence[Recipient]) -> SealedPasswords: ...
    def set_passwords(self, items: Sequence[PasswordSet]) -> list[str | None]: ...


class ActiveDirectoryConnector:
    """One AD domain: full and delta reads into Records, and operations applied by anchor."""

    batch_size = 200  # writes per call: one round trip through an agent, small enough to stream

    def __init__(self, name: str, directory: DirectoryOperations, base_dn: str,
                 scope_ous: Sequence[str] = (), where: str = ""):
        self.name = name
        self.directory = directory
        self.base_dn = base_dn
        self.scope_ous = list(scope_ous) or [base_dn]
        self.where = where or name    # e.g. host:port, for messages
        self._dn_of: dict[str, str] = {}      # anchor -> DN, kept current through writes
        self._anchor_of: dict[str, str] = {}  # DN's comparison key -> anchor
        self._known_ous: set[str] = set()     # comparison keys

    def check(self) -> str:
        missing = [dn for dn in self.scope_ous if not self.directory.exists(dn)]
        if missing:
            raise ConnectorCheckError(f"bound to {self.where}, but scope container {missing[0]}"
                                      " does not exist; fix spec.scope.ous")
        return f"bound to {self.where}; {len(self.scope_ous)} scope container(s) readable"

    def check_migration(self, needs: MigrationNeeds) -> str:
        """What password sync and SID history need here; raises naming each that is missing."""
        found = self.directory.check_migration(needs.replication, needs.reset_password_ous,
                                               needs.sid_history, needs.dc_agent,
                                               needs.source_domains)
        missing = [message for ok, message in found if not ok]
        if missing:
            raise ConnectorCheckError("; ".join(missing))
        return "; ".join(message for _, message in found)

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
        scope = ad_read.ReadScope(base_dns=bases, object_types=[t.value for t in object_types])
        wanted = sorted({*BASE_ATTRIBUTES, *attributes})
        if watermark is None:
            start = self.directory.initial_watermark(scope)
            entries = list(self.directory.read_full(scope, wanted))
            deleted: list[str] = []
            full = True
        else:
            changes = self.directory.read_changes(
                scope, wanted, ad_read.AdWatermark(watermark.kind, watermark.value))
            # An object that left the scope is, for this directory's joins, gone.
            entries, start, full = changes.entries, changes.watermark, False
            deleted = [*changes.deleted, *changes.out_of_scope]
        records = self._records(entries)
        return ReadResult(records, deleted, Watermark(start.kind, start.value), full)

    def read_anchors(self, anchors: Collection[str], attributes: Collection[str]) -> list[Record]:
        wanted = sorted({*BASE_ATTRIBUTES, *attributes})
        return self._records(list(self.directory.read_by_guids(list(anchors), wanted)))

    def find(self, attribute: str, values: Collection[str], object_types: Collection[ObjectType],
             attributes: Collection[str]) -> list[Record]:
        bases = [dn for dn in self.scope_ous if self.directory.exists(dn)]
        if not bases or not values:
            return []
        scope = ad_read.ReadScope(base_dns=bases, object_types=[t.value for t in object_types])
        wanted = sorted({*BASE_ATTRIBUTES, *attributes})
        return self._records(list(self.directory.read_by_values(attribute, list(values),
                                                                wanted, scope)))

    def _records(self, entries: list[ad_read.Entry]) -> list[Record]:
        for entry in entries:
            self._remember(entry.guid, entry.dn)
        referenced = {
            dn_key(dn): dn for e in entries
            for dn in (*e.members, *e.attributes.get("manager", ()))
        }
        unknown = [dn for key, dn in referenced.items() if key not in self._anchor_of]
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
        return tuple(a for a in (self._anchor_of.get(dn_key(dn)) for dn in dns) if a)

    def _remember(self, anchor: str, dn: str) -> None:
        old = self._dn_of.get(anchor)
        if old is not None:
            self._anchor_of.pop(dn_key(old), None)
        self._dn_of[anchor] = dn
        self._anchor_of[dn_key(dn)] = anchor

    def dn_of(self, anchor: str) -> str:
        try:
            return self._dn_of[anchor]
        except KeyError:
            raise ObjectError(anchor, "resolve",
                              f"object {anchor} not found in the last read") from None

    # writing ---------------------------------------------------------------------------
    def write(self, writes: Sequence[ObjectWrite]) -> list[WriteOutcome]:
        outcomes: list[WriteOutcome] = [WriteOutcome()] * len(writes)
        sent: list[tuple[int, ad_batch.Write, _Undo]] = []
        for index, write in enumerate(writes):
            try:
                item, undo = self._directory_write(write)
            except ObjectError as exc:
                outcomes[index] = WriteOutcome(error=str(exc))
                continue
            if item is not None:
                sent.append((index, item, undo))
        results = self.directory.write([item for _, item, _ in sent]) if sent else []
        for (index, item, undo), result in zip(sent, results, strict=True):
            if result.error is not None:
                undo()
                outcomes[index] = WriteOutcome(error=str(result.error))
            elif item.kind == "create":
                self._remember(result.guid, item.dn)
                outcomes[index] = WriteOutcome(anchor=result.guid)
        return outcomes

    # passwords: sealed from the source's reader to the target's setter ------------------
    def password_recipients(self) -> list[Recipient]:
        return self.directory.recipients()

    def read_passwords(self, watermark: Watermark | None, guids: Sequence[str] | None,
                       recipients: Sequence[Recipient]) -> SealedPasswords:
        if watermark is not None and watermark.kind != PASSWORD_WATERMARK:
            raise ConnectorCheckError(f"{self.where}: a {watermark.kind} watermark is not a"
                                      " password replication watermark")
        return self.directory.read_passwords(watermark.value if watermark else None, guids,
                                             recipients)

    def set_passwords(self, items: Sequence[PasswordSet]) -> list[str | None]:
        return self.directory.set_passwords(items) if items else []

    def add_sid_history(self, adds: Sequence[SidHistoryAdd], source_domain: str = "",
                        source_dc: str = "") -> list[WriteOutcome]:
        """Each add's outcome; targets are named by objectGUID, so a rename in between
        cannot send a SID to another object."""
        if not adds:
            return []
        results = self.directory.add_sid_history([SidHistoryRequest(
            f"<GUID={a.target_anchor}>", (a.sid,),
            SourcePrincipal(source_domain, a.source_principal, source_dc)
            if source_domain and source_dc and a.source_principal else None) for a in adds])
        if len(results) != len(adds):
            raise ConnectorCheckError(f"{self.where} answered {len(results)} sIDHistory"
                                      f" outcomes for {len(adds)} requests")
        return [WriteOutcome(error=str(r)) if isinstance(r, Exception)
                else WriteOutcome(anchor=a.target_anchor, dn=r.dn)
                for a, r in zip(adds, results, strict=True)]

    def _directory_write(self, write: ObjectWrite) -> tuple[ad_batch.Write | None, _Undo]:
        """The directory write for one operation, and how to forget what it assumed.

        The connector's own view (DNs by anchor, OUs known to exist) moves ahead as each write
        is made, so that later writes of the same batch see it; a refused write undoes it."""
        op = write.op
        if op.kind is OpKind.CREATE:
            values = {k: _values(v) for k, v in op.changes.items() if v is not None}
            parent, undo = self._parent_to_ensure(op.dn)
            return ad_batch.Write("create", op.dn, object_type=op.object_type.value,
                                  attributes=values, enabled=op.enabled,
                                  password=write.password,
                                  must_change_password=write.must_change_password,
                                  parent=parent), undo
        if op.kind is OpKind.UPDATE:
            dn = self.dn_of(op.target_anchor or "")
            changes = {k: (None if v is None else _values(v)) for k, v in op.changes.items()
                       if k not in REFERENCE_ATTRIBUTES}
            if not changes and op.enabled is None:
                return None, _nothing
            return ad_batch.Write("update", dn, attributes=changes, enabled=op.enabled), _nothing
        if op.kind is OpKind.MOVE:
            anchor = op.target_anchor or ""
            dn, new_dn = self.dn_of(anchor), op.new_dn or ""
            parent, forget_parent = self._parent_to_ensure(new_dn)
            self._remember(anchor, new_dn)

            def undo_move() -> None:
                forget_parent()
                self._remember(anchor, dn)
            return ad_batch.Write("move", dn, new_dn=new_dn, parent=parent), undo_move
        if op.kind is OpKind.DELETE:
            anchor = op.target_anchor or ""
            dn = self.dn_of(anchor)
            self._forget(anchor)
            return ad_batch.Write("delete", dn), lambda: self._remember(anchor, dn)
        return self._reference_write(write), _nothing

    def _reference_write(self, write: ObjectWrite) -> ad_batch.Write:
        attribute = write.op.attribute or "member"
        dn = self.dn_of(write.target)
        add_dns = [self.dn_of(a) for a in write.add]
        # An object deleted meanwhile has already left every group: nothing to remove.
        remove_dns = [dn for dn in map(self._dn_of.get, write.remove) if dn]
        if attribute == "member":
            return ad_batch.Write("members", dn, add=add_dns, remove=remove_dns)
        # single-valued references such as manager
        return ad_batch.Write("update", dn, attributes={attribute: add_dns[:1] or None})

    def _parent_to_ensure(self, dn: str) -> tuple[str, _Undo]:
        """The parent OU a write must create first when not known to exist, or ""."""
        parent = parent_dn(dn)
        key = dn_key(parent)
        if key in self._known_ous or key == dn_key(self.base_dn):
            return "", _nothing
        self._known_ous.add(key)
        return parent, lambda: self._known_ous.discard(key)

    def _forget(self, anchor: str) -> None:
        dn = self._dn_of.pop(anchor, None)
        if dn is not None:
            self._anchor_of.pop(dn_key(dn), None)


_Undo = Callable[[], None]


def _nothing() -> None:
    pass


def _values(value: AttributeValue) -> list[str]:
    return [value] if isinstance(value, str) else list(value)
