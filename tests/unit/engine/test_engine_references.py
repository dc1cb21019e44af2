"""References (group members, manager): resolved through joins, applied after all objects."""

from __future__ import annotations

from engine_world import FakeTarget, group, pair, staging, target_user, user

from ferry.engine.pipeline import plan_pair, plan_summary
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


def test_member_outside_the_scope_is_out_of_scope_not_deferred() -> None:
    # "ghost" is not in the source read at all (outside the source Environment's scope);
    # "leaver" is read but outside the pair's source OUs. Neither is ever synced.
    sources = [user("ann", "Ann"), user("leaver", "Leaver", ou="OU=Other,DC=src,DC=test"),
               group("g1", "Team", "ann", "ghost", "leaver")]
    rules = pair(RULES.staging, source_ous=("OU=Staff,DC=src,DC=test",))
    plan = plan_pair(rules, sources, [], {})
    assert _refs(plan.operations)[("g1", "member")].add == ("ann",)
    assert plan.deferred == [] and plan.deferred_counts == {}
    assert [(r.source_anchor, r.attribute, r.reference) for r in plan.out_of_scope] == [
        ("g1", "member", "ghost"), ("g1", "member", "leaver")]
    assert plan_summary(plan)[ObjectType.GROUP]["outOfScope"] == 2
    assert "outside the pair's scope" in plan.out_of_scope[0].message


def test_member_outside_the_scope_stays_out_of_scope_and_the_group_quiet() -> None:
    sources = [user("ann", "Ann"), group("g1", "Team", "ann", "ghost"),
               user("bob", "Bob", manager="outsider")]
    world = FakeTarget()
    world.apply(plan_pair(RULES, sources, [], {}))
    again = plan_pair(RULES, sources, world.records, world.joins)
    assert again.operations == [] and again.deferred == []
    assert sorted((r.source_anchor, r.attribute, r.reference) for r in again.out_of_scope) == [
        ("bob", "manager", "outsider"), ("g1", "member", "ghost")]
    assert again.unchanged == {ObjectType.USER: 2, ObjectType.GROUP: 1}


def test_on_a_delta_run_only_members_that_may_still_be_synced_are_deferred() -> None:
    sources = [user("ann", "Ann"), user("bob", "Bob"), group("g1", "Team", "ann", "bob")]
    world = FakeTarget()
    world.apply(plan_pair(RULES, sources, [], {}))
    del world.objects[world.joins["bob"]]  # bob's target is gone: recreated on a full run
    changed = [group("g1", "Team", "ann", "bob", "ghost", "leaver"),
               user("leaver", "Leaver", ou="OU=Other,DC=src,DC=test")]
    rules = pair(RULES.staging, source_ous=("OU=Staff,DC=src,DC=test",))
    plan = plan_pair(rules, changed, world.records, world.joins, full=False)
    assert plan.deferred == ["g1"]  # for bob
    assert sorted(r.reference for r in plan.out_of_scope) == ["ghost", "leaver"]


def test_member_whose_create_is_switched_off_is_deferred() -> None:
    # It is in scope: it joins (and is added) as soon as a matching target object appears.
    rules = pair(staging(AttributeMapping("cn", "source.cn"),
                         AttributeMapping("mail", "source.mail"),
                         object_types={ObjectType.USER: TypeSwitch(create=False)}))
    sources = [user("ann", "Ann", mail="ann@x.test"), group("g1", "Team", "ann")]
    plan = plan_pair(rules, sources, [], {})
    assert plan.deferred == ["g1"] and plan.out_of_scope == []
    later = plan_pair(rules, sources, [target_user("t-ann", "Ann", mail="ann@x.test")], {})
    assert _refs(later.operations)[("g1", "member")].add == ("ann",)


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
