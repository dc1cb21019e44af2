"""Reading AD: paged full reads, ranged group members, and deltas (DirSync or uSNChanged)."""

from __future__ import annotations

import base64
import contextlib
import functools
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import ldap3
from ldap3 import DIGEST_MD5
from ldap3.core.exceptions import (
    LDAPException,
    LDAPSocketReceiveError,
    communication_exception_factory,
)
from ldap3.protocol.controls import build_control
from ldap3.protocol.microsoft import DirSyncControlRequestValue
from ldap3.strategy.base import RESPONSE_COMPLETE, SESSION_TERMINATED_BY_SERVER
from ldap3.strategy.sync import SyncStrategy
from ldap3.utils.asn1 import decode_message_fast
from ldap3.utils.ciDict import CaseInsensitiveDict

from ..dn import is_under
from .errors import DirectoryError, WatermarkError, result_error
from .guid import guid_filter_value, guid_from_bytes
from .values import decode_values

ObjectType = Literal["user", "group", "contact", "device"]
OBJECT_TYPES: tuple[ObjectType, ...] = ("user", "group", "contact", "device")

# Filters for live objects (objectCategory is indexed, and present on live objects only).
LIVE_FILTERS: dict[str, str] = {
    "user": "(&(objectCategory=person)(objectClass=user))",
    "group": "(objectClass=group)",
    "contact": "(&(objectCategory=person)(objectClass=contact))",
    "device": "(objectClass=computer)",
}
# Filters that also match tombstones: AD strips objectCategory on delete but keeps objectClass.
CLASS_FILTERS: dict[str, str] = {
    "user": "(&(objectClass=user)(!(objectClass=computer)))",
    "group": "(objectClass=group)",
    "contact": "(objectClass=contact)",
    "device": "(objectClass=computer)",
}

PAGED_RESULTS_OID = "1.2.840.113556.1.4.319"
DIRSYNC_OID = "1.2.840.113556.1.4.841"
SHOW_DELETED_OID = "1.2.840.113556.1.4.417"
DELETED_OBJECTS_WKGUID = "18e2ea80684f11d2b9aa00c04f79f805"
_DIRSYNC_INCREMENTAL_VALUES = -0x80000000  # 0x80000000 as the 4-byte signed INTEGER AD expects
_UAC_ACCOUNTDISABLE = 0x2
_MEMBER_PAGE = 1500
# Results that mean "DirSync is not available to this account here", not "the server broke".
_DIRSYNC_UNAVAILABLE = {2, 12, 50, 53}  # protocol, unavailableCriticalExtension, rights, unwilling

_INTERNAL = ("objectGUID", "objectClass", "uSNChanged")


@dataclass(frozen=True)
class ReadScope:
    """What a read covers: subtrees (default: the whole domain) and object types."""

    base_dns: list[str] = field(default_factory=list)
    object_types: list[str] = field(default_factory=lambda: list(OBJECT_TYPES))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.object_types) - set(OBJECT_TYPES))
        if unknown:
            raise ValueError(f"unknown object types {unknown}; expected some of {OBJECT_TYPES}")


@dataclass
class Entry:
    """One object as read: its GUID anchor, DN, type and str-decoded attributes.

    Group members are in `members` (DNs), never in `attributes`.
    """

    guid: str
    dn: str
    object_type: str
    attributes: dict[str, list[str]] = field(default_factory=dict)
    members: list[str] = field(default_factory=list)
    usn_changed: int = 0
    user_account_control: int | None = None

    @property
    def enabled(self) -> bool | None:
        """False when ACCOUNTDISABLE is set; None for objects without userAccountControl."""
        if self.user_account_control is None:
            return None
        return not self.user_account_control & _UAC_ACCOUNTDISABLE


