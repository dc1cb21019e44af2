"""A discovered record as the discovery report keeps it (state table directory_objects)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.state.rows import DirectoryObject

# Read by discovery for its report; Graph selects those it has (mail, UPN, display name,
# operating system) and the others stay empty.
REPORT_ATTRIBUTES = ("sAMAccountName", "userPrincipalName", "mail", "displayName",
                     "lastLogonTimestamp", "whenCreated", "operatingSystem")
_FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)
_NEVER = 0x7FFFFFFFFFFFFFFF   # AD's "never" in a FILETIME attribute


def directory_object(record: Record) -> DirectoryObject:
    """The report fields of one record."""
    get = record.attributes.get
    name = _first(get("sAMAccountName")) or _first(get("displayName")) or _first(get("cn"))
    if record.object_type is ObjectType.DEVICE:
        name = name.removesuffix("$")
    return DirectoryObject(
        anchor=record.anchor, object_type=record.object_type.value, dn=record.dn, name=name,
        display_name=_first(get("displayName")), upn=_first(get("userPrincipalName")),
        mail=_first(get("mail")), enabled=record.enabled,
        last_logon=filetime(_first(get("lastLogonTimestamp"))),
        created=timestamp(_first(get("whenCreated"))),
        members=(len(record.references.get("member", ()))
                 if record.object_type is ObjectType.GROUP else None),
        os=_first(get("operatingSystem")))


def filetime(value: str) -> datetime | None:
    """An AD FILETIME (100 ns since 1601) as a time; None for none, 0 and "never"."""
    try:
        ticks = int(value)
    except ValueError:
        return None
    if ticks <= 0 or ticks >= _NEVER:
        return None
    return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)


def timestamp(value: str) -> datetime | None:
    """AD's generalized time (20261202183500.0Z) or Graph's ISO 8601 as a time."""
    if not value:
        return None
    try:
        if value[:14].isdigit():
            return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _first(value: AttributeValue | None) -> str:
    if isinstance(value, tuple):
        return value[0] if value else ""
    return value or ""
