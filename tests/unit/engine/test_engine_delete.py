"""Deletes: joined targets whose source is gone or out of scope, guarded by the threshold."""

from __future__ import annotations

from engine_world import FakeTarget, group, pair, staging, user

from ferry.engine.pipeline import plan_pair, plan_summary
from ferry.engine.plan import OpKind
from ferry.engine.records import ObjectType, Record
from ferry.engine.rules import AttributeMapping, TypeSwitch

STAGING = staging(AttributeMapping("cn", "source.cn"), AttributeMapping("title", "source.title"))


def _synced(count: int) -> tuple[list[Record], FakeTarget]:
    sources = [user(f"s{i}", f"User {i}") for i in range(count)]
    world = FakeTarget()
    world.apply(plan_pair(pair(STAGING), sources, [], {}))
    return sources, world


def test_deletes_at_or_under_the_threshold_are_planned() -> None:
    sources, world = _synced(20)
    plan = plan_pair(pair(STAGING, delete_threshold=10), sources[5:], world.records, world.joins)
    deletes = [op for op in plan.operations if op.kind is OpKind.DELETE]
    assert sorted(op.source_anchor or "" for op in deletes) == [f"s{i}" for i in range(5)]
    assert all(op.target_anchor == world.joins[op.source_anchor or ""] for op in deletes)
    assert all(op.reason for op in deletes)
    assert not plan.threshold_hit
    assert plan_summary(plan)[ObjectType.USER]["deleted"] == 5

    at_threshold = plan_pair(pair(STAGING, delete_threshold=10), sources[10:], world.records,
                             world.joins)
    assert at_threshold.count(OpKind.DELETE) == 10


def test_deletes_over_the_threshold_delete_nothing_and_say_why() -> None:
    sources, world = _synced(20)
    plan = plan_pair(pair(STAGING, delete_threshold=10), sources[11:], world.records,
                     world.joins)
    assert plan.count(OpKind.DELETE) == 0
    assert plan.threshold_hit
    message = plan.threshold_message
    assert "11" in message and "10" in message and "spec.steps[].threshold" in message


def test_other_changes_still_happen_when_the_threshold_is_hit() -> None:
    sources, world = _synced(20)
    sources[15].attributes["title"] = "Lead"
    plan = plan_pair(pair(STAGING, delete_threshold=3), sources[10:], world.records, world.joins)
    assert plan.threshold_hit
    assert [op.kind for op in plan.operations] == [OpKind.UPDATE]


def test_leaving_scope_deletes_with_a_reason() -> None:
    sources, world = _synced(3)
    sources[0].dn = "CN=User 0,OU=Leavers,DC=src,DC=test"
    sources[1].attributes["title"] = "Contractor"
    rules = pair(STAGING, source_ous=("OU=Staff,DC=src,DC=test",),
                 source_filter="!has(source.title) || source.title != 'Contractor'")
    plan = plan_pair(rules, sources, world.records, world.joins)
    reasons = {op.source_anchor: op.reason for op in plan.operations if op.kind is OpKind.DELETE}
    assert set(reasons) == {"s0", "s1"}
    assert "source OUs" in reasons["s0"] and "filter" in reasons["s1"]


def test_object_type_dropped_from_the_pair_deletes_its_objects() -> None:
    sources = [user("s1", "Ann"), group("g1", "Team")]
    world = FakeTarget()
    world.apply(plan_pair(pair(STAGING), sources, [], {}))
    users_only = pair(STAGING, object_types=frozenset({ObjectType.USER}))
    plan = plan_pair(users_only, sources, world.records, world.joins)
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.DELETE, "g1")]


def test_delete_switch_off_for_a_type_keeps_its_objects() -> None:
    sources, world = _synced(2)
    rules = pair(staging(AttributeMapping("cn", "source.cn"),
                         object_types={ObjectType.USER: TypeSwitch(delete=False)}))
    assert plan_pair(rules, sources[1:], world.records, world.joins).operations == []
    assert plan_pair(pair(STAGING, delete_enabled=False), [], world.records,
                     world.joins).operations == []


def test_vanished_target_drops_the_join_and_creates_again() -> None:
    sources, world = _synced(2)
    gone = world.joins["s0"]
    del world.objects[gone]
    plan = plan_pair(pair(STAGING), sources, world.records, world.joins)
    assert plan.dropped_joins == ["s0"]
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.CREATE, "s0")]


def test_deletes_come_after_writes_and_before_references() -> None:
    sources = [user("s1", "Ann"), user("s2", "Bob"), group("g1", "Team")]
    world = FakeTarget()
    world.apply(plan_pair(pair(STAGING), sources, [], {}))
    changed = [user("s1", "Ann", title="Lead"), user("s3", "New"), group("g1", "Team", "s3")]
    plan = plan_pair(pair(STAGING), changed, world.records, world.joins)
    assert [op.kind for op in plan.operations] == [
        OpKind.UPDATE, OpKind.CREATE, OpKind.DELETE, OpKind.REFERENCES]


def test_threshold_holds_back_what_follows_from_the_deletions_too() -> None:
    # A bad source read loses eleven accounts: they are not deleted, and they keep their
    # groups and stay the manager they were; the change of one kept user still happens.
    sources, world = _synced(20)
    sources += [user("boss", "Boss"), user("ann", "Ann", manager="s3"),
                group("g1", "Team", *(f"s{i}" for i in range(20)))]
    world.apply(plan_pair(pair(STAGING), sources, world.records, world.joins))
    team, ann = world.joins["g1"], world.joins["ann"]
    assert len(world.objects[team].references["member"]) == 20

    kept = [s for s in sources if s.anchor not in {f"s{i}" for i in range(11)}]
    for index, record in enumerate(kept):
        if record.anchor == "g1":
            kept[index] = group("g1", "Team", *(f"s{i}" for i in range(11, 20)))
        elif record.anchor == "ann":
            kept[index] = user("ann", "Ann", title="Lead")  # her manager s3 is gone
    plan = plan_pair(pair(STAGING, delete_threshold=10), kept, world.records, world.joins)
    assert plan.threshold_hit
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.UPDATE, "ann")]
    world.apply(plan)
    assert len(world.objects[team].references["member"]) == 20
    assert world.objects[ann].references["manager"] == (world.joins["s3"],)


def test_under_the_threshold_the_deleted_leave_their_groups() -> None:
    sources, world = _synced(5)
    sources.append(group("g1", "Team", *(f"s{i}" for i in range(5))))
    world.apply(plan_pair(pair(STAGING), sources, world.records, world.joins))
    kept = [*sources[1:5], group("g1", "Team", *(f"s{i}" for i in range(1, 5)))]
    plan = plan_pair(pair(STAGING, delete_threshold=10), kept, world.records, world.joins)
    assert not plan.threshold_hit
    assert plan.count(OpKind.DELETE) == 1
    [members] = [op for op in plan.operations if op.kind is OpKind.REFERENCES]
    assert members.remove == (world.joins["s0"],)
