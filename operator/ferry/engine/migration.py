"""What a pair moves besides attributes: source SIDs into sIDHistory, and the SID translation
table device ReACL uses. Pure: joins and records in, work out.

Only joined pairs are ever touched: a source object without a join (unmatched, conflicting,
out of scope) gets nothing, whatever its target looks like.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from ferry.engine.records import ObjectType, Record

OBJECT_SID = "objectSid"
SID_HISTORY = "sIDHistory"
SAM_ACCOUNT_NAME = "sAMAccountName"


@dataclass(frozen=True, slots=True)
class SidHistoryAdd:
    """The source object's SID, to be added to its joined target's sIDHistory."""

    pair: str
    object_type: ObjectType
    source_anchor: str
    source_dn: str
    target_anchor: str
    sid: str
    source_principal: str = ""   # its sAMAccountName: how DsAddSidHistory names it


@dataclass(frozen=True, slots=True)
class PasswordSync:
    """A source user's password, set on its joined target user (never the password itself)."""

    pair: str
    source_anchor: str
    source_dn: str
    target_anchor: str   # "" in test mode for a user the run would create


def sid_history_adds(pair: str, object_types: Collection[ObjectType],
                     sources: Iterable[Record], joins: Mapping[str, str],
                     targets: Mapping[str, Record]) -> list[SidHistoryAdd]:
    """The SIDs joined targets still lack: a target whose sIDHistory holds its source's SID
    needs nothing, so running again adds nothing. A target created in this run was not read,
    so it has none yet."""
    adds: list[SidHistoryAdd] = []
    for source in sources:
        if source.object_type not in object_types:
            continue
        target_anchor = joins.get(source.anchor)
        sid = _one(source.attributes.get(OBJECT_SID))
        if target_anchor is None or not sid:
            continue
        target = targets.get(target_anchor)
        held = {s.upper() for s in _many(target.attributes.get(SID_HISTORY))} if target else set()
        if sid.upper() not in held:
            adds.append(SidHistoryAdd(pair, source.object_type, source.anchor, source.dn,
                                      target_anchor, sid,
                                      _one(source.attributes.get(SAM_ACCOUNT_NAME))))
    return adds


# Device ReACL translates users' and groups' SIDs only (computers move themselves).
TRANSLATED_TYPES = frozenset({ObjectType.USER, ObjectType.GROUP})


@dataclass(frozen=True, slots=True)
class SidTranslation:
    """A joined object's source SID and the SID of its target: one row of the table device
    ReACL translates with."""

    object_type: ObjectType
    source_sid: str
    target_sid: str


def sid_translations(sources: Iterable[Record], joins: Mapping[str, str],
                     targets: Mapping[str, Record]) -> dict[str, SidTranslation]:
    """Source anchor -> translation, for joined users and groups whose target was read (a
    target created in this run has its SID read by the next run)."""
    table: dict[str, SidTranslation] = {}
    for source in sources:
        if source.object_type not in TRANSLATED_TYPES:
            continue
        target = targets.get(joins.get(source.anchor, ""))
        source_sid = _one(source.attributes.get(OBJECT_SID))
        target_sid = _one(target.attributes.get(OBJECT_SID)) if target else ""
        if source_sid and target_sid:
            table[source.anchor] = SidTranslation(source.object_type, source_sid, target_sid)
    return table


def _one(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and value and isinstance(value[0], str):
        return value[0]
    return ""


def _many(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, str)]
    return []
