"""Discretionary ACLs as data: parsed from a binary security descriptor or from SDDL, and the
control access check AD makes on them (standard library only, no I/O).

The check follows MS-ADTS 5.1.3.3.4 "Checking Control Access Right-Based Access" and the
MS-DTYP 2.5.3.2 access check it refines; inheritance follows MS-DTYP 2.5.3.4 (the DACL a new
object gets: its class's defaultSecurityDescriptor, then what its parent passes down). The
rules are quoted where the code applies them. Not modelled: the owner's implied rights
(READ_CONTROL and WRITE_DAC, never a control access right) and PRINCIPAL_SELF, which matches
only the object itself, never another account.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from ferry_agent.errors import FerryAgentError

from .guid import guid_from_bytes
from .values import sid_from_bytes

# Access mask bits (MS-ADTS 5.1.3.2, MS-DTYP 2.4.3).
CONTROL_ACCESS = 0x00000100        # RIGHT_DS_CONTROL_ACCESS ("CR" in SDDL)
GENERIC_ALL = 0x10000000           # AD maps it to explicit bits on write; honoured if left as is
# ACE header flags (MS-DTYP 2.4.4.1).
OBJECT_INHERIT = 0x01
CONTAINER_INHERIT = 0x02
NO_PROPAGATE_INHERIT = 0x04
INHERIT_ONLY = 0x08
INHERITED = 0x10
# ACE types (MS-DTYP 2.4.4.1); others (callback, conditional) do not occur in AD DACLs.
_ALLOWED, _DENIED, _ALLOWED_OBJECT, _DENIED_OBJECT = 0x00, 0x01, 0x05, 0x06
_OBJECT_TYPE_PRESENT, _INHERITED_OBJECT_TYPE_PRESENT = 0x1, 0x2
_SE_DACL_PRESENT = 0x0004          # SECURITY_DESCRIPTOR control bit (MS-DTYP 2.4.6)

# SDDL (MS-DTYP 2.5.1.1): ACE types, flags, rights and SID aliases.
_SDDL_TYPES = {"A": (True, False), "D": (False, False), "OA": (True, True), "OD": (False, True)}
_SDDL_FLAGS = {"OI": OBJECT_INHERIT, "CI": CONTAINER_INHERIT, "NP": NO_PROPAGATE_INHERIT,
               "IO": INHERIT_ONLY, "ID": INHERITED, "SA": 0x40, "FA": 0x80}  # fmt: skip
_SDDL_RIGHTS = {
    "GA": GENERIC_ALL, "GR": 0x80000000, "GW": 0x40000000, "GX": 0x20000000,
    "SD": 0x10000, "RC": 0x20000, "WD": 0x40000, "WO": 0x80000,
    "CC": 0x1, "DC": 0x2, "LC": 0x4, "SW": 0x8, "RP": 0x10, "WP": 0x20, "DT": 0x40,
    "LO": 0x80, "CR": CONTROL_ACCESS,
}  # fmt: skip
_SDDL_SIDS = {
    "WD": "S-1-1-0", "CO": "S-1-3-0", "CG": "S-1-3-1", "NU": "S-1-5-2", "IU": "S-1-5-4",
    "SU": "S-1-5-6", "AN": "S-1-5-7", "ED": "S-1-5-9", "PS": "S-1-5-10", "AU": "S-1-5-11",
    "RC": "S-1-5-12", "SY": "S-1-5-18", "LS": "S-1-5-19", "NS": "S-1-5-20",
    "BA": "S-1-5-32-544", "BU": "S-1-5-32-545", "BG": "S-1-5-32-546", "PU": "S-1-5-32-547",
    "AO": "S-1-5-32-548", "SO": "S-1-5-32-549", "PO": "S-1-5-32-550", "BO": "S-1-5-32-551",
    "RE": "S-1-5-32-552", "RS": "S-1-5-32-553", "RU": "S-1-5-32-554", "RD": "S-1-5-32-555",
    "NO": "S-1-5-32-556", "LW": "S-1-16-4096", "ME": "S-1-16-8192", "HI": "S-1-16-12288",
    "SI": "S-1-16-16384",
}  # fmt: skip
# Aliases relative to the domain, and to the forest root domain.
_DOMAIN_RIDS = {"LA": 500, "LG": 501, "DA": 512, "DU": 513, "DG": 514, "DC": 515, "DD": 516,
                "CA": 517, "PA": 520, "CN": 522, "AP": 525, "KA": 526}  # fmt: skip
_ROOT_DOMAIN_RIDS = {"RO": 498, "SA": 518, "EA": 519, "EK": 527}
_SDDL_ACE = re.compile(r"\(([^()]*)\)")


class AclError(FerryAgentError):
    """A security descriptor or SDDL string that does not parse."""


@dataclass(frozen=True)
class Ace:
    """One access control entry of a DACL; object types are lowercase GUIDs, None if absent.

    `origin`: for an ACE a child inherits, the parent's ACE it was copied from."""

    allow: bool
    mask: int
    flags: int
    sid: str
    object_type: str | None = None
    inherited_object_type: str | None = None
    object_ace: bool = False
    origin: Ace | None = field(default=None, compare=False, repr=False)

    @property
    def sddl(self) -> str:
        """The ACE in SDDL, as samba-tool dsacl and ldp show it."""
        kind = ("O" if self.object_ace else "") + ("A" if self.allow else "D")
        flags = "".join(text for text, bit in _SDDL_FLAGS.items() if self.flags & bit)
        rights = "CR" if self.mask == CONTROL_ACCESS else f"0x{self.mask:x}"
        return (f"({kind};{flags};{rights};{self.object_type or ''};"
                f"{self.inherited_object_type or ''};{self.sid})")


