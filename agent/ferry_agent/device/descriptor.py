"""Self-relative security descriptors (MS-DTYP 2.4.6) as data, and their translation from
source-domain SIDs to target SIDs (ReACL).

These bytes are what Windows' GetSecurityInfo and RegGetKeySecurity return, what SMB2 carries
in QUERY_INFO/SET_INFO, what Samba keeps inside security.NTACL and what a hive's sk cells
hold. Parsing is lossless: what this codec does not interpret (an ACE type it does not know,
bytes after an ACE's SID, an ACL's unused tail) is kept byte for byte, so a descriptor nothing
changed builds back to the very bytes it was read from.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace

from ..errors import FerryAgentError
from ..sid import Sid, SidError, parse_sid, sid_from_bytes
from .outcome import ReaclMode

SE_DACL_PRESENT = 0x0004
SE_SACL_PRESENT = 0x0010
SE_SELF_RELATIVE = 0x8000
HEADER_SIZE = 20
ACL_HEADER_SIZE = 8
MAX_ACL_SIZE = 0xFFFF  # AclSize and AceSize are 16-bit

# ACE types whose SID follows the access mask (MS-DTYP 2.4.4.1): allowed, denied, audit,
# alarm, their callback forms, mandatory label, resource attribute, scoped policy, trust
# label, access filter.
BASIC_ACE_TYPES = frozenset({0x00, 0x01, 0x02, 0x03, 0x09, 0x0A, 0x0D, 0x0E,
                             0x11, 0x12, 0x13, 0x14, 0x15})
# Object ACEs: Flags and up to two GUIDs sit between the mask and the SID.
OBJECT_ACE_TYPES = frozenset({0x05, 0x06, 0x07, 0x08, 0x0B, 0x0C, 0x0F, 0x10})
_OBJECT_TYPE_PRESENT, _INHERITED_OBJECT_TYPE_PRESENT = 0x1, 0x2
# The parts of a descriptor in the order Samba (NDR) writes them; Windows writes the ACLs
# first. A parsed descriptor remembers its own order, so it builds back unchanged.
SAMBA_LAYOUT = ("owner", "group", "sacl", "dacl")


class DescriptorError(FerryAgentError, ValueError):
    """Bytes that are no self-relative security descriptor, or one that cannot be built."""


@dataclass(frozen=True)
class Ace:
    """One access control entry. `sid` is None for an ACE type this codec does not know;
    its whole body (after the 4-byte header) is then `body`, kept as found."""

    ace_type: int
    flags: int
    mask: int = 0
    sid: Sid | None = None
    object_data: bytes = b""   # object ACEs: Flags, ObjectType, InheritedObjectType
    extra: bytes = b""         # after the SID: application data, conditions, padding
    body: bytes = b""

    def with_sid(self, sid: Sid) -> Ace:
        return replace(self, sid=sid)


@dataclass(frozen=True)
class Acl:
    revision: int
    aces: tuple[Ace, ...]
    slack: bytes = b""         # bytes AclSize counts beyond the last ACE
    sbz1: int = 0
    sbz2: int = 0


@dataclass(frozen=True)
class SecurityDescriptor:
    control: int
    owner: Sid | None = None
    group: Sid | None = None
    sacl: Acl | None = None
    dacl: Acl | None = None
    revision: int = 1
    sbz1: int = 0
    layout: tuple[str, ...] = field(default=SAMBA_LAYOUT, compare=False)  # bytes, not meaning

    def sids(self) -> Iterator[Sid]:
        """Every SID the descriptor names: owner, group, then each known ACE's."""
        for sid in (self.owner, self.group):
            if sid is not None:
                yield sid
        for acl in (self.dacl, self.sacl):
            if acl is not None:
                yield from (ace.sid for ace in acl.aces if ace.sid is not None)


# ---------------------------------------------------------------------- parse
def parse_descriptor(data: bytes, offset: int = 0, base: int | None = None) -> SecurityDescriptor:
    """The descriptor at `offset` of `data`. Its stored offsets count from `base` (default:
    the descriptor's start; Samba's security.NTACL counts them from the blob's start)."""
    base = offset if base is None else base
    if offset < 0 or offset + HEADER_SIZE > len(data):
        raise DescriptorError(f"security descriptor at byte {offset}: {len(data) - offset}"
                              f" bytes, less than its {HEADER_SIZE}-byte header")
    revision, sbz1, control, owner_at, group_at, sacl_at, dacl_at = struct.unpack_from(
        "<BBHIIII", data, offset)
    if revision != 1:
        raise DescriptorError(f"security descriptor at byte {offset}: revision {revision}"
                              " (only revision 1 exists)")
    if not control & SE_SELF_RELATIVE:
        raise DescriptorError(f"security descriptor at byte {offset}: not self-relative"
                              f" (control 0x{control:04x} lacks SE_SELF_RELATIVE)")
    places = {"owner": owner_at, "group": group_at, "sacl": sacl_at, "dacl": dacl_at}
    try:
        owner = _sid_at(data, base, owner_at, "owner")
        group = _sid_at(data, base, group_at, "group")
        sacl = _acl_at(data, base, sacl_at, "SACL")
        dacl = _acl_at(data, base, dacl_at, "DACL")
    except SidError as exc:
        raise DescriptorError(f"security descriptor at byte {offset}: {exc}") from None
    layout = tuple(sorted((name for name, at in places.items() if at), key=places.__getitem__))
    return SecurityDescriptor(control, owner, group, sacl, dacl, revision, sbz1, layout)


