"""Which Graph application permissions a tenant's app needs for what Ferry does with it.

Each need is the least privileged permission of Microsoft's Graph API reference; an app that
holds a higher privileged permission the reference lists for the same calls meets it too.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from ferry.engine.records import ObjectType

_DIRECTORY_READ = ("Directory.Read.All", "Directory.ReadWrite.All")
# permission -> the higher privileged ones that also grant its calls
SATISFIED_BY: dict[str, tuple[str, ...]] = {
    "User.Read.All": ("User.ReadWrite.All", *_DIRECTORY_READ),
    "Group.Read.All": ("Group.ReadWrite.All", *_DIRECTORY_READ),
    "GroupMember.Read.All": ("GroupMember.ReadWrite.All", "Group.Read.All",
                             "Group.ReadWrite.All", *_DIRECTORY_READ),
    "OrgContact.Read.All": _DIRECTORY_READ,
    "Device.Read.All": ("Device.ReadWrite.All", *_DIRECTORY_READ),
    "AdministrativeUnit.Read.All": ("AdministrativeUnit.ReadWrite.All", *_DIRECTORY_READ),
    # Deleting users and groups is not part of Directory.ReadWrite.All.
    "User.ReadWrite.All": (),
    "Group.ReadWrite.All": (),
    "GroupMember.ReadWrite.All": ("Group.ReadWrite.All", "Directory.ReadWrite.All"),
    "User.Invite.All": ("User.ReadWrite.All", "Directory.ReadWrite.All"),
}
_READ = {ObjectType.USER: ("User.Read.All",),
         ObjectType.GROUP: ("Group.Read.All", "GroupMember.Read.All"),
         ObjectType.CONTACT: ("OrgContact.Read.All",),
         ObjectType.DEVICE: ("Device.Read.All",)}
_WRITE = {ObjectType.USER: ("User.ReadWrite.All",),
          ObjectType.GROUP: ("Group.ReadWrite.All", "GroupMember.ReadWrite.All")}


@dataclass(frozen=True)
class Need:
    permission: str
    why: str


def needs(read: Collection[ObjectType], written: Collection[ObjectType], *,
          administrative_units: bool = False, guests: bool = False) -> list[Need]:
    """What an app needs to read `read` and write `written` (and scope, and invite)."""
    found: dict[str, str] = {}
    for object_type in read:
        for permission in _READ.get(object_type, ()):
            found.setdefault(permission, f"read {object_type.value}s")
    if administrative_units:
        found.setdefault("AdministrativeUnit.Read.All", "scope by administrative unit")
    for object_type in written:
        for permission in _WRITE.get(object_type, ()):
            found[permission] = f"write {object_type.value}s"
    if guests:
        found["User.Invite.All"] = "create guests through invitations"
    # A read need that a needed write permission meets is not a need of its own.
    return [Need(permission, why) for permission, why in found.items()
            if found.keys().isdisjoint(SATISFIED_BY.get(permission, ()))]


def missing(required: Iterable[Need], granted: Collection[str]) -> list[Need]:
    """The needs no granted permission meets."""
    held = set(granted)
    return [need for need in required
            if need.permission not in held
            and held.isdisjoint(SATISFIED_BY.get(need.permission, ()))]
