"""References (group members, manager): resolved through joins, applied after all objects."""

from __future__ import annotations

from engine_world import FakeTarget, group, pair, staging, target_user, user

from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import Operation, OpKind
from ferry.engine.records import ObjectType, Record
from ferry.engine.rules import AttributeMapping, TypeSwitch

RULES = pair(staging(AttributeMapping("cn", "source.cn"), AttributeMapping("mail", "source.mail")))


def _refs(ops: list[Operation]) -> dict[tuple[str | None, str | None], Operation]:
    return {(op.source_anchor, op.attribute): op for op in ops if op.kind is OpKind.REFERENCES}


def test_members_and_manager_created_in_the_same_run_are_added_by_source_anchor() -> None:
    sources = [user("boss", "Boss"), user("ann", "Ann", manager="boss"),
               group("g1", "Team", "ann", "boss")]
    plan = plan_pair(RULES, sources, [], {})
    kinds = [op.kind for op in plan.operations]
    assert kinds.index(OpKind.REFERENCES) > max(i for i, k in enumerate(kinds)
                                                 if k is OpKind.CREATE)
    refs = _refs(plan.operations)
    assert refs[("g1", "member")].add == ("ann", "boss")
    assert refs[("g1", "member")].target_anchor is None
    assert refs[("ann", "manager")].add == ("boss",)
    assert plan.deferred == []


def test_nested_groups_converge_and_then_stay_quiet() -> None:
    sources = [user("ann", "Ann"), group("inner", "Inner", "ann"),
               group("outer", "Outer", "inner", "ann")]
    world = FakeTarget()
    world.apply(plan_pair(RULES, sources, [], {}))
    outer = world.objects[world.joins["outer"]]
    assert set(outer.references["member"]) == {world.joins["inner"], world.joins["ann"]}
    assert plan_pair(RULES, sources, world.records, world.joins).operations == []

    # The inner group leaves the outer one in the source: exactly that member is removed.
    sources[2] = group("outer", "Outer", "ann")
    [op] = plan_pair(RULES, sources, world.records, world.joins).operations
    assert (op.kind, op.add, op.remove) == (OpKind.REFERENCES, (), (world.joins["inner"],))


def test_member_matched_this_run_is_added_when_the_target_lacks_it() -> None:
    sources = [user("ann", "Ann", mail="ann@x.test"), group("g1", "Team", "ann")]
    existing = target_user("t-ann", "Ann", mail="ann@x.test")
    plan = plan_pair(RULES, sources, [existing], {})
    assert plan.new_joins == {"ann": "t-ann"}
    assert _refs(plan.operations)[("g1", "member")].add == ("ann",)


def test_member_not_synced_yet_is_deferred() -> None:
    # "ghost" is neither joined nor read this run (e.g. outside the source OUs).
    sources = [user("ann", "Ann"), group("g1", "Team", "ann", "ghost")]
    plan = plan_pair(RULES, sources, [], {})
    assert _refs(plan.operations)[("g1", "member")].add == ("ann",)
    assert plan.deferred == ["g1"]
    assert plan.deferred_counts == {ObjectType.GROUP: 1}


def test_member_in_conflict_is_deferred_not_added() -> None:
    sources = [user("a", "A", mail="same@x.test"), user("b", "B", mail="same@x.test"),
               group("g1", "Team", "a")]
    plan = plan_pair(RULES, sources, [], {})
    assert ("g1", "member") not in _refs(plan.operations)
    assert plan.deferred == ["g1"]


def test_target_native_members_are_kept_and_managed_ones_removed() -> None:
    sources = [user("ann", "Ann"), user("bob", "Bob"), group("g1", "Team", "ann", "bob")]
    world = FakeTarget()
    world.apply(plan_pair(RULES, sources, [], {}))
    native = Record("t-native", ObjectType.USER, "CN=Native,OU=Local,DC=tgt,DC=test", {})
    world.objects[native.anchor] = native
    team = world.objects[world.joins["g1"]]
    team.references = {"member": (*team.references["member"], "t-native")}

    sources[2] = group("g1", "Team", "ann")  # bob leaves the group in the source
    [op] = plan_pair(RULES, sources, world.records, world.joins).operations
    assert op.remove == (world.joins["bob"],)
    assert op.add == ()


def test_group_update_switch_off_leaves_members_alone() -> None:
    rules = pair(staging(AttributeMapping("cn", "source.cn"),
                         object_types={ObjectType.GROUP: TypeSwitch(update=False)}))
    sources = [user("ann", "Ann"), group("g1", "Team")]
    world = FakeTarget()
    world.apply(plan_pair(rules, sources, [], {}))
    sources[1] = group("g1", "Team", "ann")
    assert plan_pair(rules, sources, world.records, world.joins).operations == []
