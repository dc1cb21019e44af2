"""Writing AD: create, update, enable/disable, move, delete, group membership and OUs.

Every function raises DirectoryError (naming the DN, the operation and the server's answer)
when the server refuses; the connection stays usable, so callers carry on with the next object.
Passwords only ever travel inside the add request and are never part of an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import ldap3

from ..dn import DN, dn_key, parse_dn, rdn_value, same_dn, split_dn
from .errors import DirectoryError, result_error
from .guid import guid_from_bytes
from .read import read_members
from .values import encode_value

UAC_ACCOUNTDISABLE = 0x0002
UAC_NORMAL_ACCOUNT = 0x0200
UAC_WORKSTATION_TRUST_ACCOUNT = 0x1000

GROUP_SCOPES = {"global": 0x2, "domainlocal": 0x4, "universal": 0x8}
GROUP_SECURITY = 0x80000000

OBJECT_CLASSES: dict[str, list[str]] = {
    "user": ["top", "person", "organizationalPerson", "user"],
    "group": ["top", "group"],
    "contact": ["top", "person", "organizationalPerson", "contact"],
    "device": ["top", "person", "organizationalPerson", "user", "computer"],
}

# Pseudo-attributes accepted by create() for groups instead of a raw groupType.
GROUP_SCOPE_ATTRIBUTE = "groupScope"  # global | universal | domainLocal
GROUP_CATEGORY_ATTRIBUTE = "groupCategory"  # security | distribution

TREE_DELETE_OID = "1.2.840.113556.1.4.805"
_ALREADY_MEMBER = {20, 68}  # attributeOrValueExists (RFC), entryAlreadyExists (AD and Samba)
_NOT_MEMBER = {16, 53}  # noSuchAttribute (RFC), unwillingToPerform (AD and Samba)
_SAM_INVALID = re.compile(r'["/\\\[\]:;|=,+*?<>@\s]')


def group_type(scope: str = "global", security: bool = True) -> int:
    """The signed 32-bit groupType AD stores for a scope and kind."""
    try:
        value = GROUP_SCOPES[scope.replace("_", "").replace("-", "").lower()]
    except KeyError:
        raise ValueError(
            f"unknown group scope {scope!r}; expected global/universal/domainLocal"
        ) from None
    if security:
        value |= GROUP_SECURITY
    return value - (1 << 32) if value & 0x80000000 else value


def parse_group_type(value: int | str) -> tuple[str, bool]:
    """groupType to (scope, security)."""
    number = int(value) & 0xFFFFFFFF
    scope = next((name for name, bit in GROUP_SCOPES.items() if number & bit), "global")
    return scope, bool(number & GROUP_SECURITY)


def _sam_from(value: str, limit: int = 20) -> str:
    cleaned = _SAM_INVALID.sub("", value.split("@", 1)[0]).rstrip(".")
    return cleaned[:limit] or "ferry"


def _encoded(attributes: dict[str, list[str]]) -> dict[str, list[Any]]:
    return {
        name: [encode_value(name, value) for value in values]
        for name, values in attributes.items()
        if values
    }


def _is_encrypted(conn: ldap3.Connection) -> bool:
    return bool(conn.server.ssl or conn.tls_started)


def create(
    conn: ldap3.Connection,
    object_type: str,
    dn: str,
    attributes: dict[str, list[str]],
    *,
    password: str | None = None,
    must_change_password: bool = False,
    enabled: bool | None = None,
) -> str:
    """Create a user, group, contact or device at `dn`; return its objectGUID.

    Users: sAMAccountName defaults from userPrincipalName or the CN; the password goes in the
    add as unicodePwd (LDAPS only); userAccountControl is NORMAL_ACCOUNT plus ACCOUNTDISABLE
    when `enabled` is False (None: enabled iff a password is given); `must_change_password`
    sets pwdLastSet=0. Groups: groupType from `groupType`, or from the `groupScope` and
    `groupCategory` pseudo-attributes (default global security). Devices are computer objects.
    """
    if object_type not in OBJECT_CLASSES:
        raise ValueError(f"unknown object type {object_type!r}; expected {sorted(OBJECT_CLASSES)}")
    attrs = {name: list(values) for name, values in attributes.items() if values}
    lowered = {name.lower(): name for name in attrs}
    for name in ("objectclass", "unicodepwd", "userpassword"):
        if name in lowered:
            raise ValueError(f"{lowered[name]} is set by create(), not through attributes")

    def take(name: str) -> list[str] | None:
        key = lowered.pop(name.lower(), None)
        return attrs.pop(key) if key else None

    payload: dict[str, list[Any]] = {"objectClass": OBJECT_CLASSES[object_type]}
    if object_type in ("user", "device"):
        if "samaccountname" not in lowered:
            source = (attrs.get(lowered.get("userprincipalname", ""), [""]) or [""])[0]
            sam = _sam_from(source or rdn_value(dn))
            attrs["sAMAccountName"] = [sam + "$" if object_type == "device" else sam]
        given = take("userAccountControl")
        base = UAC_WORKSTATION_TRUST_ACCOUNT if object_type == "device" else UAC_NORMAL_ACCOUNT
        uac = int(given[0]) if given else base
        if enabled is None:
            enabled = password is not None or object_type == "device"
        uac = uac & ~UAC_ACCOUNTDISABLE if enabled else uac | UAC_ACCOUNTDISABLE
        payload["userAccountControl"] = [str(uac)]
        if password is not None:
            if not _is_encrypted(conn):
                raise DirectoryError(dn, "create", -1, "a password can only be set over LDAPS")
            payload["unicodePwd"] = [f'"{password}"'.encode("utf-16-le")]
        if must_change_password:
            payload["pwdLastSet"] = ["0"]
    elif object_type == "group":
        scope = take(GROUP_SCOPE_ATTRIBUTE)
        category = take(GROUP_CATEGORY_ATTRIBUTE)
        given = take("groupType")
        if given:
            payload["groupType"] = [str(int(given[0]))]
        else:
            security = (category or ["security"])[0].lower() != "distribution"
            payload["groupType"] = [str(group_type((scope or ["global"])[0], security))]
        if "samaccountname" not in lowered:
            attrs["sAMAccountName"] = [_sam_from(rdn_value(dn), 64)]
    payload.update(_encoded(attrs))
    conn.add(dn, attributes=payload)
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "create")
    return read_guid(conn, dn)


def read_guid(conn: ldap3.Connection, dn: str) -> str:
    """The objectGUID of the object at `dn`."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "read objectGUID of")
    for item in conn.response or ():
        raw = item.get("raw_attributes", {}).get("objectGUID")
        if item.get("type") == "searchResEntry" and raw:
            return guid_from_bytes(raw[0])
    raise DirectoryError(dn, "read objectGUID of", 32, "object has no objectGUID")


