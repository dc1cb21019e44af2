"""Whether the bound account holds the extended rights password sync needs, decided from DACLs
read over LDAP (acl.py decides): the replication rights on the domain root (reading hashes)
and Reset Password on the users of an OU (setting them). `ferry check` reports the findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ldap3
from ldap3.protocol.microsoft import security_descriptor_control
from ldap3.utils.conv import escape_filter_chars

from ferry_agent.errors import FerryAgentError

from ..dn import parse_dn
from .acl import (
    INHERITED,
    Ace,
    AclError,
    Dacl,
    SddlDacl,
    Verdict,
    check_control_access,
    new_child_dacl,
    parse_dacl,
    parse_sddl_dacl,
)
from .guid import guid_filter_value
from .values import sid_from_bytes

_SD_FLAGS_DACL = 0x4  # LDAP_SERVER_SD_FLAGS_OID (1.2.840.113556.1.4.801) value: the DACL only
# SIDs every network logon's token holds (MS-DTYP 2.4.2.4), whatever its groups.
_LOGON_SIDS = ("S-1-1-0", "S-1-5-2", "S-1-5-11")  # Everyone, Network, Authenticated Users
USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"  # schemaIDGUID of class user


@dataclass(frozen=True)
class ExtendedRight:
    """A control access right: its rightsGuid, its cn, and the displayName dsacls takes."""

    name: str
    display_name: str
    guid: str


REPLICATION_GET_CHANGES = ExtendedRight(
    "DS-Replication-Get-Changes", "Replicating Directory Changes",
    "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2",
)  # fmt: skip
REPLICATION_GET_CHANGES_ALL = ExtendedRight(
    "DS-Replication-Get-Changes-All", "Replicating Directory Changes All",
    "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2",
)  # fmt: skip
RESET_PASSWORD = ExtendedRight(
    "User-Force-Change-Password", "Reset Password", "00299570-246d-11d0-a768-00aa006e0529"
)


class RightsCheckError(FerryAgentError):
    """The rights could not be decided: an account, DACL or schema entry was not readable."""


@dataclass(frozen=True)
class Account:
    """The account a connection is bound as, and the SIDs of its token."""

    dn: str
    sam_account_name: str
    sid: str
    sids: frozenset[str]
    dns_domain: str

    @property
    def logon_name(self) -> str:
        """`name@dns.domain`, a trustee name dsacls takes."""
        return f"{self.sam_account_name}@{self.dns_domain}"


def bound_account(conn: ldap3.Connection) -> Account:
    """The bound account, found by the LDAP "Who am I?" operation (RFC 4532; Samba lacks it)
    or else by the bind name. Its token: objectSid + tokenGroups + the logon SIDs, and the
    rootDSE's tokenGroups (the DC's own view of this connection's token, where it has one)."""
    base = _naming_context(conn)
    dns_domain = ".".join(rdn.value.lower() for rdn in parse_dn(base).rdns)
    identity = _who_am_i(conn) or str(conn.user or "")
    dn = _find_account(conn, identity, base, dns_domain)
    entry = _read_entry(conn, dn, ["objectSid", "sAMAccountName", "tokenGroups"])
    if entry is None or not entry.get("objectSid"):
        raise RightsCheckError(f"cannot read objectSid and tokenGroups of {dn}")
    sid = sid_from_bytes(entry["objectSid"][0])
    sids = {sid, *_LOGON_SIDS, *(sid_from_bytes(raw) for raw in entry.get("tokenGroups", []))}
    root = _read_entry(conn, "", ["tokenGroups"]) or {}
    sids.update(sid_from_bytes(raw) for raw in root.get("tokenGroups", []))
    sam = entry.get("sAMAccountName", [b""])[0].decode()
    return Account(dn, sam, sid, frozenset(sids), dns_domain)


def _who_am_i(conn: ldap3.Connection) -> str | None:
    answer = conn.extend.standard.who_am_i()
    return str(answer) if answer else None