Dacl = tuple[Ace, ...]


@dataclass(frozen=True)
class Verdict:
    """Whether a right is granted, and the ACE that decided (None: no DACL, or no ACE matched)."""

    granted: bool
    ace: Ace | None = None


def parse_dacl(raw: bytes) -> Dacl | None:
    """The DACL of a self-relative SECURITY_DESCRIPTOR (MS-DTYP 2.4.6); None if it has none."""
    try:
        _, _, control, _, _, _, dacl_offset = struct.unpack_from("<BBHIIII", raw, 0)
        if not control & _SE_DACL_PRESENT or dacl_offset == 0:
            return None
        _, _, _, count, _ = struct.unpack_from("<BBHHH", raw, dacl_offset)
        aces, offset = [], dacl_offset + 8
        for _ in range(count):
            kind, flags, size = struct.unpack_from("<BBH", raw, offset)
            if size < 8 or offset + size > len(raw):
                raise ValueError(f"an ACE of {size} bytes at offset {offset}")
            ace = _parse_ace(kind, flags, raw[offset + 4 : offset + size])
            if ace is not None:
                aces.append(ace)
            offset += size
    except (struct.error, ValueError, IndexError) as exc:
        raise AclError(f"not a security descriptor ({exc})") from None
    return tuple(aces)


def _parse_ace(kind: int, flags: int, body: bytes) -> Ace | None:
    if kind not in (_ALLOWED, _DENIED, _ALLOWED_OBJECT, _DENIED_OBJECT):
        return None
    (mask,) = struct.unpack_from("<I", body, 0)
    allow = kind in (_ALLOWED, _ALLOWED_OBJECT)
    if kind in (_ALLOWED, _DENIED):
        return Ace(allow, mask, flags, _sid(body[4:]))
    (present,) = struct.unpack_from("<I", body, 4)
    at, object_type, inherited_type = 8, None, None
    if present & _OBJECT_TYPE_PRESENT:
        object_type, at = guid_from_bytes(body[at : at + 16]), at + 16
    if present & _INHERITED_OBJECT_TYPE_PRESENT:
        inherited_type, at = guid_from_bytes(body[at : at + 16]), at + 16
    return Ace(allow, mask, flags, _sid(body[at:]), object_type, inherited_type, True)


def _sid(raw: bytes) -> str:
    if len(raw) < 8 or len(raw) < 8 + 4 * raw[1]:
        raise ValueError(f"a SID of {len(raw)} bytes")
    return sid_from_bytes(raw)


@dataclass(frozen=True)
class SddlDacl:
    """The DACL part of an SDDL string; `protected` (D:P) blocks what the parent passes down."""

    aces: Dacl
    protected: bool


def parse_sddl_dacl(sddl: str, domain_sid: str, root_domain_sid: str = "") -> SddlDacl:
    """The D: part of an SDDL string, e.g. a class's defaultSecurityDescriptor. Aliases like
    DA resolve in `domain_sid`, EA and SA in `root_domain_sid` (default: the same domain)."""
    start = sddl.find("D:")
    if start < 0:
        return SddlDacl((), False)
    end = sddl.find("S:", start)
    part = sddl[start + 2 : end if end >= 0 else len(sddl)]
    aces = tuple(_parse_sddl_ace(text, domain_sid, root_domain_sid or domain_sid)
                 for text in _SDDL_ACE.findall(part))
    return SddlDacl(aces, "P" in part.split("(", 1)[0])


