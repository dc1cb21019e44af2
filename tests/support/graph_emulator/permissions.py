"""Application permissions each call accepts: Microsoft's least privileged permission for the
API plus the higher privileged ones its reference page lists (Graph v1.0 API reference,
"Permissions" tables, application column).

Directory.ReadWrite.All does not let an app delete users or groups (its description in the
permissions reference says so), hence the short delete lists.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import forbidden

READ_USERS = frozenset({
    "User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
})
CREATE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
UPDATE_USERS = frozenset({
    "User.ReadWrite.All", "Directory.ReadWrite.All", "User.EnableDisableAccount.All",
    "User.ManageIdentities.All",
})
# Setting passwordProfile on someone else needs the password permission (or User.ReadWrite.All).
UPDATE_PASSWORDS = frozenset({"User.ReadWrite.All", "User-PasswordProfile.ReadWrite.All"})
DELETE_USERS = frozenset({"User.ReadWrite.All"})
INVITE_USERS = frozenset({"User.Invite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})

READ_GROUPS = frozenset({
    "Group.Read.All", "Group.ReadWrite.All", "GroupMember.Read.All", "Directory.Read.All",
    "Directory.ReadWrite.All", "Group-NestingSupport.ReadWrite.All",
})
CREATE_GROUPS = frozenset({"Group.Create", "Group.ReadWrite.All", "Directory.ReadWrite.All"})
UPDATE_GROUPS = frozenset({
    "Group.ReadWrite.All", "Directory.ReadWrite.All", "Group-NestingSupport.ReadWrite.All",
})
DELETE_GROUPS = frozenset({"Group.ReadWrite.All"})
READ_MEMBERS = frozenset({
    "GroupMember.Read.All", "GroupMember.ReadWrite.All", "Group.Read.All", "Group.ReadWrite.All",
    "Directory.Read.All", "Directory.ReadWrite.All",
})
WRITE_MEMBERS = frozenset({
    "GroupMember.ReadWrite.All", "Group.ReadWrite.All", "Directory.ReadWrite.All",
})

READ_CONTACTS = frozenset({"OrgContact.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"})
READ_DEVICES = frozenset({
    "Device.Read.All", "Device.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
})
READ_ADMINISTRATIVE_UNITS = frozenset({
    "AdministrativeUnit.Read.All", "AdministrativeUnit.ReadWrite.All", "Directory.Read.All",
    "Directory.ReadWrite.All",
})

READ_DELETED = {"user": READ_USERS, "group": frozenset({
    "Group.Read.All", "Group.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All",
})}
RESTORE_DELETED = {"user": DELETE_USERS, "group": DELETE_GROUPS}

READ_BY_KIND = {
    "user": READ_USERS, "group": READ_GROUPS, "contact": READ_CONTACTS, "device": READ_DEVICES,
    "administrativeUnit": READ_ADMINISTRATIVE_UNITS,
}


def require(roles: Iterable[str], allowed: frozenset[str]) -> None:
    """403 Authorization_RequestDenied unless one of `allowed` was granted."""
    if allowed.isdisjoint(roles):
        raise forbidden()