def _find_account(conn: ldap3.Connection, identity: str, base: str, dns_domain: str) -> str:
    """The DN behind "dn:DN", "u:DOMAIN\\name", a DN, DOMAIN\\name, a UPN or a bare name."""
    name = identity.removeprefix("u:")
    if identity.startswith("dn:") or "=" in name:
        return identity.removeprefix("dn:")
    filters = []
    if "@" in name:
        filters.append(f"(userPrincipalName={escape_filter_chars(name)})")
        local, _, suffix = name.rpartition("@")
        if suffix.lower() == dns_domain:  # the implicit UPN, sAMAccountName@domain
            filters.append(f"(sAMAccountName={escape_filter_chars(local)})")
    else:
        filters.append(f"(sAMAccountName={escape_filter_chars(name.rpartition(chr(92))[2])})")
    for filter_ in filters:
        conn.search(base, f"(&(objectClass=user){filter_})", ldap3.SUBTREE, attributes=["1.1"])
        found = [item["dn"] for item in conn.response or () if item.get("type") == "searchResEntry"]
        if len(found) == 1:
            return str(found[0])
    raise RightsCheckError(f"cannot find the bound account {identity!r} under {base}")


def read_dacl(conn: ldap3.Connection, dn: str) -> Dacl | None:
    """The object's DACL (None: it has none). The SD flags control asks for the DACL alone
    (MS-ADTS 3.1.1.3.4.1.11): asked for the SACL too, AD would need a privilege to answer."""
    controls = security_descriptor_control(sdflags=_SD_FLAGS_DACL)
    entry = _read_entry(conn, dn, ["nTSecurityDescriptor"], controls)
    if entry is None:
        description = (conn.result or {}).get("description") or "not found"
        raise RightsCheckError(f"cannot read {dn}: {description} (check the DN)")
    raw = entry.get("nTSecurityDescriptor")
    if not raw:
        raise RightsCheckError(f"the bound account may not read the permissions of {dn}"
                               " (it needs Read permissions on it, as Authenticated Users have)")
    try:
        return parse_dacl(raw[0])
    except AclError as exc:
        raise RightsCheckError(f"nTSecurityDescriptor of {dn}: {exc}") from None


def class_default_dacl(conn: ldap3.Connection, class_guid: str) -> SddlDacl:
    """The DACL of the class's defaultSecurityDescriptor, which every new object of it gets."""
    schema = _root_dse_value(conn, "schemaNamingContext")
    filter_ = f"(&(objectClass=classSchema)(schemaIDGUID={guid_filter_value(class_guid)}))"
    conn.search(schema, filter_, ldap3.LEVEL, attributes=["defaultSecurityDescriptor"])
    entries = [item for item in conn.response or () if item.get("type") == "searchResEntry"]
    if len(entries) != 1:
        raise RightsCheckError(f"no class with schemaIDGUID {class_guid} in {schema}")
    sddl = b"".join(entries[0]["raw_attributes"].get("defaultSecurityDescriptor", [])).decode()
    domain_sid = _object_sid(conn, _naming_context(conn))
    root_sid = _object_sid(conn, _root_dse_value(conn, "rootDomainNamingContext"))
    try:
        return parse_sddl_dacl(sddl, domain_sid, root_sid)
    except AclError as exc:
        raise RightsCheckError(f"defaultSecurityDescriptor of {entries[0]['dn']}: {exc}") from None


def _object_sid(conn: ldap3.Connection, dn: str) -> str:
    entry = _read_entry(conn, dn, ["objectSid"])
    if not entry or not entry.get("objectSid"):
        raise RightsCheckError(f"cannot read the objectSid of {dn}")
    return sid_from_bytes(entry["objectSid"][0])


def _read_entry(
    conn: ldap3.Connection, dn: str, attributes: list[str], controls: Any = None
) -> dict[str, list[bytes]] | None:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=attributes, controls=controls)
    if conn.result.get("result") != 0:
        return None
    for item in conn.response or ():
        if item.get("type") == "searchResEntry":
            return dict(item["raw_attributes"])
    return None


def _root_dse_value(conn: ldap3.Connection, name: str) -> str:
    root = _read_entry(conn, "", [name])
    if not root or not root.get(name):
        raise RightsCheckError(f"the rootDSE names no {name} (not an AD DC?)")
    return root[name][0].decode()


def _naming_context(conn: ldap3.Connection) -> str:
    return _root_dse_value(conn, "defaultNamingContext")


def has_extended_right(
    conn: ldap3.Connection,
    object_dn: str,
    right: ExtendedRight,
    *,
    account: Account | None = None,
    child_class: str | None = None,
) -> Verdict:
    """Whether the bound account (or `account`) holds `right` on `object_dn`, or with
    `child_class` (a schemaIDGUID) on a new object of that class right below it."""
    account = account or bound_account(conn)
    dacl = read_dacl(conn, object_dn)
    if child_class is not None:
        dacl = new_child_dacl(dacl, class_default_dacl(conn, child_class), child_class)
    return check_control_access(dacl, account.sids, right.guid)