def _parse_sddl_ace(text: str, domain_sid: str, root_domain_sid: str) -> Ace:
    fields = text.split(";")
    if len(fields) < 6 or fields[0].upper() not in _SDDL_TYPES:
        raise AclError(f"SDDL ACE ({text}) is not an allow or deny ACE")
    allow, object_ace = _SDDL_TYPES[fields[0].upper()]
    _, flag_text, rights, object_type, inherited_type, trustee = fields[:6]
    try:
        flags = sum(_SDDL_FLAGS[code] for code in _pairs(flag_text.upper()))
        mask = int(rights, 16) if rights.lower().startswith("0x") else sum(
            _SDDL_RIGHTS[code] for code in _pairs(rights.upper()))
    except (KeyError, ValueError) as exc:
        raise AclError(f"SDDL ACE ({text}): unknown flag or right {exc}") from None
    return Ace(allow, mask, flags, _sddl_sid(trustee, domain_sid, root_domain_sid, text),
               object_type.lower() or None, inherited_type.lower() or None, object_ace)


def _pairs(text: str) -> list[str]:
    return [text[at : at + 2] for at in range(0, len(text), 2)]


def _sddl_sid(trustee: str, domain_sid: str, root_domain_sid: str, text: str) -> str:
    alias = trustee.upper()
    if alias.startswith("S-"):
        return alias
    if alias in _SDDL_SIDS:
        return _SDDL_SIDS[alias]
    if alias in _DOMAIN_RIDS:
        return f"{domain_sid}-{_DOMAIN_RIDS[alias]}"
    if alias in _ROOT_DOMAIN_RIDS:
        return f"{root_domain_sid}-{_ROOT_DOMAIN_RIDS[alias]}"
    raise AclError(f"SDDL ACE ({text}): unknown trustee alias {trustee!r}")


def check_control_access(dacl: Dacl | None, sids: Iterable[str], right_guid: str) -> Verdict:
    """Whether a token holding `sids` has the control access right `right_guid` on the object.

    First match decides, in DACL order (MS-ADTS 5.1.3.3.4 step 3: "Stop any further access
    checks"), so a deny ACE wins exactly where the DC's own check lets it win: AD keeps DACLs
    in canonical order (explicit deny, explicit allow, inherited deny, inherited allow).
    """
    if dacl is None:
        return Verdict(True)  # "no DACL ... grant the requester the requested right" (step 1)
    token = frozenset(sids)
    for ace in dacl:
        if ace.flags & INHERIT_ONLY or ace.sid not in token:
            continue  # steps 3.1 ("Inherit Only" flag) and 3.2 (SID not in the token)
        if not ace.mask & (CONTROL_ACCESS | GENERIC_ALL):
            continue
        # An object ACE with no ObjectType covers every control access right (steps 3.3, 3.5);
        # so does a plain ACE: MS-DTYP 2.5.3.2 applies it to the whole object type list.
        if ace.object_type is None or ace.object_type == right_guid:
            return Verdict(ace.allow, ace)
    return Verdict(False)  # an empty DACL, or nothing granted it (step 2, MS-DTYP's end)


def new_child_dacl(parent: Dacl | None, class_default: SddlDacl, child_class: str) -> Dacl:
    """The DACL a new object of `child_class` (a schemaIDGUID) gets below `parent`: its class's
    default ACEs, then (unless the default is protected) what the parent passes down.

    MS-DTYP 2.5.3.4.2 ComputeInheritedACLFromParent: AD treats every object as a container, so
    CONTAINER_INHERIT decides (OBJECT_INHERIT alone passes nothing on). An ACE with an
    InheritedObjectType applies only to children of that class (others get it inherit-only,
    for their own children); NO_PROPAGATE_INHERIT still reaches direct children. The child's
    copy drops INHERIT_ONLY and is marked INHERITED.
    """
    inherited = []
    if not class_default.protected:
        for ace in parent or ():
            if not ace.flags & CONTAINER_INHERIT:
                continue
            if ace.inherited_object_type not in (None, child_class):
                continue
            flags = (ace.flags & ~INHERIT_ONLY) | INHERITED
            inherited.append(replace(ace, flags=flags, origin=ace))
    return class_default.aces + tuple(inherited)