@dataclass(frozen=True)
class AdWatermark:
    """Where a delta read starts: `kind` plus an opaque `value` to store as it is.

    dirsync: `value` is the server's DirSync cookie, base64. usn: `value` is the DC's
    highestCommittedUSN, followed by `@<invocationId>` of that DC (USNs only hold there).
    A DirSync cookie also records its DC and USN, so a delta can fall back to uSNChanged
    from it without missing changes.
    """

    kind: str
    value: str

    def __post_init__(self) -> None:
        if self.kind not in ("dirsync", "usn"):
            raise WatermarkError(f"unknown watermark kind {self.kind!r}; expected dirsync or usn")
        if self.kind == "usn" and not self.value.split("@", 1)[0].isdigit():
            raise WatermarkError(f"a usn watermark needs a number, got {self.value!r}")

    @classmethod
    def dirsync(cls, cookie: bytes) -> AdWatermark:
        return cls("dirsync", base64.b64encode(cookie).decode("ascii"))

    @classmethod
    def usn(cls, highest: int, server: str = "") -> AdWatermark:
        return cls("usn", f"{highest}@{server}" if server else str(highest))

    @property
    def cookie(self) -> bytes | None:
        """The raw DirSync cookie (dirsync kind only)."""
        return base64.b64decode(self.value) if self.kind == "dirsync" else None

    @property
    def highest(self) -> int | None:
        """The highest USN this watermark covers; None if a cookie does not say."""
        if self.kind == "usn":
            return int(self.value.split("@", 1)[0])
        parsed = _parse_cookie(self.cookie or b"")
        return parsed[0] if parsed else None

    @property
    def server(self) -> str:
        """invocationId of the DC that issued it ('' if unknown)."""
        if self.kind == "usn":
            return self.value.partition("@")[2]
        parsed = _parse_cookie(self.cookie or b"")
        return parsed[1] if parsed else ""

    def to_dict(self) -> dict[str, Any]:
        """`{kind: dirsync, cookie}` or `{kind: usn, highest, server}`."""
        if self.kind == "dirsync":
            return {"kind": "dirsync", "cookie": self.value}
        return {"kind": "usn", "highest": self.highest, "server": self.server}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdWatermark:
        if data.get("kind") == "dirsync":
            return cls("dirsync", str(data.get("cookie") or ""))
        return cls.usn(int(data.get("highest", -1)), str(data.get("server") or ""))


def _parse_cookie(cookie: bytes) -> tuple[int, str] | None:
    """(highest USN, invocationId) from a DirSync cookie, as AD and Samba lay it out:
    "MSDS", version (u32), time (u64), two reserved u32, length of the trailing vector (u32),
    tmp/reserved/highest USN (u64 each) at offset 28, the DC's invocation GUID at 52."""
    if len(cookie) < 68 or cookie[:4] != b"MSDS":
        return None
    tmp_highest, _, highest = struct.unpack_from("<QQQ", cookie, 28)
    return max(tmp_highest, highest), guid_from_bytes(cookie[52:68])


@dataclass
class Changes:
    """A delta: changed objects in scope (read in full), deletions, and the next watermark.

    `deleted` holds GUIDs of deleted objects of the scope's types, wherever they lived;
    `out_of_scope` holds GUIDs of changed objects that are now outside the scope (moved out,
    or never in it). Callers act on those they know and ignore the rest.
    """

    entries: list[Entry]
    deleted: list[str]
    out_of_scope: list[str]
    watermark: AdWatermark


class DirSyncUnavailable(DirectoryError):
    """The server refused DirSync for this account (rights, or no support)."""


# --------------------------------------------------------------------------- helpers


def root_dse(conn: ldap3.Connection) -> dict[str, list[str]]:
    """The rootDSE attributes Ferry uses, decoded."""
    attrs = ["defaultNamingContext", "highestCommittedUSN", "dsServiceName", "dnsHostName",
             "vendorName"]
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=attrs)
    if conn.result["result"] != 0 or not conn.response:
        raise result_error(conn.result, "rootDSE", "search")
    raw = _first_entry(conn.response)["raw_attributes"]
    return {name: decode_values(name, raw.get(name)) for name in attrs}


def naming_context(conn: ldap3.Connection) -> str:
    """The domain's naming context, e.g. `DC=src,DC=test`."""
    return root_dse(conn)["defaultNamingContext"][0]