@dataclass(frozen=True)
class RightsFinding:
    """What `ferry check` shows: whether the account holds the rights, and what to do if not."""

    ok: bool
    account: str
    object_dn: str
    missing: tuple[str, ...]
    message: str


def replication_rights(
    conn: ldap3.Connection, base_dn: str, *, account: Account | None = None
) -> RightsFinding:
    """Both replication rights on the domain root, which reading hashes by DRSUAPI needs."""
    rights = (REPLICATION_GET_CHANGES, REPLICATION_GET_CHANGES_ALL)
    return _finding(conn, base_dn, rights, account, None,
                    "reading password hashes by replication (DRSUAPI GetNCChanges)")


def reset_password_right(
    conn: ldap3.Connection, ou_dn: str, *, account: Account | None = None
) -> RightsFinding:
    """Reset Password on the users in `ou_dn`, which setting hashes by SAMR needs. Decided on
    the DACL a user created there gets (its class default, then what the OU passes down), which
    is also that of a user there whose permissions nobody edited."""
    return _finding(conn, ou_dn, (RESET_PASSWORD,), account, USER_CLASS,
                    "setting password hashes on its users (SAMR)")


def _finding(
    conn: ldap3.Connection,
    object_dn: str,
    rights: tuple[ExtendedRight, ...],
    account: Account | None,
    child_class: str | None,
    purpose: str,
) -> RightsFinding:
    names = tuple(right.name for right in rights)
    try:
        account = account or bound_account(conn)
        dacl = read_dacl(conn, object_dn)
        if child_class is not None:
            dacl = new_child_dacl(dacl, class_default_dacl(conn, child_class), child_class)
    except RightsCheckError as exc:
        who = account.dn if account else str(conn.user or "")
        return RightsFinding(False, who, object_dn, names, f"cannot check {', '.join(names)}"
                             f" on {object_dn} for {purpose}: {exc}")
    verdicts = [(right, check_control_access(dacl, account.sids, right.guid)) for right in rights]
    missing = [(right, verdict) for right, verdict in verdicts if not verdict.granted]
    where = f"user objects in {object_dn}" if child_class else object_dn
    if not missing:
        return RightsFinding(True, account.dn, object_dn, (),
                             f"{account.dn} holds {', '.join(names)} on {where}")
    lacking = ", ".join(f"{right.name} ({right.display_name})" for right, _ in missing)
    message = f"{account.dn} lacks {lacking} on {where}, needed for {purpose}. "
    denied = [verdict.ace for _, verdict in missing if verdict.ace is not None]
    if denied:
        message += " ".join(_deny_advice(ace, object_dn, account, child_class) for ace in denied)
    else:
        message += _grant_commands(conn, account, object_dn, [r for r, _ in missing], child_class)
    return RightsFinding(False, account.dn, object_dn, tuple(r.name for r, _ in missing), message)


def _deny_advice(ace: Ace, object_dn: str, account: Account, child_class: str | None) -> str:
    """The deny ACE that decided, where it is set, and what to remove."""
    source = ace.origin or ace
    if child_class is not None and ace.origin is None:
        where = "in the schema's defaultSecurityDescriptor of the class"
    elif source.flags & INHERITED:
        where = f"which {object_dn} inherits from a parent (remove it there)"
    else:
        where = f"set on {object_dn}"
    group = "" if ace.sid == account.sid else f" (or take the account out of {ace.sid})"
    return f"Denied by {source.sddl}, {where}: remove that ACE{group}."


def _grant_commands(
    conn: ldap3.Connection,
    account: Account,
    object_dn: str,
    rights: list[ExtendedRight],
    child_class: str | None,
) -> str:
    """samba-tool and dsacls commands that add the missing ACEs (for children: users only)."""
    flags, inherited = ("CIIO", child_class) if child_class else ("", "")
    sddl = "".join(f"(OA;{flags};CR;{right.guid};{inherited};{account.sid})" for right in rights)
    scope, suffix = (" /I:S", ";user") if child_class else ("", "")
    grants = " ".join(f'"{account.logon_name}:CA;{right.display_name}{suffix}"'
                      for right in rights)
    host = conn.server.host if conn.server is not None else "DC"
    them = "them" if len(rights) > 1 else "it"
    return (f"Grant {them}: samba-tool dsacl set -H ldap://{host} -U Administrator"
            f" --objectdn='{object_dn}' --sddl='{sddl}'; on Windows:"
            f' dsacls "{object_dn}"{scope} /G {grants}')