def _sid_at(data: bytes, base: int, at: int, what: str) -> Sid | None:
    if not at:
        return None
    try:
        return sid_from_bytes(data, base + at)[0]
    except SidError as exc:
        raise DescriptorError(f"{what} SID (offset {at}): {exc}") from None


def _acl_at(data: bytes, base: int, at: int, what: str) -> Acl | None:
    if not at:
        return None
    start = base + at
    if start + ACL_HEADER_SIZE > len(data):
        raise DescriptorError(f"{what} at byte {start} is past the end ({len(data)} bytes)")
    revision, sbz1, size, count, sbz2 = struct.unpack_from("<BBHHH", data, start)
    end = start + size
    if size < ACL_HEADER_SIZE or end > len(data):
        raise DescriptorError(f"{what} at byte {start}: AclSize {size} does not fit the"
                              f" {len(data) - start} bytes left")
    aces = []
    position = start + ACL_HEADER_SIZE
    for index in range(count):
        if position + 4 > end:
            raise DescriptorError(f"{what}: ACE {index} of {count} starts past the ACL's end")
        ace_type, flags, ace_size = struct.unpack_from("<BBH", data, position)
        if ace_size < 4 or position + ace_size > end:
            raise DescriptorError(f"{what}: ACE {index} (type 0x{ace_type:02x}) has AceSize"
                                  f" {ace_size}, which does not fit the ACL")
        aces.append(_ace(data[position + 4:position + ace_size], ace_type, flags,
                         f"{what} ACE {index}"))
        position += ace_size
    return Acl(revision, tuple(aces), bytes(data[position:end]), sbz1, sbz2)


def _ace(body: bytes, ace_type: int, flags: int, what: str) -> Ace:
    if ace_type not in BASIC_ACE_TYPES and ace_type not in OBJECT_ACE_TYPES:
        return Ace(ace_type, flags, body=bytes(body))
    if len(body) < 4:
        raise DescriptorError(f"{what} (type 0x{ace_type:02x}): {len(body)} bytes, no mask")
    (mask,) = struct.unpack_from("<I", body, 0)
    sid_at = 4
    if ace_type in OBJECT_ACE_TYPES:
        if len(body) < 8:
            raise DescriptorError(f"{what} (object ACE): no room for its Flags")
        (object_flags,) = struct.unpack_from("<I", body, 4)
        sid_at = 8 + 16 * (bool(object_flags & _OBJECT_TYPE_PRESENT)
                           + bool(object_flags & _INHERITED_OBJECT_TYPE_PRESENT))
    try:
        sid, length = sid_from_bytes(body, sid_at)
    except SidError as exc:
        raise DescriptorError(f"{what} (type 0x{ace_type:02x}): {exc}") from None
    return Ace(ace_type, flags, mask, sid, bytes(body[4:sid_at]), bytes(body[sid_at + length:]))


# ---------------------------------------------------------------------- build
def build_descriptor(sd: SecurityDescriptor, base: int = 0) -> bytes:
    """The self-relative bytes of `sd`; stored offsets get `base` added (security.NTACL)."""
    encoders = {
        "owner": lambda: sd.owner.to_bytes() if sd.owner else None,
        "group": lambda: sd.group.to_bytes() if sd.group else None,
        "sacl": lambda: _build_acl(sd.sacl, "SACL") if sd.sacl else None,
        "dacl": lambda: _build_acl(sd.dacl, "DACL") if sd.dacl else None,
    }
    order = [name for name in sd.layout if name in encoders]
    order += [name for name in SAMBA_LAYOUT if name not in order]
    offsets = dict.fromkeys(SAMBA_LAYOUT, 0)
    parts = []
    position = HEADER_SIZE
    for name in order:
        blob = encoders[name]()
        if blob is None:
            continue
        offsets[name] = position + base
        parts.append(blob)
        position += len(blob)
    header = struct.pack("<BBHIIII", sd.revision, sd.sbz1, sd.control | SE_SELF_RELATIVE,
                         offsets["owner"], offsets["group"], offsets["sacl"], offsets["dacl"])
    return header + b"".join(parts)