def read_attribute(conn: ldap3.Connection, dn: str, name: str) -> list[str]:
    """One attribute of the object at `dn`, decoded; [] when it or the object is missing."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=[name])
    if conn.result["result"] != 0 or not conn.response:
        return []
    return decode_values(name, _first_entry(conn.response)["raw_attributes"].get(name))


def exists(conn: ldap3.Connection, dn: str) -> bool:
    """Whether an object is at `dn`."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
    return bool(conn.result["result"] == 0)


def server_invocation_id(conn: ldap3.Connection, dse: dict[str, list[str]] | None = None) -> str:
    """The invocationId of the DC this connection talks to (USNs are only valid there)."""
    dse = dse or root_dse(conn)
    service = dse["dsServiceName"][0]
    conn.search(service, "(objectClass=*)", ldap3.BASE, attributes=["invocationId"])
    if conn.result["result"] != 0 or not conn.response:
        raise result_error(conn.result, service, "search")
    raw = _first_entry(conn.response)["raw_attributes"].get("invocationId") or []
    return guid_from_bytes(raw[0]) if raw else ""


def _first_entry(response: list[dict[str, Any]] | None) -> dict[str, Any]:
    for item in response or ():
        if item.get("type") == "searchResEntry":
            return item
    raise DirectoryError("", "search", 32, "no entry returned", "noSuchObject")


def _type_filter(object_types: Iterable[str], filters: dict[str, str]) -> str:
    parts = [filters[t] for t in object_types]
    return parts[0] if len(parts) == 1 else "(|" + "".join(parts) + ")"


def _classify(object_classes: Sequence[str]) -> str | None:
    classes = {value.lower() for value in object_classes}
    if "computer" in classes:
        return "device"
    if "group" in classes:
        return "group"
    if "contact" in classes:
        return "contact"
    if "user" in classes:
        return "user"
    return None


def _bases(conn: ldap3.Connection, scope: ReadScope) -> list[str]:
    """The scope's subtrees, without any that lie inside another (so nothing is read twice)."""
    bases = list(scope.base_dns) or [naming_context(conn)]
    unique: list[str] = []
    for base in bases:
        inside_other = any(is_under(base, other) for other in bases if other is not base)
        if not inside_other and not any(is_under(base, kept) for kept in unique):
            unique.append(base)
    return unique


def _request_attributes(attributes: Sequence[str], object_types: Iterable[str]) -> list[str]:
    wanted = [a for a in attributes if a.lower() != "member"]
    lowered = {a.lower() for a in wanted}
    extra = [a for a in _INTERNAL if a.lower() not in lowered]
    types = set(object_types)
    if types & {"user", "device"} and "useraccountcontrol" not in lowered:
        extra.append("userAccountControl")
    if "group" in types:
        extra.append(f"member;range=0-{_MEMBER_PAGE - 1}")
    return wanted + extra


class _RawEntryStrategy(SyncStrategy):
    """ldap3's synchronous strategy, receiving search results its own way.

    ldap3 decodes each entry into a tree of tuples, then into raw bytes and a str-decoded
    copy of every value, and re-slices its receive buffer per message; this library only
    reads the raw bytes. So searchResEntry messages are decoded straight from the BER into
    ldap3's entry shape (raw values only), out of one buffer filled 64 KiB at a time; every
    other message (results, references, controls on entries) still goes through ldap3.
    Plain Python, for agents on Windows too. Used only inside paged_search().
    """

    def _get_response(self, message_id: int, timeout: Any) -> Any:
        connection = self.connection
        if connection.sasl_mechanism == DIGEST_MD5 or not connection.fast_decoder:
            return super()._get_response(message_id, timeout)
        responses: list[Any] = []
        data = b""
        offset = 0
        while True:
            while True:
                size = _message_size(data, offset)
                if size < 0 or offset + size > len(data):
                    break
                message_end = offset + size
                if connection.usage:
                    connection._usage.update_received_message(size)
                response, number = _decode_message(self, data, offset, message_end)
                offset = message_end
                if number == message_id:
                    responses.append(response)
                    if response["type"] not in ("searchResEntry", "searchResRef",
                                                "intermediateResponse"):
                        responses.append(RESPONSE_COMPLETE)
                        return responses
                elif number == 0 and response.get("responseName") == _NOTICE_OF_DISCONNECTION:
                    return SESSION_TERMINATED_BY_SERVER
                else:
                    connection.last_error = "invalid messageId received"
                    raise LDAPSocketReceiveError(connection.last_error)
            try:
                received = connection.socket.recv(_RECEIVE_SIZE)
            except (OSError, AttributeError) as exc:
                connection.last_error = f"error receiving data: {exc}"
                with contextlib.suppress(OSError, LDAPException):
                    self.close()
                raise communication_exception_factory(LDAPSocketReceiveError, type(exc)(str(exc)))(
                    connection.last_error) from None
            if not received:
                return SESSION_TERMINATED_BY_SERVER
            data = data[offset:] + received
            offset = 0


