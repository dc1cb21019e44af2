"""Bulk seeding and out-of-band changes for the admin API: objects go straight into a tenant's
directory (no permissions, no quota, not counted as writes) but through the same indexes and
change sequence, so seeded objects show up in delta rounds like any change.

Seeds are Graph-shaped dicts; missing ids are generated, and a seed whose id exists updates
that object. Users need a userPrincipalName on a verified domain; groups and administrative
units may list `members` by id or (users) UPN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .directory import Directory
from .model import Record, new_id
from .state import Tenant

ORDER = (("users", "user"), ("contacts", "contact"), ("devices", "device"),
         ("groups", "group"), ("administrativeUnits", "administrativeUnit"))


class SeedError(ValueError):
    pass


def seed(tenant: Tenant, batch: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    directory = tenant.directory
    created: dict[str, list[str]] = {}
    memberships: list[tuple[str, str, list[str]]] = []
    for key, kind in ORDER:
        ids = []
        for raw in batch.get(key) or []:
            fields = dict(raw)
            members = fields.pop("members", None)
            record = _defaults(tenant, kind, fields)
            ids.append(_upsert(directory, kind, record))
            if members is not None:
                memberships.append((kind, record["id"], members))
        created[key] = ids
    for kind, owner, members in memberships:
        for key in members:
            member_id = _resolve(directory, key)
            if kind == "group":
                directory.add_member(owner, member_id)
            else:
                units = directory.au_members.setdefault(owner, {})
                units[member_id] = None
    return created


def change_members(directory: Directory, group_id: str, add: Iterable[str],
                   remove: Iterable[str]) -> None:
    if group_id not in directory.groups:
        raise SeedError(f"no group {group_id}")
    for key in add:
        directory.add_member(group_id, _resolve(directory, key))
    for key in remove:
        directory.remove_member(group_id, _resolve(directory, key))


def _upsert(directory: Directory, kind: str, record: Record) -> str:
    object_id = record["id"]
    if object_id in directory.objects[kind]:
        directory.update(kind, object_id, record)
    else:
        if object_id in directory.kind_of:
            raise SeedError(f"id {object_id} is already a {directory.kind_of[object_id]}")
        directory.check_unique(record)
        directory.add(kind, record)
    return object_id


def _defaults(tenant: Tenant, kind: str, fields: dict[str, Any]) -> Record:
    fields.setdefault("id", new_id())
    if kind == "user":
        upn = fields.get("userPrincipalName")
        if not upn or "@" not in upn:
            raise SeedError(f"user seed without a userPrincipalName: {fields}")
        if not tenant.owns_domain(upn.rsplit("@", 1)[1]):
            raise SeedError(f"{upn}: the domain is not verified in tenant {tenant.id}")
        local = upn.split("@")[0]
        fields.setdefault("accountEnabled", True)
        fields.setdefault("displayName", local)
        fields.setdefault("mailNickname", local)
        fields.setdefault("userType", "Member")
    elif kind == "group":
        fields.setdefault("displayName", fields["id"])
        fields.setdefault("mailNickname", re.sub(r"[^A-Za-z0-9._-]", "", fields["displayName"])
                          or fields["id"])
        unified = "Unified" in (fields.get("groupTypes") or [])
        fields.setdefault("groupTypes", [])
        fields.setdefault("securityEnabled", not unified)
        fields.setdefault("mailEnabled", unified)
        if unified:
            mail = f"{fields['mailNickname']}@{tenant.initial_domain}"
            fields.setdefault("mail", mail)
            fields.setdefault("proxyAddresses", [f"SMTP:{mail}"])
            fields.setdefault("visibility", "Public")
    else:
        fields.setdefault("displayName", fields["id"])
    return fields


def _resolve(directory: Directory, key: str) -> str:
    if key in directory.kind_of:
        return key
    user_id = directory.upn.get(key.lower())
    if user_id is None:
        raise SeedError(f"no object {key!r} to add as a member")
    return user_id
