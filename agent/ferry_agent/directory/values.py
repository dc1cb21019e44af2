"""Attribute values between the wire (bytes) and Ferry (str).

Text is UTF-8. GUID-valued attributes become lowercase UUIDs, SIDs become `S-1-5-...`, and
other binary values become base64; `encode_value` reverses each of these for writes.
"""

from __future__ import annotations

import base64
import struct

from .guid import guid_from_bytes, guid_to_bytes

GUID_ATTRIBUTES = frozenset(
    name.lower()
    for name in ("objectGUID", "mS-DS-ConsistencyGuid", "msExchMailboxGuid", "msExchArchiveGUID")
)
SID_ATTRIBUTES = frozenset(
    name.lower()
    for name in ("objectSid", "sIDHistory", "msExchMasterAccountSid", "securityIdentifier")
)
BINARY_ATTRIBUTES = frozenset(
    name.lower()
    for name in (
        "thumbnailPhoto",
        "jpegPhoto",
        "photo",
        "userCertificate",
        "userSMIMECertificate",
        "cACertificate",
        "logonHours",
        "nTSecurityDescriptor",
        "msDS-GenerationId",
        "replPropertyMetaData",
    )
)


def sid_from_bytes(raw: bytes) -> str:
    """Binary SID to its `S-R-A-S1-S2...` string form."""
    revision, count = raw[0], raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", raw, 8)
    return "S-" + "-".join(str(part) for part in (revision, authority, *subs))


def sid_to_bytes(sid: str) -> bytes:
    """`S-1-5-21-...` to the binary SID AD stores."""
    parts = sid.strip().split("-")
    if len(parts) < 3 or parts[0].upper() != "S":
        raise ValueError(f"not a SID: {sid!r}")
    revision, authority, subs = int(parts[1]), int(parts[2]), [int(p) for p in parts[3:]]
    return (
        bytes([revision, len(subs)])
        + authority.to_bytes(6, "big")
        + struct.pack(f"<{len(subs)}I", *subs)
    )


def decode_value(attribute: str, raw: bytes) -> str:
    """One wire value to str, by the rules in the module docstring."""
    name = attribute.split(";", 1)[0].lower()
    if name in GUID_ATTRIBUTES and len(raw) == 16:
        return guid_from_bytes(raw)
    if name in SID_ATTRIBUTES and len(raw) >= 8:
        return sid_from_bytes(raw)
    if name in BINARY_ATTRIBUTES:
        return base64.b64encode(raw).decode("ascii")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")


def decode_values(attribute: str, raw: list[bytes] | None) -> list[str]:
    """All wire values of an attribute (None, as ldap3 gives for an empty range, is []).

    The attribute's kind is looked up once: most are text, decoded value by value as is."""
    if not raw:
        return []
    name = attribute.split(";", 1)[0].lower()
    if name in GUID_ATTRIBUTES or name in SID_ATTRIBUTES or name in BINARY_ATTRIBUTES:
        return [decode_value(name, value) for value in raw]
    try:
        return [value.decode("utf-8") for value in raw]
    except UnicodeDecodeError:
        return [decode_value(name, value) for value in raw]


def encode_value(attribute: str, value: str) -> bytes | str:
    """One str value back to what the server expects."""
    name = attribute.lower()
    if name in GUID_ATTRIBUTES:
        return guid_to_bytes(value)
    if name in SID_ATTRIBUTES:
        return sid_to_bytes(value)
    if name in BINARY_ATTRIBUTES:
        return base64.b64decode(value)
    return value
