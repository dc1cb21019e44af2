"""Diff: the operations that bring a target object to the desired state, and no more."""

from __future__ import annotations

from engine_world import CONTOSO, SRC_OU, TGT_OU, FakeTarget, group, pair, staging, user

from ferry.engine.diff import diff_object
from ferry.engine.expressions import compile_template
from ferry.engine.pipeline import plan_pair, plan_summary
from ferry.engine.plan import OpKind
from ferry.engine.records import ObjectType, Record
from ferry.engine.rules import ApplyWhen, AttributeMapping, OuMapping, PairRules, TypeSwitch
from ferry.engine.stage import stage

M = AttributeMapping


def _world() -> list[Record]:
    return [
        user("s1", "Ann Lee", mail="ann@contoso.com", givenName="Ann", sn="Lee",
             proxyAddresses=("SMTP:ann@contoso.com", "smtp:al@contoso.com")),
        user("s2", "Bob Ray", mail="bob@contoso.com", givenName="Bob", sn="Ray", manager="s1",
             enabled=False),
        group("g1", "Sales", "s1", "s2", "g2"),
        group("g2", "Sales EMEA", "s2"),
    ]


def _rules() -> PairRules:
    return pair(staging(
        M("cn", "source.cn"),
        M("mail", "source.mail"),
        M("displayName", "source.givenName + ' ' + source.sn"),
        M("proxyAddresses", "source.proxyAddresses"),
        domain_mappings=CONTOSO,
    ))


def _synced() -> FakeTarget:
    world = FakeTarget()
    world.apply(plan_pair(_rules(), _world(), [], {}))
    return world


def test_first_run_creates_everything_with_values_and_enabled() -> None:
    plan = plan_pair(_rules(), _world(), [], {})
    creates = {op.source_anchor: op for op in plan.operations if op.kind is OpKind.CREATE}
    assert set(creates) == {"s1", "s2", "g1", "g2"}
    assert creates["s1"].changes == {
        "cn": "Ann Lee", "mail": "ann@fabrikam.com", "displayName": "Ann Lee",
        "proxyAddresses": ("SMTP:ann@fabrikam.com", "smtp:al@fabrikam.com"),
    }
    assert creates["s2"].enabled is False
    assert creates["s1"].dn == f"CN=Ann Lee,{TGT_OU}"


def test_second_run_of_an_identical_world_plans_nothing() -> None:
    world = _synced()
    plan = plan_pair(_rules(), _world(), world.records, world.joins)
    assert plan.operations == []
    assert plan.conflicts == [] and plan.errors == [] and plan.deferred == []
    assert plan.unchanged == {ObjectType.USER: 2, ObjectType.GROUP: 2}
    assert plan_summary(plan)[ObjectType.USER]["unchanged"] == 2


def test_one_changed_attribute_is_one_update_with_one_change() -> None:
    world = _synced()
    sources = _world()
    sources[1].attributes["sn"] = "Raymond"
    plan = plan_pair(_rules(), sources, world.records, world.joins)
    [op] = plan.operations
    assert op.kind is OpKind.UPDATE and op.source_anchor == "s2"
    assert op.changes == {"displayName": "Bob Raymond"}
    assert op.enabled is None
    assert op.target_anchor == world.joins["s2"]


def test_value_order_and_single_value_tuples_are_not_changes() -> None:
    world = _synced()
    ann = world.objects[world.joins["s1"]]
    ann.attributes["proxyAddresses"] = ("smtp:al@fabrikam.com", "SMTP:ann@fabrikam.com")
    ann.attributes["mail"] = ("ann@fabrikam.com",)
    assert plan_pair(_rules(), _world(), world.records, world.joins).operations == []


def test_values_compare_case_sensitively() -> None:
    world = _synced()
    world.objects[world.joins["s1"]].attributes["displayName"] = "ann lee"
    [op] = plan_pair(_rules(), _world(), world.records, world.joins).operations
    assert op.changes == {"displayName": "Ann Lee"}


def test_no_value_clears_only_a_target_that_has_one() -> None:
    world = _synced()
    sources = _world()
    del sources[0].attributes["proxyAddresses"]
    [op] = plan_pair(_rules(), sources, world.records, world.joins).operations
    assert op.changes == {"proxyAddresses": None}
    world.apply(plan_pair(_rules(), sources, world.records, world.joins))
    assert plan_pair(_rules(), sources, world.records, world.joins).operations == []


def test_enabled_change_is_an_update() -> None:
    world = _synced()
    sources = _world()
    sources[1].enabled = True
    [op] = plan_pair(_rules(), sources, world.records, world.joins).operations
    assert (op.kind, op.changes, op.enabled) == (OpKind.UPDATE, {}, True)