def update(conn: ldap3.Connection, dn: str, changes: dict[str, list[str] | None]) -> None:
    """Replace attribute values; None or [] clears the attribute. Nothing to change: no call."""
    if not changes:
        return
    modlist = {
        name: [(ldap3.MODIFY_REPLACE, [encode_value(name, v) for v in values or ()])]
        for name, values in changes.items()
    }
    conn.modify(dn, modlist)
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "update")


def set_enabled(conn: ldap3.Connection, dn: str, enabled: bool) -> None:
    """Clear or set ACCOUNTDISABLE, keeping every other userAccountControl bit."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "read userAccountControl of")
    raw = next(
        (
            i["raw_attributes"].get("userAccountControl")
            for i in conn.response or ()
            if i.get("type") == "searchResEntry"
        ),
        None,
    )
    if not raw:
        raise DirectoryError(dn, "set enabled on", 16, "object has no userAccountControl")
    current = int(raw[0])
    wanted = current & ~UAC_ACCOUNTDISABLE if enabled else current | UAC_ACCOUNTDISABLE
    if wanted != current:
        conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(wanted)])]})
        if conn.result["result"] != 0:
            raise result_error(conn.result, dn, "set enabled on")


def move(conn: ldap3.Connection, dn: str, new_dn: str) -> None:
    """Rename and/or move an object (one modify DN with new RDN and, if needed, new parent)."""
    if dn == new_dn:
        return
    new_rdn, new_parent = split_dn(new_dn)
    superior = None if same_dn(split_dn(dn)[1], new_parent) else new_parent
    conn.modify_dn(dn, new_rdn, delete_old_dn=True, new_superior=superior)
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "move")


def delete(conn: ldap3.Connection, dn: str, *, tree: bool = False) -> None:
    """Delete an object; `tree` also deletes its children (e.g. a computer's sub-objects)."""
    controls = [(TREE_DELETE_OID, True, None)] if tree else None
    conn.delete(dn, controls=controls)
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "delete")


