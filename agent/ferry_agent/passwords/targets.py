"""Which target users a password may be set on, decided before any SAMR call (and, with
`account_types` widened to groups, which targets DsAddSidHistory may write on Windows).

Never: built-in accounts (RID below 1000: Administrator, krbtgt, Guest), critical system
objects, anything but a user account (a computer's password is its trust with the domain),
accounts with adminCount set, members of a protected group (ferry_agent.sid.protected_group)
directly, nested or by primary group, and objects outside the agent's write subtrees. Group
membership comes from tokenGroups, which the DC computes transitively (and with the primary
group) on a base search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import ldap3

from ..directory.guid import guid_dn, normalize_guid
from ..directory.subtrees import WriteSubtrees
from ..directory.values import sid_from_bytes
from ..sid import FIRST_ASSIGNED_RID, SidError, parse_sid, protected_group

OPERATION = "set password"
SAM_NORMAL_USER_ACCOUNT = 0x30000000
USERS = frozenset({SAM_NORMAL_USER_ACCOUNT})
# Security and distribution groups, global/universal and domain local (MS-SAMR 2.2.1.9).
GROUPS = frozenset({0x10000000, 0x10000001, 0x20000000, 0x20000001})
_ATTRIBUTES = ["objectSid", "sAMAccountType", "adminCount", "isCriticalSystemObject",
               "tokenGroups", "sAMAccountName"]


@dataclass(frozen=True)
class PasswordTarget:
    """A target user by objectGUID: its DN and objectSid, and `refusal` ("" when a password
    may be set on it, else why not, naming the account)."""

    guid: str
    dn: str
    sid: str
    refusal: str
    sam: str = ""

    @property
    def allowed(self) -> bool:
        return not self.refusal


def resolve(conn: ldap3.Connection, guids: Sequence[str], subtrees: WriteSubtrees | None,
            *, operation: str = OPERATION,
            account_types: frozenset[int] = USERS) -> list[PasswordTarget]:
    """One PasswordTarget per GUID, in order. `subtrees` None: no subtree limit (a sync Job
    writing directly, bounded by its own account's rights); an agent passes its own."""
    return [_resolve_one(conn, guid, subtrees, operation, account_types) for guid in guids]


def _resolve_one(conn: ldap3.Connection, guid: str, subtrees: WriteSubtrees | None,
                 operation: str, account_types: frozenset[int]) -> PasswordTarget:
    try:
        guid = normalize_guid(guid)
    except (ValueError, AttributeError, TypeError):
        return PasswordTarget(str(guid), "", "", f"{operation}: {guid!r} is not an objectGUID")
    conn.search(guid_dn(guid), "(objectClass=*)", ldap3.BASE, attributes=_ATTRIBUTES)
    entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    if conn.result.get("result") != 0 or not entries:
        why = conn.result.get("description") or "not found"
        return PasswordTarget(guid, "", "", f"{operation}: no target object with objectGUID"
                                            f" {guid} ({why})")
    dn = str(entries[0]["dn"])
    raw = entries[0].get("raw_attributes") or {}
    sid = sid_from_bytes(raw["objectSid"][0]) if raw.get("objectSid") else ""
    why = _protection(raw, sid, account_types)
    if not why and subtrees is not None:
        refused = subtrees.refusal(operation, [dn])
        why = refused.message if refused is not None else ""
    return PasswordTarget(guid, dn, sid, f'{operation} "{dn}": refused, {why}' if why else "",
                          _first(raw, "sAMAccountName"))


def _protection(raw: dict[str, list[bytes]], sid_text: str,
                account_types: frozenset[int] = USERS) -> str:
    """Why this account is never touched, or ""."""
    try:
        sid = parse_sid(sid_text)
    except SidError:
        return "it has no objectSid of a domain account"
    if not sid.is_domain_account or sid.rid < FIRST_ASSIGNED_RID:
        return f"it is a built-in account ({sid}, RID below {FIRST_ASSIGNED_RID})"
    if _first(raw, "isCriticalSystemObject").upper() == "TRUE":
        return "it is a critical system object (isCriticalSystemObject)"
    account_type = _first(raw, "sAMAccountType")
    if not account_type.isdigit() or int(account_type) not in account_types:
        return ("it is not a user account (only users get passwords synced)"
                if account_types == USERS else "it is neither a user nor a group")
    for value in raw.get("tokenGroups") or []:
        group = sid_from_bytes(value)
        name = protected_group(group)
        if name:
            return f"it is a member of {name} ({group}), directly, nested or by primary group"
    if _first(raw, "adminCount") not in ("", "0"):
        return ("its adminCount is set (it is or was in a protected group); clear adminCount"
                " if it no longer is")
    return ""


def _first(raw: dict[str, list[bytes]], name: str) -> str:
    values = raw.get(name) or []
    return values[0].decode("utf-8", "replace").strip() if values else ""