def _build_acl(acl: Acl, what: str) -> bytes:
    body = b"".join(_build_ace(ace, what) for ace in acl.aces) + acl.slack
    size = ACL_HEADER_SIZE + len(body)
    if size > MAX_ACL_SIZE:
        raise DescriptorError(f"the {what} would be {size} bytes with {len(acl.aces)} ACEs,"
                              f" over the {MAX_ACL_SIZE} an ACL can hold")
    return struct.pack("<BBHHH", acl.revision, acl.sbz1, size, len(acl.aces), acl.sbz2) + body


def _build_ace(ace: Ace, what: str) -> bytes:
    if ace.sid is None:
        body = ace.body
    else:
        body = struct.pack("<I", ace.mask) + ace.object_data + ace.sid.to_bytes() + ace.extra
        body += b"\0" * (-len(body) % 4)  # AceSize stays a multiple of 4 if a SID got longer
    if len(body) + 4 > MAX_ACL_SIZE:
        raise DescriptorError(f"a {what} ACE would be {len(body) + 4} bytes")
    return struct.pack("<BBH", ace.ace_type, ace.flags, len(body) + 4) + body


# ---------------------------------------------------------------------- translate
class SidMap:
    """A SID table (source SID -> target SID) parsed once, for translating many objects."""

    def __init__(self, table: Mapping[str, str]):
        self.pairs: dict[Sid, Sid] = {}
        for source, target in table.items():
            try:
                self.pairs[parse_sid(source)] = parse_sid(target)
            except SidError as exc:
                raise DescriptorError(f"SID table entry {source!r}: {target!r}: {exc}; the"
                                      " table maps source SIDs to target SIDs") from None

    def inverted(self) -> SidMap:
        """Target -> source, for undoing a replace; two sources sharing a target cannot be."""
        back: dict[str, str] = {}
        for source, target in self.pairs.items():
            if str(target) in back:
                raise DescriptorError(f"the SID table maps both {back[str(target)]} and {source}"
                                      f" to {target}: translating back cannot tell which")
            back[str(target)] = str(source)
        return SidMap(back)

    def table(self) -> dict[str, str]:
        return {str(source): str(target) for source, target in self.pairs.items()}


@dataclass(frozen=True)
class Translation:
    """A descriptor after translation, with what changed and what was left."""

    descriptor: SecurityDescriptor
    changes: int
    matched: frozenset[str]
    unmatched: frozenset[str]    # source-domain SIDs the table has no entry for (left as is)


def translate(sd: SecurityDescriptor, table: SidMap | Mapping[str, str], mode: ReaclMode | str,
              source_domain: str) -> Translation:
    """Translate `sd`'s source SIDs by `table` in `mode` (add: a target copy right after each
    source ACE, replace: the SID swapped, remove: source ACEs dropped). Owner and group are
    replaced in add and replace modes. Running it again on its result changes nothing."""
    sid_map = table if isinstance(table, SidMap) else SidMap(table)
    mode = ReaclMode(mode)
    domain = str(parse_sid(source_domain)) if source_domain else ""
    work = _Work(sid_map.pairs, mode, domain)
    owner, group = sd.owner, sd.group
    if mode is not ReaclMode.REMOVE:
        owner, group = work.swap(owner), work.swap(group)
    else:
        work.note(owner)
        work.note(group)
    dacl, sacl = work.acl(sd.dacl), work.acl(sd.sacl)
    result = sd if not work.changes else replace(sd, owner=owner, group=group,
                                                 dacl=dacl, sacl=sacl)
    return Translation(result, work.changes, frozenset(work.matched), frozenset(work.unmatched))


class _Work:
    def __init__(self, pairs: dict[Sid, Sid], mode: ReaclMode, domain: str):
        self.pairs, self.mode, self.domain = pairs, mode, domain
        self.changes = 0
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def note(self, sid: Sid | None) -> Sid | None:
        """The target for `sid` if the table has one; records matched and unmatched SIDs."""
        if sid is None:
            return None
        target = self.pairs.get(sid)
        if target is not None:
            self.matched.add(str(sid))
        elif self.domain and sid.is_domain_account and sid.domain == self.domain:
            self.unmatched.add(str(sid))
        return target

    def swap(self, sid: Sid | None) -> Sid | None:
        target = self.note(sid)
        if target is None or target == sid:
            return sid
        self.changes += 1
        return target

    def acl(self, acl: Acl | None) -> Acl | None:
        if acl is None:
            return None
        present = set(acl.aces)
        out: list[Ace] = []
        changes = 0
        for ace in acl.aces:
            target = self.note(ace.sid)
            if target is None or target == ace.sid:
                out.append(ace)
                continue
            copy = ace.with_sid(target)
            if self.mode is ReaclMode.REMOVE:
                changes += 1
            elif self.mode is ReaclMode.ADD:
                out.append(ace)
                if copy not in present:       # a second run adds no duplicate
                    out.append(copy)
                    present.add(copy)
                    changes += 1
            else:
                if copy not in present:       # an add run before left the target copy
                    out.append(copy)
                    present.add(copy)
                changes += 1
        if not changes:
            return acl
        self.changes += changes
        return replace(acl, aces=tuple(out))
