"""One tenant's directory: objects in dicts keyed by id, an index by userPrincipalName and one
by SMTP address, group and administrative-unit memberships, soft-deleted objects, and the
change sequence that delta queries read.

Every change to a user or group (and every membership change) takes the next sequence number;
a delta token remembers the number it was issued at. Nothing here checks permissions or shapes
JSON: the Graph handlers do that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .errors import conflict, not_found
from .model import Record, now_iso

KINDS = ("user", "group", "contact", "device", "administrativeUnit")


@dataclass(frozen=True)
class Tombstone:
    kind: str
    seq: int
    reason: str  # 'changed' (soft-deleted, restorable) or 'deleted' (gone for good)


@dataclass(frozen=True)
class MemberChange:
    seq: int
    group_id: str
    member_id: str
    added: bool


class Directory:
    def __init__(self, initial_domain: str) -> None:
        self.initial_domain = initial_domain
        self.objects: dict[str, dict[str, Record]] = {kind: {} for kind in KINDS}
        self.kind_of: dict[str, str] = {}
        self.upn: dict[str, str] = {}  # lower-case UPN -> user id
        self.smtp: dict[str, str] = {}  # lower-case address -> owner id (mail, proxyAddresses)
        self.members: dict[str, dict[str, None]] = {}  # group id -> member ids, in order added
        self.member_of: dict[str, set[str]] = {}
        self.au_members: dict[str, dict[str, None]] = {}
        self.deleted: dict[str, tuple[str, Record, list[str]]] = {}  # id -> kind, record, groups
        self.seq = 0
        self.changed: dict[str, int] = {}  # user/group id -> seq of its last change
        self.tombstones: dict[str, Tombstone] = {}
        self.member_log: deque[MemberChange] = deque()
        self.delta_generation = 0  # tokens from an older generation have expired
        self.delta_reset = False  # expired tokens answer 410 + Location (else 400)

    # ---- lookups ----------------------------------------------------------------------------

    @property
    def users(self) -> dict[str, Record]:
        return self.objects["user"]

    @property
    def groups(self) -> dict[str, Record]:
        return self.objects["group"]

    def get(self, kind: str, key: str) -> Record:
        """The live object of `kind` with id `key` (users also by UPN), or 404."""
        found = self.find(kind, key)
        if found is None:
            raise not_found(key)
        return found

    def find(self, kind: str, key: str) -> Record | None:
        objects = self.objects[kind]
        found = objects.get(key)
        if found is None and kind == "user" and "@" in key:
            user_id = self.upn.get(key.lower())
            found = objects.get(user_id) if user_id else None
        return found

    def get_any(self, object_id: str) -> tuple[str, Record]:
        kind = self.kind_of.get(object_id)
        if kind is None:
            raise not_found(object_id)
        return kind, self.objects[kind][object_id]

    # ---- writes -----------------------------------------------------------------------------

    def touch(self, object_id: str) -> None:
        self.seq += 1
        self.changed[object_id] = self.seq
        self.tombstones.pop(object_id, None)

    def check_unique(self, record: Record, owner: str | None = None) -> None:
        """400 (ObjectConflict) when the UPN or an SMTP address is another object's."""
        upn = record.get("userPrincipalName")
        if upn and self.upn.get(upn.lower(), owner) != owner:
            raise conflict("userPrincipalName")
        for address in _addresses(record):
            if self.smtp.get(address, owner) != owner:
                raise conflict("proxyAddresses")

    def add(self, kind: str, record: Record) -> Record:
        object_id = record["id"]
        record.setdefault("createdDateTime", now_iso())
        if kind in ("user", "group"):
            record.setdefault("deletedDateTime", None)
        self.objects[kind][object_id] = record
        self.kind_of[object_id] = kind
        self._index(record)
        if kind == "group":
            self.members.setdefault(object_id, {})
        if kind == "administrativeUnit":
            self.au_members.setdefault(object_id, {})
        if kind in ("user", "group"):
            self.touch(object_id)
        return record

    def update(self, kind: str, object_id: str, changes: Record) -> Record:
        record = self.objects[kind][object_id]
        merged = {**record, **changes}
        self.check_unique(merged, owner=object_id)
        self._unindex(record)
        record.update(changes)
        self._index(record)
        if kind in ("user", "group"):
            self.touch(object_id)
        return record

    def soft_delete(self, kind: str, object_id: str) -> None:
        """Users and Microsoft 365 groups: to deleted items (restorable, same id)."""
        record = self.objects[kind].pop(object_id)
        del self.kind_of[object_id]
        self._unindex(record)
        groups = sorted(self.member_of.get(object_id, ()))
        for group_id in groups:
            self.remove_member(group_id, object_id)
        record["deletedDateTime"] = now_iso()
        self.deleted[object_id] = (kind, record, groups)
        self.seq += 1
        self.changed.pop(object_id, None)
        self.tombstones[object_id] = Tombstone(kind, self.seq, "changed")

    def hard_delete(self, kind: str, object_id: str) -> None:
        """Security groups on delete, and anything purged from deleted items."""
        if object_id in self.deleted:
            del self.deleted[object_id]
        else:
            record = self.objects[kind].pop(object_id)
            del self.kind_of[object_id]
            self._unindex(record)
            for group_id in sorted(self.member_of.get(object_id, ())):
                self.remove_member(group_id, object_id)
        for member_id in list(self.members.get(object_id, ())):
            self.remove_member(object_id, member_id)
        self.members.pop(object_id, None)
        self.seq += 1
        self.changed.pop(object_id, None)
        self.tombstones[object_id] = Tombstone(kind, self.seq, "deleted")

    def restore(self, object_id: str) -> tuple[str, Record]:
        if object_id not in self.deleted:
            raise not_found(object_id)
        kind, record, groups = self.deleted[object_id]
        self.check_unique(record, owner=object_id)
        del self.deleted[object_id]
        record["deletedDateTime"] = None
        self.objects[kind][object_id] = record
        self.kind_of[object_id] = kind
        self._index(record)
        self.touch(object_id)
        for group_id in groups:  # Entra gives a restored object its memberships back
            if group_id in self.groups:
                self.add_member(group_id, object_id)
        return kind, record

    def add_member(self, group_id: str, member_id: str) -> bool:
        """False when already a member."""
        members = self.members.setdefault(group_id, {})
        if member_id in members:
            return False
        members[member_id] = None
        self.member_of.setdefault(member_id, set()).add(group_id)
        self._log_member(group_id, member_id, True)
        return True

    def remove_member(self, group_id: str, member_id: str) -> bool:
        members = self.members.get(group_id, {})
        if member_id not in members:
            return False
        del members[member_id]
        self.member_of.get(member_id, set()).discard(group_id)
        self._log_member(group_id, member_id, False)
        return True

    def transitive_members(self, group_id: str) -> Iterator[str]:
        """Members of the group and of its nested groups, each once (cycles are fine)."""
        seen: dict[str, None] = {}
        pending = deque([group_id])
        visited = {group_id}
        while pending:
            current = pending.popleft()
            for member_id in self.members.get(current, ()):
                if member_id not in seen and member_id != group_id:
                    seen[member_id] = None
                if self.kind_of.get(member_id) == "group" and member_id not in visited:
                    visited.add(member_id)
                    pending.append(member_id)
        return iter(seen)

    def _log_member(self, group_id: str, member_id: str, added: bool) -> None:
        self.seq += 1
        self.member_log.append(MemberChange(self.seq, group_id, member_id, added))

    def _index(self, record: Record) -> None:
        upn = record.get("userPrincipalName")
        if upn:
            self.upn[upn.lower()] = record["id"]
        for address in _addresses(record):
            self.smtp[address] = record["id"]

    def _unindex(self, record: Record) -> None:
        upn = record.get("userPrincipalName")
        if upn and self.upn.get(upn.lower()) == record["id"]:
            del self.upn[upn.lower()]
        for address in _addresses(record):
            if self.smtp.get(address) == record["id"]:
                del self.smtp[address]


def _addresses(record: Record) -> Iterable[str]:
    """SMTP addresses an object holds: its mail and its smtp: proxy addresses, lower-case."""
    found = set()
    mail = record.get("mail")
    if mail:
        found.add(mail.lower())
    for proxy in record.get("proxyAddresses") or ():
        prefix, _, address = proxy.partition(":")
        if prefix.lower() == "smtp" and address:
            found.add(address.lower())
    return found
