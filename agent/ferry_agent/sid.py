"""Security identifiers in their string form (`S-1-5-21-X-Y-Z-RID`), parsed strictly.

Standard library only, like dn.py. A SID that will be written somewhere (sIDHistory, an ACL)
is parsed here first, so a typo is an error naming the value, never a wrong SID.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from .errors import FerryAgentError

MAX_SUB_AUTHORITIES = 15           # what the binary form holds (one count byte, MS-DTYP 2.4.2)
_AUTHORITY_LIMIT = 1 << 48         # six bytes
_SUB_LIMIT = 1 << 32               # each sub-authority is a 32-bit unsigned integer
_SHAPE = re.compile(r"S-1-(\d{1,15})((?:-\d{1,10}){1,15})", re.ASCII | re.IGNORECASE)
NT_AUTHORITY = 5
DOMAIN_PREFIX = 21                 # S-1-5-21-X-Y-Z: a domain (or a machine's local accounts)
FIRST_ASSIGNED_RID = 1000          # below: well-known accounts and groups (500, 512, 519, ...)


class SidError(FerryAgentError, ValueError):
    """A string that is not a SID, or not the kind of SID the caller needs."""


@dataclass(frozen=True)
class Sid:
    """A parsed SID; str() gives its canonical form."""

    authority: int
    sub_authorities: tuple[int, ...]

    def __str__(self) -> str:
        return "S-1-" + "-".join(str(part) for part in (self.authority, *self.sub_authorities))

    @property
    def is_domain_account(self) -> bool:
        """S-1-5-21-X-Y-Z-RID: an account or group of a domain (not BUILTIN, not Everyone)."""
        subs = self.sub_authorities
        return self.authority == NT_AUTHORITY and len(subs) == 5 and subs[0] == DOMAIN_PREFIX

    @property
    def domain(self) -> str:
        """The domain part (`S-1-5-21-X-Y-Z`) of a domain account SID, else ""."""
        if not self.is_domain_account:
            return ""
        return str(Sid(self.authority, self.sub_authorities[:-1]))

    @property
    def rid(self) -> int:
        return self.sub_authorities[-1]

    def to_bytes(self) -> bytes:
        """The binary form (MS-DTYP 2.4.2.2): revision 1, count, authority, sub-authorities."""
        subs = self.sub_authorities
        return (bytes((1, len(subs))) + self.authority.to_bytes(6, "big")
                + struct.pack(f"<{len(subs)}I", *subs))


def sid_from_bytes(data: bytes, offset: int = 0) -> tuple[Sid, int]:
    """The binary SID at `offset` of `data` and its length in bytes; a truncated or
    malformed one is a SidError naming the offset."""
    if offset < 0 or offset + 8 > len(data):
        raise SidError(f"no SID at byte {offset}: {len(data)} bytes hold no 8-byte SID header")
    revision, count = data[offset], data[offset + 1]
    if revision != 1 or count > MAX_SUB_AUTHORITIES:
        raise SidError(f"no SID at byte {offset}: revision {revision} with {count}"
                       " sub-authorities (expected revision 1, at most 15)")
    end = offset + 8 + 4 * count
    if end > len(data):
        raise SidError(f"SID at byte {offset} is cut short: needs {end - offset} bytes,"
                       f" {len(data) - offset} left")
    authority = int.from_bytes(data[offset + 2:offset + 8], "big")
    return Sid(authority, struct.unpack_from(f"<{count}I", data, offset + 8)), end - offset


def parse_sid(text: str) -> Sid:
    """`S-1-...` to a Sid; anything else (spaces, revision other than 1, values out of range,
    more than 15 sub-authorities) is a SidError quoting the value."""
    if not isinstance(text, str):
        raise SidError(f"not a SID: {text!r} (expected a string like S-1-5-21-1-2-3-1104)")
    match = _SHAPE.fullmatch(text)
    if match is None:
        raise SidError(f"not a SID: {text!r} (expected S-1-<authority>-<sub>..., e.g."
                       " S-1-5-21-1004336348-1177238915-682003330-1104)")
    authority = int(match.group(1))
    subs = tuple(int(part) for part in match.group(2)[1:].split("-"))
    if authority >= _AUTHORITY_LIMIT:
        raise SidError(f"not a SID: {text!r} (identifier authority {authority} is over 2^48)")
    if any(sub >= _SUB_LIMIT for sub in subs):
        raise SidError(f"not a SID: {text!r} (a sub-authority is over 2^32 - 1)")
    return Sid(authority, subs)


# Groups whose members hold the domain or forest (AdminSDHolder's list): by RID in any domain,
# since Enterprise and Schema Admins live in the forest root domain. Ferry changes nothing
# that gives a member of these an identity elsewhere (SID history, passwords).
PROTECTED_GROUP_RIDS = {
    512: "Domain Admins", 516: "Domain Controllers", 518: "Schema Admins",
    519: "Enterprise Admins", 521: "Read-only Domain Controllers", 526: "Key Admins",
    527: "Enterprise Key Admins",
}
PROTECTED_BUILTIN = {
    "S-1-5-32-544": "Administrators", "S-1-5-32-548": "Account Operators",
    "S-1-5-32-549": "Server Operators", "S-1-5-32-550": "Print Operators",
    "S-1-5-32-551": "Backup Operators", "S-1-5-32-552": "Replicator",
}


def protected_group(text: str) -> str:
    """The name of the protected group the SID `text` is (see PROTECTED_*), else ""."""
    name = PROTECTED_BUILTIN.get(text.upper())
    if name:
        return name
    sid = parse_sid(text)
    return PROTECTED_GROUP_RIDS.get(sid.rid, "") if sid.is_domain_account else ""
