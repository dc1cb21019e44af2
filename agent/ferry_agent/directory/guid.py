"""objectGUID conversions: AD stores GUIDs little-endian; Ferry shows them as lowercase UUIDs."""

from __future__ import annotations

import uuid


def guid_from_bytes(raw: bytes) -> str:
    """Raw objectGUID (16 bytes, AD's little-endian layout) to canonical lowercase UUID."""
    return str(uuid.UUID(bytes_le=bytes(raw)))


def guid_to_bytes(guid: str) -> bytes:
    """Canonical UUID string (with or without braces) to the 16 bytes AD stores."""
    return uuid.UUID(guid.strip("{}")).bytes_le


def normalize_guid(guid: str) -> str:
    """Any accepted spelling of a GUID to canonical lowercase form."""
    return str(uuid.UUID(guid.strip("{}")))


def guid_filter_value(guid: str) -> str:
    """The GUID escaped byte by byte for use inside an LDAP filter (RFC 4515)."""
    return "".join(f"\\{byte:02x}" for byte in guid_to_bytes(guid))


def guid_filter(guid: str) -> str:
    """An LDAP filter matching exactly the object with this GUID."""
    return f"(objectGUID={guid_filter_value(guid)})"


def guid_dn(guid: str) -> str:
    """A base DN that addresses an object by GUID, whatever its current name: `<GUID=...>`."""
    return f"<GUID={normalize_guid(guid)}>"
