"""Which joined targets get their source SID: only those that lack it, never unjoined ones."""

from __future__ import annotations

from ferry.engine.migration import sid_history_adds
from ferry.engine.records import ObjectType, Record

USERS_GROUPS = {ObjectType.USER, ObjectType.GROUP}


def _source(anchor: str, sid: str, kind: ObjectType = ObjectType.USER) -> Record:
    return Record(anchor, kind, f"CN={anchor},DC=src", {"objectSid": sid})


def test_joined_targets_without_the_sid_get_it_once() -> None:
    sources = [_source("a", "S-1-5-21-1-2-3-1101"), _source("b", "S-1-5-21-1-2-3-1102")]
    joins = {"a": "ta", "b": "tb"}
    targets = {"ta": Record("ta", ObjectType.USER, "CN=a,DC=tgt", {}),
               "tb": Record("tb", ObjectType.USER, "CN=b,DC=tgt",
                            {"sIDHistory": ["s-1-5-21-1-2-3-1102"]})}
    adds = sid_history_adds("p", USERS_GROUPS, sources, joins, targets)
    assert [(a.source_anchor, a.target_anchor, a.sid) for a in adds] == \
        [("a", "ta", "S-1-5-21-1-2-3-1101")]


def test_unjoined_sources_and_other_types_get_nothing() -> None:
    sources = [_source("a", "S-1-5-21-1-2-3-1101"),
               _source("c", "S-1-5-21-1-2-3-1103", ObjectType.CONTACT)]
    assert sid_history_adds("p", USERS_GROUPS, sources, {"c": "tc"}, {}) == []
    assert sid_history_adds("p", {ObjectType.GROUP}, sources[:1], {"a": "ta"}, {}) == []


def test_a_target_created_in_this_run_was_not_read_and_gets_it() -> None:
    adds = sid_history_adds("p", USERS_GROUPS, [_source("a", "S-1-5-21-1-2-3-1101")],
                            {"a": "new"}, {})
    assert [a.target_anchor for a in adds] == ["new"]