_RECEIVE_SIZE = 65536
_NOTICE_OF_DISCONNECTION = "1.3.6.1.4.1.1466.20036"


def _length(data: bytes, pos: int) -> tuple[int, int]:
    """A BER definite length at `pos`: (length, where the content starts)."""
    first = data[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), pos + 1 + count


def _message_size(data: bytes, offset: int) -> int:
    """The size of the LDAPMessage starting at `offset`, or -1 if its header is incomplete."""
    if len(data) - offset < 2:
        return -1
    first = data[offset + 1]
    header = 2 if first < 0x80 else 2 + (first & 0x7F)
    if len(data) - offset < header:
        return -1
    length, content = _length(data, offset + 1)
    return content - offset + length


def _decode_message(strategy: SyncStrategy, data: bytes, start: int, end: int
                    ) -> tuple[dict[str, Any], int]:
    """One LDAPMessage as ldap3's response dict, and its messageID."""
    _, pos = _length(data, start + 1)               # SEQUENCE
    id_length, pos = _length(data, pos + 1)         # INTEGER messageID
    number = int.from_bytes(data[pos : pos + id_length], "big", signed=True)
    pos += id_length
    if data[pos] == 0x64:                           # [APPLICATION 4] searchResEntry
        length, content = _length(data, pos + 1)
        if content + length == end:                 # no controls follow
            entry = _decode_entry(data, content, content + length)
            if entry is not None:
                return entry, number
    message = data[start:end]
    return strategy.decode_response_fast(decode_message_fast(message)), number


def _decode_entry(data: bytes, pos: int, end: int) -> dict[str, Any] | None:
    """searchResEntry content to ldap3's entry dict with raw values; None if a name is not
    UTF-8 (ldap3 then tries its other encodings). Short lengths are read inline: most are."""
    length, pos = _length(data, pos + 1)            # OCTET STRING objectName
    raw_dn = data[pos : pos + length]
    pos += length
    _, pos = _length(data, pos + 1)                 # SEQUENCE OF PartialAttribute
    store: dict[str, list[bytes] | None] = {}
    keymap: dict[str, str] = {}
    try:
        dn = raw_dn.decode("utf-8")
        while pos < end:
            length, pos = _length(data, pos + 1)    # SEQUENCE PartialAttribute
            attribute_end = pos + length
            length = data[pos + 1]                  # OCTET STRING type
            if length < 0x80:
                pos += 2
            else:
                length, pos = _length(data, pos + 1)
            name = data[pos : pos + length].decode("utf-8")
            pos += length
            _, pos = _length(data, pos + 1)         # SET OF value
            values: list[bytes] = []
            while pos < attribute_end:
                length = data[pos + 1]
                if length < 0x80:
                    pos += 2
                else:
                    length, pos = _length(data, pos + 1)
                values.append(data[pos : pos + length])
                pos += length
            store[name] = values or None
            keymap[name.lower()] = name
    except UnicodeDecodeError:
        return None
    # ldap3's CaseInsensitiveDict, filled at once (its __setitem__ costs more than decoding).
    raw = CaseInsensitiveDict()
    raw._store = store
    raw._case_insensitive_keymap = keymap
    return {"raw_dn": raw_dn, "dn": dn, "raw_attributes": raw, "attributes": raw,
            "type": "searchResEntry"}