def test_on_create_and_when_empty_mappings() -> None:
    rules = pair(staging(
        M("cn", "source.cn"),
        M("description", "'created by Ferry'", apply=ApplyWhen.ON_CREATE),
        M("department", "source.department", apply=ApplyWhen.WHEN_EMPTY),
        M("title", "source.title"),
    ))
    source = user("s1", "Ann", department="Sales", title="Rep")
    world = FakeTarget()
    first = plan_pair(rules, [source], [], {})
    assert first.operations[0].changes == {"cn": "Ann", "description": "created by Ferry",
                                           "department": "Sales", "title": "Rep"}
    world.apply(first)
    target = world.objects[world.joins["s1"]]
    target.attributes["description"] = "edited by hand"
    source.attributes.update(department="Marketing", title="Lead")
    [op] = plan_pair(rules, [source], world.records, world.joins).operations
    assert op.changes == {"title": "Lead"}  # description is OnCreate, department not empty

    del target.attributes["department"]
    [op] = plan_pair(rules, [source], world.records, world.joins).operations
    assert op.changes == {"department": "Marketing", "title": "Lead"}


def test_rename_is_a_move_not_an_update_of_cn() -> None:
    world = _synced()
    sources = _world()
    sources[0].attributes["cn"] = "Ann Smith, Jr."
    sources[0].dn = f"CN=Ann Smith\\, Jr.,{SRC_OU}"
    plan = plan_pair(_rules(), sources, world.records, world.joins)
    [move] = plan.operations
    assert move.kind is OpKind.MOVE
    assert move.dn == f"CN=Ann Lee,{TGT_OU}"
    assert move.new_dn == f"CN=Ann Smith\\, Jr.,{TGT_OU}"


def test_moving_the_source_to_a_mapped_ou_moves_the_target() -> None:
    rules = pair(staging(M("cn", "source.cn"), ou_mappings=(
        OuMapping("OU=Sales,DC=src,DC=test", "OU=Sales,DC=tgt,DC=test"),)))
    source = user("s1", "Ann")
    world = FakeTarget()
    world.apply(plan_pair(rules, [source], [], {}))
    source.dn = "CN=Ann,OU=Sales,DC=src,DC=test"
    [move] = plan_pair(rules, [source], world.records, world.joins).operations
    assert (move.kind, move.new_dn) == (OpKind.MOVE, "CN=Ann,OU=Sales,DC=tgt,DC=test")


def test_dn_spelling_differences_are_not_moves() -> None:
    rules = pair(staging(M("cn", "source.cn")))
    source = user("s1", "Smith, John")
    source.dn = f"CN=Smith\\, John,{SRC_OU}"
    world = FakeTarget()
    world.apply(plan_pair(rules, [source], [], {}))
    target = world.objects[world.joins["s1"]]
    target.dn = "cn=Smith\\2C John, ou=MIGRATED,dc=tgt,dc=test"
    assert plan_pair(rules, [source], world.records, world.joins).operations == []


def test_type_switches_stop_creates_and_updates_per_type() -> None:
    no_group_create = pair(staging(M("cn", "source.cn"), M("title", "source.title"),
                                   object_types={ObjectType.GROUP: TypeSwitch(create=False)}))
    plan = plan_pair(no_group_create, [user("s1", "Ann"), group("g1", "G")], [], {})
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.CREATE, "s1")]

    no_user_update = pair(staging(M("cn", "source.cn"), M("title", "source.title"),
                                  object_types={ObjectType.USER: TypeSwitch(update=False)}))
    world = FakeTarget()
    world.apply(plan_pair(no_user_update, [user("s1", "Ann", title="Rep")], [], {}))
    changed = user("s1", "Ann", title="Lead", ou="OU=Elsewhere,DC=src,DC=test")
    assert plan_pair(no_user_update, [changed], world.records, world.joins).operations == []


def test_diff_object_compares_records_directly() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"), M("proxyAddresses", "source.proxyAddresses"),
        M("title", "source.title"), M("info", "'x'", apply=ApplyWhen.ON_CREATE),
        M("department", "source.department", apply=ApplyWhen.WHEN_EMPTY)))
    desired = stage(user("s1", "Ann", proxyAddresses=("a", "b"), title="Rep",
                         department="Sales"), template, "t1")
    current = Record("t1", ObjectType.USER, desired.dn,
                     {"cn": "Ann", "proxyAddresses": ("b", "a"), "title": "Rep",
                      "department": "Ops"}, enabled=True)
    assert diff_object(desired, current, template, pair="p", source_anchor="s1") == []

    current.attributes["title"] = "Lead"
    current.attributes["department"] = ""
    [op] = diff_object(desired, current, template, pair="p", source_anchor="s1")
    assert op.changes == {"title": "Rep", "department": "Sales"}