def add_members(
    conn: ldap3.Connection, group_dn: str, member_dns: Iterable[str], chunk: int = 500
) -> None:
    """Add members in chunks (one modify each); values already present are skipped."""
    _change_members(conn, group_dn, list(member_dns), chunk, ldap3.MODIFY_ADD)


def remove_members(
    conn: ldap3.Connection, group_dn: str, member_dns: Iterable[str], chunk: int = 500
) -> None:
    """Remove members in chunks (one modify each); values already absent are skipped."""
    _change_members(conn, group_dn, list(member_dns), chunk, ldap3.MODIFY_DELETE)


def _change_members(
    conn: ldap3.Connection, group_dn: str, dns: Sequence[str], chunk: int, operation: str
) -> None:
    adding = operation == ldap3.MODIFY_ADD
    tolerated = _ALREADY_MEMBER if adding else _NOT_MEMBER
    label = "add members to" if adding else "remove members from"
    current: set[str] | None = None
    for index in range(0, len(dns), chunk):
        batch = list(dns[index : index + chunk])
        conn.modify(group_dn, {"member": [(operation, batch)]})
        code = conn.result["result"]
        if code == 0:
            continue
        if code not in tolerated:
            raise result_error(conn.result, group_dn, label)
        # Some values are already in the wanted state: drop those (by the group's current
        # members) and retry once; if names do not compare cleanly, go value by value.
        if current is None:
            current = {dn_key(m) for m in read_members(conn, group_dn)}
        rest = [dn for dn in batch if (dn_key(dn) in current) != adding]
        if not rest:
            continue
        conn.modify(group_dn, {"member": [(operation, rest)]})
        if conn.result["result"] == 0:
            continue
        for value in rest:
            conn.modify(group_dn, {"member": [(operation, [value])]})
            code = conn.result["result"]
            if code != 0 and code not in tolerated:
                raise result_error(conn.result, group_dn, label)


Refusal = Callable[[str, Iterable[str]], DirectoryError | None]


def ensure_ou(conn: ldap3.Connection, dn: str, *, allowed: Refusal | None = None) -> list[str]:
    """Create the missing OUs down to `dn` (top first); return the DNs created.

    allowed: answers the error for an OU that may not be created here (an agent's
    write_subtrees), raised before the add is sent; None creates wherever the server lets.
    """
    rdns = parse_dn(dn).rdns
    created: list[str] = []
    missing = False
    for depth in range(len(rdns) - 1, -1, -1):
        attr = rdns[depth].attribute.upper()
        if attr == "DC":
            continue
        current = str(DN(rdns[depth:]))
        if not missing:
            conn.search(current, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
            code = conn.result["result"]
            if code == 0:
                continue
            if code != 32:
                raise result_error(conn.result, current, "look up")
            missing = True
        if attr != "OU":
            raise DirectoryError(current, "create OU", 32, "missing parent is not an OU")
        refused = allowed("create OU", [current]) if allowed else None
        if refused is not None:
            raise refused
        conn.add(current, attributes={"objectClass": ["top", "organizationalUnit"]})
        if conn.result["result"] not in (0, 68):
            raise result_error(conn.result, current, "create OU")
        created.append(current)
    return created