@contextlib.contextmanager
def _raw_entries(conn: ldap3.Connection) -> Iterator[None]:
    strategy = conn.strategy
    if type(strategy) is not SyncStrategy:
        yield
        return
    strategy.__class__ = _RawEntryStrategy
    try:
        yield
    finally:
        strategy.__class__ = SyncStrategy


def paged_search(
    conn: ldap3.Connection,
    base: str,
    ldap_filter: str,
    attributes: Sequence[str],
    *,
    page_size: int = 1000,
    scope: str = ldap3.SUBTREE,
    controls: list[Any] | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream raw search entries page by page (simple paged results, RFC 2696).

    Each page is copied out before it is yielded, so callers may use the connection for other
    operations between entries.
    """
    cookie: bytes | None = None
    done = False
    try:
        while not done:
            with _raw_entries(conn):
                conn.search(
                    base,
                    ldap_filter,
                    scope,
                    attributes=list(attributes),
                    paged_size=page_size,
                    paged_cookie=cookie,
                    controls=controls,
                )
            result = conn.result
            if result["result"] != 0:
                raise result_error(result, base, "search")
            page = [item for item in conn.response or () if item.get("type") == "searchResEntry"]
            control = (result.get("controls") or {}).get(PAGED_RESULTS_OID)
            cookie = control["value"]["cookie"] if control else None
            done = not cookie
            yield from page
    finally:
        if not done and cookie:
            # The caller stopped early: tell the server to drop the paged search (size 0).
            with contextlib.suppress(LDAPException):
                conn.search(
                    base,
                    ldap_filter,
                    scope,
                    attributes=["1.1"],
                    paged_size=0,
                    paged_cookie=cookie,
                    controls=controls,
                )


def _to_entry(
    conn: ldap3.Connection, item: dict[str, Any], attributes: Sequence[str]
) -> Entry | None:
    raw = item["raw_attributes"]
    guid_raw = raw.get("objectGUID")
    object_type = _classify(decode_values("objectClass", raw.get("objectClass")))
    if not guid_raw or object_type is None:
        return None
    dn = item["dn"]
    wanted, everything = _wanted(tuple(attributes))
    decoded: dict[str, list[str]] = {}
    members: list[str] = []
    member_range: str | None = None
    for name, values in raw.items():
        lowered = name.lower()
        if lowered.startswith("member;range="):
            member_range = name
            members = decode_values("member", values)
        elif lowered == "member":
            if member_range is None:
                members = decode_values("member", values)
        elif lowered in wanted or (everything and lowered not in _INTERNAL_LOWER):
            decoded[wanted.get(lowered, name)] = decode_values(name, values)
    if member_range is not None:
        high = member_range.rsplit("-", 1)[1]
        if high != "*":
            members.extend(read_members(conn, dn, start=int(high) + 1))
    uac = raw.get("userAccountControl")
    usn = raw.get("uSNChanged")
    return Entry(
        guid=guid_from_bytes(guid_raw[0]),
        dn=dn,
        object_type=object_type,
        attributes=decoded,
        members=members if object_type == "group" else [],
        usn_changed=int(usn[0]) if usn else 0,
        user_account_control=int(uac[0]) if uac else None,
    )


_INTERNAL_LOWER = frozenset(a.lower() for a in _INTERNAL)


@functools.lru_cache(maxsize=64)
def _wanted(attributes: tuple[str, ...]) -> tuple[dict[str, str], bool]:
    """The attributes asked for by lowercase name (member apart), and whether `*` is one:
    worked out once per read, not per entry."""
    wanted = {a.lower(): a for a in attributes if a.lower() != "member"}
    return wanted, "*" in wanted


# --------------------------------------------------------------------------- full reads


def read_full(
    conn: ldap3.Connection,
    scope: ReadScope,
    attributes: Sequence[str],
    *,
    page_size: int = 1000,
) -> Iterator[Entry]:
    """Stream every object in scope with the given attributes (`*` for all), page by page.

    Group members come complete: a ranged `member` (AD returns at most 1,500 values per
    request) is continued with `read_members`.
    """
    if not scope.object_types:
        return
    request = _request_attributes(attributes, scope.object_types)
    ldap_filter = _type_filter(scope.object_types, LIVE_FILTERS)
    for base in _bases(conn, scope):
        for item in paged_search(conn, base, ldap_filter, request, page_size=page_size):
            entry = _to_entry(conn, item, attributes)
            if entry is not None:
                yield entry


def read_members(
    conn: ldap3.Connection, group_dn: str, page: int = _MEMBER_PAGE, start: int = 0
) -> list[str]:
    """All member DNs of a group through ranged retrieval (`member;range=low-high`).

    The server may return fewer values than asked (AD's MaxValRange); the next request starts
    after the last index it returned, until it answers with a range ending in `*`.
    """
    members: list[str] = []
    low = start
    while True:
        wanted = f"member;range={low}-{low + page - 1}"
        conn.search(group_dn, "(objectClass=*)", ldap3.BASE, attributes=[wanted])
        if conn.result["result"] != 0:
            raise result_error(conn.result, group_dn, "read members of")
        raw = _first_entry(conn.response)["raw_attributes"]
        ranged = next((name for name in raw if name.lower().startswith("member;range=")), None)
        if ranged is None:
            if "member" in raw:  # a server that ignores ranges returns everything at once
                members.extend(decode_values("member", raw["member"])[low:])
            return members
        members.extend(decode_values("member", raw[ranged]))
        high = ranged.rsplit("-", 1)[1]
        if high == "*":
            return members
        low = int(high) + 1


def read_by_guids(
    conn: ldap3.Connection,
    guids: Sequence[str],
    attributes: Sequence[str],
    object_types: Sequence[str] = OBJECT_TYPES,
    *,
    chunk: int = 200,
) -> Iterator[Entry]:
    """Read objects by GUID, in batches of OR filters, from the whole domain."""
    if not guids or not object_types:
        return
    root = naming_context(conn)
    request = _request_attributes(attributes, object_types)
    type_filter = _type_filter(object_types, LIVE_FILTERS)
    for index in range(0, len(guids), chunk):
        batch = guids[index : index + chunk]
        ors = "".join(f"(objectGUID={guid_filter_value(g)})" for g in batch)
        ldap_filter = f"(&{type_filter}(|{ors}))"
        for item in paged_search(conn, root, ldap_filter, request):
            entry = _to_entry(conn, item, attributes)
            if entry is not None:
                yield entry


def read_by_values(
    conn: ldap3.Connection,
    attribute: str,
    values: Sequence[str],
    attributes: Sequence[str],
    scope: ReadScope,
    *,
    chunk: int = 200,
) -> Iterator[Entry]:
    """Objects in scope whose `attribute` equals one of values (the directory compares, as
    its schema says: names case-insensitively); objectGUID values are GUID strings."""
    if not values or not scope.object_types:
        return
    request = _request_attributes(attributes, scope.object_types)
    type_filter = _type_filter(scope.object_types, LIVE_FILTERS)
    is_guid = attribute.lower() == "objectguid"
    for base in _bases(conn, scope):
        for index in range(0, len(values), chunk):
            ors = "".join(
                f"({attribute}={guid_filter_value(v) if is_guid else _filter_escape(v)})"
                for v in values[index : index + chunk])
            for item in paged_search(conn, base, f"(&{type_filter}(|{ors}))", request):
                entry = _to_entry(conn, item, attributes)
                if entry is not None:
                    yield entry


def resolve_dns(conn: ldap3.Connection, dns: Sequence[str], *, chunk: int = 200) -> dict[str, str]:
    """Map DNs (e.g. members, manager) to GUIDs; DNs that do not exist are left out."""
    found: dict[str, str] = {}
    if not dns:
        return found
    root = naming_context(conn)
    for index in range(0, len(dns), chunk):
        batch = dns[index : index + chunk]
        ors = "".join(f"(distinguishedName={_filter_escape(dn)})" for dn in batch)
        for item in paged_search(conn, root, f"(|{ors})", ["objectGUID"]):
            raw = item["raw_attributes"].get("objectGUID")
            if raw:
                found[item["dn"]] = guid_from_bytes(raw[0])
    return found


def _filter_escape(value: str) -> str:
    out = []
    for char in value:
        if char in "*()\\\0":
            out.append("".join(f"\\{b:02x}" for b in char.encode("utf-8")))
        else:
            out.append(char)
    return "".join(out)


# --------------------------------------------------------------------------- deltas


def initial_watermark(
    conn: ldap3.Connection,
    scope: ReadScope | None = None,
    method: Literal["auto", "dirsync", "usn"] = "auto",
) -> AdWatermark:
    """The current position, to be taken BEFORE a full read so later deltas miss nothing.

    With DirSync (tried first unless `method="usn"`), this runs a DirSync to its end asking for
    objectGUID only; if the server refuses DirSync and `method="auto"`, a USN watermark results.
    """
    dse = root_dse(conn)
    highest = int(dse["highestCommittedUSN"][0])
    if method != "usn":
        types = (scope or ReadScope()).object_types
        try:
            cookie, _ = _dirsync(conn, dse["defaultNamingContext"][0], types, ["objectGUID"], None)
            return AdWatermark.dirsync(cookie)
        except DirSyncUnavailable:
            if method == "dirsync":
                raise
    return AdWatermark.usn(highest, server_invocation_id(conn, dse))


def read_changes(
    conn: ldap3.Connection,
    scope: ReadScope,
    attributes: Sequence[str],
    watermark: AdWatermark,
    method: Literal["auto", "dirsync", "usn"] = "auto",
) -> Changes:
    """What changed in scope since `watermark`, with changed objects read in full.

    A DirSync watermark is used with DirSync; if the server refuses DirSync (e.g. the account
    lacks "Replicating Directory Changes") and `method="auto"`, the read falls back to
    uSNChanged from the USN the cookie records and returns a USN watermark. Seeing deletions
    through uSNChanged needs read access to the Deleted Objects container.
    Raises WatermarkError when a USN position came from another DC: do a full read then.
    """
    stream = stream_changes(conn, scope, attributes, watermark, method)
    entries = list(stream.entries)
    return Changes(entries, stream.deleted, stream.out_of_scope, stream.watermark)


@dataclass
class ChangeStream:
    """A delta being read: `entries` yields the changed objects in scope as they are read.

    `deleted` and `watermark` are known from the start; `out_of_scope` fills up while
    `entries` is consumed and is complete once it is exhausted.
    """

    entries: Iterator[Entry]
    deleted: list[str]
    out_of_scope: list[str]
    watermark: AdWatermark


def stream_changes(
    conn: ldap3.Connection,
    scope: ReadScope,
    attributes: Sequence[str],
    watermark: AdWatermark,
    method: Literal["auto", "dirsync", "usn"] = "auto",
) -> ChangeStream:
    """read_changes without holding the changed objects: for deltas of any size."""
    dse = root_dse(conn)
    root = dse["defaultNamingContext"][0]
    highest = int(dse["highestCommittedUSN"][0])
    if watermark.kind == "dirsync" and method != "usn":
        try:
            cookie, (changed, deleted) = _dirsync(
                conn, root, scope.object_types, attributes, watermark.cookie
            )
        except DirSyncUnavailable:
            if method == "dirsync":
                raise
        else:
            outside: list[str] = []
            fresh = read_by_guids(conn, changed, attributes, scope.object_types)
            return ChangeStream(_in_scope(fresh, conn, scope, outside), deleted, outside,
                                AdWatermark.dirsync(cookie))
    since = watermark.highest
    if since is None:
        raise WatermarkError("the DirSync cookie does not say where it stands: do a full read")
    server = server_invocation_id(conn, dse)
    if watermark.server and watermark.server != server:
        raise WatermarkError(
            f"USN watermark is from DC {watermark.server}, this is DC {server}: do a full read"
        )
    return _usn_changes(conn, scope, attributes, root, since, highest, server)


def _in_scope(
    entries: Iterable[Entry], conn: ldap3.Connection, scope: ReadScope, outside: list[str]
) -> Iterator[Entry]:
    """The entries under the scope's bases; the GUIDs of the others go to `outside`."""
    bases = _bases(conn, scope)
    for entry in entries:
        if any(is_under(entry.dn, base) for base in bases):
            yield entry
        else:
            outside.append(entry.guid)


def _usn_changes(
    conn: ldap3.Connection,
    scope: ReadScope,
    attributes: Sequence[str],
    root: str,
    since: int,
    highest: int,
    server: str,
) -> ChangeStream:
    types = scope.object_types
    deleted: list[str] = []
    dead = f"(&(isDeleted=TRUE)(uSNChanged>={since + 1}){_type_filter(types, CLASS_FILTERS)})"
    show_deleted = [build_control(SHOW_DELETED_OID, True, None)]
    container = f"<WKGUID={DELETED_OBJECTS_WKGUID},{root}>"
    try:
        for item in paged_search(
            conn, container, dead, ["objectGUID"], scope=ldap3.LEVEL, controls=show_deleted
        ):
            raw = item["raw_attributes"].get("objectGUID")
            if raw:
                deleted.append(guid_from_bytes(raw[0]))
    except DirectoryError as exc:
        if exc.code not in (32, 50):  # no such object / no rights: deletions are not visible
            raise
    request = _request_attributes(attributes, types)
    live = f"(&{_type_filter(types, LIVE_FILTERS)}(uSNChanged>={since + 1}))"
    changed = (
        entry
        for item in paged_search(conn, root, live, request)
        if (entry := _to_entry(conn, item, attributes)) is not None
    )
    outside: list[str] = []
    return ChangeStream(_in_scope(changed, conn, scope, outside), deleted, outside,
                        AdWatermark.usn(highest, server))


def _dirsync(
    conn: ldap3.Connection,
    root: str,
    object_types: Sequence[str],
    attributes: Sequence[str],
    cookie: bytes | None,
) -> tuple[bytes, tuple[list[str], list[str]]]:
    """Run DirSync from `cookie` to the end: (new cookie, (changed GUIDs, deleted GUIDs))."""
    request = [a for a in attributes if a != "*"]
    lowered = {a.lower() for a in request}
    # name changes on rename and move; member on membership changes (incremental values only).
    for extra in ("objectGUID", "isDeleted", "name", "member", "userAccountControl"):
        if extra.lower() not in lowered:
            request.append(extra)
    ldap_filter = _type_filter(object_types, CLASS_FILTERS)
    raw_cookie = cookie or b""
    changed: dict[str, None] = {}
    deleted: dict[str, None] = {}
    while True:
        value = DirSyncControlRequestValue()
        value["Flags"] = _DIRSYNC_INCREMENTAL_VALUES
        value["MaxBytes"] = 10 * 1024 * 1024
        value["Cookie"] = raw_cookie
        control = build_control(DIRSYNC_OID, True, value)
        try:
            conn.search(root, ldap_filter, ldap3.SUBTREE, attributes=request, controls=[control])
        except LDAPException as exc:
            raise DirSyncUnavailable(root, "dirsync", -1, str(exc)) from None
        result = conn.result
        if result["result"] in _DIRSYNC_UNAVAILABLE:
            error = result_error(result, root, "dirsync")
            raise DirSyncUnavailable(root, "dirsync", error.code, error.message, error.description)
        if result["result"] != 0:
            raise result_error(result, root, "dirsync")
        for item in conn.response or ():
            if item.get("type") != "searchResEntry":
                continue
            raw = item["raw_attributes"]
            guid_raw = raw.get("objectGUID")
            if not guid_raw:
                continue
            guid = guid_from_bytes(guid_raw[0])
            if any(v.upper() == b"TRUE" for v in raw.get("isDeleted") or ()):
                deleted[guid] = None
                changed.pop(guid, None)
            else:
                changed[guid] = None
        response = (result.get("controls") or {}).get(DIRSYNC_OID)
        if not response:
            raise DirSyncUnavailable(root, "dirsync", -1, "server returned no DirSync control")
        raw_cookie = bytes(response["value"]["cookie"])
        if not response["value"]["more_results"]:
            break
    return raw_cookie, (list(changed), list(deleted))
