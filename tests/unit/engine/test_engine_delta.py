"""Delta runs: only changed objects are read, and only explicit deletions delete."""

from __future__ import annotations

from engine_world import FakeTarget, group, pair, staging, user

from ferry.engine.pipeline import plan_pair, plan_summary
from ferry.engine.plan import OpKind
from ferry.engine.records import ObjectType
from ferry.engine.rules import AttributeMapping

RULES = pair(staging(AttributeMapping("cn", "source.cn"), AttributeMapping("title", "source.title"),
                     AttributeMapping("mail", "source.mail")),
             source_ous=("OU=Staff,DC=src,DC=test",))


def _synced() -> FakeTarget:
    world = FakeTarget()
    sources = [user(f"s{i}", f"User {i}", mail=f"u{i}@x.test") for i in range(5)]
    sources.append(group("g1", "Team", "s0"))
    world.apply(plan_pair(RULES, sources, [], {}))
    return world


def test_objects_not_read_in_a_delta_run_are_not_deleted() -> None:
    world = _synced()
    changed = user("s1", "User 1", title="Lead", mail="u1@x.test")
    plan = plan_pair(RULES, [changed], world.records, world.joins, full=False)
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.UPDATE, "s1")]
    assert plan_summary(plan)[ObjectType.USER]["updated"] == 1


def test_delta_deletes_listed_deletions_and_objects_that_left_scope() -> None:
    world = _synced()
    left = user("s3", "User 3", ou="OU=Leavers,DC=src,DC=test", mail="u3@x.test")
    plan = plan_pair(RULES, [left], world.records, world.joins, full=False,
                     deleted_sources=["s2", "never-joined"])
    deletes = {op.source_anchor: op.reason for op in plan.operations if op.kind is OpKind.DELETE}
    assert set(deletes) == {"s2", "s3"}
    assert "deleted" in deletes["s2"]


def test_full_run_deletes_what_the_read_no_longer_has() -> None:
    world = _synced()
    sources = [user(f"s{i}", f"User {i}", mail=f"u{i}@x.test") for i in (0, 1, 2, 3)]
    sources.append(group("g1", "Team", "s0"))
    plan = plan_pair(RULES, sources, world.records, world.joins, full=True)
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.DELETE, "s4")]


def test_delta_new_object_is_matched_against_the_full_target() -> None:
    world = _synced()
    # A new source whose mail is already on a joined target: a conflict, not a duplicate.
    newcomer = user("s9", "Someone", mail="U0@x.test")
    plan = plan_pair(RULES, [newcomer], world.records, world.joins, full=False)
    assert plan.operations == []
    assert [c.source_anchor for c in plan.conflicts] == ["s9"]


def test_delta_vanished_target_of_an_unread_source_drops_its_join() -> None:
    world = _synced()
    del world.objects[world.joins["s4"]]
    plan = plan_pair(RULES, [], world.records, world.joins, full=False)
    assert plan.dropped_joins == ["s4"]
    assert plan.operations == []
