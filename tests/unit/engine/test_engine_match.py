"""Matching: which target object a source object is joined to, and when nothing is written."""

from __future__ import annotations

from engine_world import CONTOSO, FakeTarget, pair, staging, target_user, user

from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import OpKind
from ferry.engine.rules import AttributeMapping, MatchRule

MAIL = MatchRule("mail", "mail")
EMPLOYEE = MatchRule("employeeID", "employeeID")


def test_first_rule_with_a_hit_decides() -> None:
    source = user("s1", "Ann", mail="ann@src.test", employeeID="42")
    by_mail = target_user("t-mail", "Ann M", mail="ann@src.test")
    by_id = target_user("t-id", "Ann E", employeeID="42")

    mail_first = plan_pair(pair(None, MAIL, EMPLOYEE), [source], [by_mail, by_id], {})
    id_first = plan_pair(pair(None, EMPLOYEE, MAIL), [source], [by_mail, by_id], {})

    assert mail_first.new_joins == {"s1": "t-mail"}
    assert id_first.new_joins == {"s1": "t-id"}


def test_empty_value_falls_through_to_next_rule() -> None:
    source = user("s1", "Ann", employeeID="42")  # no mail at all
    plan = plan_pair(pair(None, MAIL, EMPLOYEE), [source],
                     [target_user("t1", "Ann", employeeID="42")], {})
    assert plan.new_joins == {"s1": "t1"}


def test_matching_ignores_case() -> None:
    plan = plan_pair(pair(), [user("s1", "Ann", mail="Ann.Lee@SRC.test")],
                     [target_user("t1", "Ann", mail="ann.lee@src.TEST")], {})
    assert plan.new_joins == {"s1": "t1"}
    assert plan.count(OpKind.CREATE) == 0


def test_multi_valued_attributes_match_on_any_value() -> None:
    rules = pair(None, MatchRule("proxyAddresses", "proxyAddresses"))
    source = user("s1", "Ann", proxyAddresses=("SMTP:ann@src.test", "smtp:al@src.test"))
    target = target_user("t1", "Ann", proxyAddresses=("smtp:other@tgt.test", "SMTP:AL@src.test"))
    assert plan_pair(rules, [source], [target], {}).new_joins == {"s1": "t1"}


def test_no_match_creates() -> None:
    plan = plan_pair(pair(), [user("s1", "Ann", mail="ann@src.test")],
                     [target_user("t1", "Bob", mail="bob@src.test")], {})
    assert [op.kind for op in plan.operations] == [OpKind.CREATE]
    assert plan.new_joins == {}


def test_existing_join_wins_over_rules() -> None:
    source = user("s1", "Ann", mail="ann@src.test")
    joined = target_user("t-joined", "Ann", mail="old@src.test")
    same_mail = target_user("t-other", "Ann Other", mail="ann@src.test")
    plan = plan_pair(pair(), [source], [joined, same_mail], {"s1": "t-joined"})
    assert plan.new_joins == {}
    assert plan.conflicts == []
    [update] = [op for op in plan.operations if op.kind is OpKind.UPDATE]
    assert update.target_anchor == "t-joined"


def test_two_sources_sharing_a_mail_write_nothing_for_either() -> None:
    ann = user("s1", "Ann", ou="OU=Sales,DC=src,DC=test", mail="team@src.test")
    bob = user("s2", "Bob", ou="OU=Ops,DC=src,DC=test", mail="TEAM@src.test")
    carl = user("s3", "Carl", mail="carl@src.test")
    for targets in ([], [target_user("t1", "Team", mail="team@src.test")]):
        plan = plan_pair(pair(), [ann, bob, carl], targets, {})

        assert {op.source_anchor for op in plan.operations} == {"s3"}
        assert plan.new_joins == {}
        assert sorted(c.source_anchor for c in plan.conflicts) == ["s1", "s2"]
        message = next(c.message for c in plan.conflicts if c.source_anchor == "s1")
        assert "mail -> mail" in message and "team@src.test" in message
        assert "CN=Ann,OU=Sales" in message and "CN=Bob,OU=Ops" in message
        assert "\n" not in message


def test_two_target_candidates_are_a_conflict() -> None:
    plan = plan_pair(pair(), [user("s1", "Ann", mail="ann@src.test")],
                     [target_user("t1", "Ann A", mail="ann@src.test"),
                      target_user("t2", "Ann B", mail="ANN@src.test")], {})
    assert plan.operations == [] and plan.new_joins == {}
    [conflict] = plan.conflicts
    assert conflict.rule == "mail -> mail"
    assert set(conflict.candidates) == {"CN=Ann A,OU=Migrated,DC=tgt,DC=test",
                                        "CN=Ann B,OU=Migrated,DC=tgt,DC=test"}
    assert "CN=Ann A" in conflict.message and "CN=Ann B" in conflict.message


def test_target_joined_to_another_source_is_not_matched_again() -> None:
    newcomer = user("s2", "Ann Two", mail="ann@src.test")
    taken = target_user("t1", "Ann", mail="ann@src.test")
    plan = plan_pair(pair(), [newcomer], [taken], {"s1": "t1"}, full=False)
    assert plan.operations == [] and plan.new_joins == {}
    [conflict] = plan.conflicts
    assert conflict.source_anchor == "s2" and "already joined" in conflict.message


def test_target_claimed_by_two_sources_is_a_conflict_for_both() -> None:
    rules = pair(None, MAIL, EMPLOYEE)
    ann = user("s1", "Ann", mail="ann@src.test")
    other = user("s2", "Other", employeeID="7")
    target = target_user("t1", "Ann", mail="ann@src.test", employeeID="7")
    plan = plan_pair(rules, [ann, other], [target], {})
    assert plan.operations == [] and plan.new_joins == {}
    assert sorted(c.source_anchor for c in plan.conflicts) == ["s1", "s2"]
    assert all("CN=Ann,OU=Migrated" in c.message for c in plan.conflicts)


def test_new_source_sharing_a_joined_sources_new_mail_is_a_conflict() -> None:
    # Ann's mail changes to a value a brand-new source also has: creating the newcomer and
    # updating Ann would leave two target objects with one mail.
    ann = user("s1", "Ann", mail="shared@src.test")
    newcomer = user("s2", "Newcomer", mail="shared@src.test")
    ann_target = target_user("t1", "Ann", mail="ann@src.test")
    plan = plan_pair(pair(), [ann, newcomer], [ann_target], {"s1": "t1"})
    assert [c.source_anchor for c in plan.conflicts] == ["s2"]
    assert plan.count(OpKind.CREATE) == 0


def test_pending_create_joins_the_object_it_created_instead_of_creating_again() -> None:
    # A killed run created CN=Ann in the target but died before storing the join. Ann has no
    # mail, so no match rule could find that object again.
    source = user("s1", "Ann", givenName="Ann", sn="Lee", employeeID="42")
    world = FakeTarget()
    first = plan_pair(pair(), [source], [], {})
    [create] = first.operations
    world.apply(first)
    world.joins.clear()  # the join never reached the state store
    pending = {"s1": create.dn.upper()}

    rerun = plan_pair(pair(), [source], world.records, {}, pending_creates=pending)

    assert rerun.count(OpKind.CREATE) == 0
    assert rerun.new_joins == {"s1": next(iter(world.objects))}
    assert rerun.operations == []


def test_pending_create_that_never_reached_the_target_is_created() -> None:
    source = user("s1", "Ann", mail="ann@src.test")
    plan = plan_pair(pair(), [source], [], {},
                     pending_creates={"s1": "CN=Ann,OU=Migrated,DC=tgt,DC=test"})
    assert [op.kind for op in plan.operations] == [OpKind.CREATE]


def test_create_that_would_duplicate_a_mapped_value_on_the_target_is_a_conflict() -> None:
    # Ann is joined and in sync; her target mail is the domain-mapped one, so the mail rule
    # cannot find it from the source value. A newcomer with Ann's source mail would be created
    # with the very same target mail.
    rules = pair(staging(AttributeMapping("cn", "source.cn"),
                         AttributeMapping("mail", "source.mail"), domain_mappings=CONTOSO))
    ann = user("s1", "Ann", mail="ann@contoso.com")
    ann_target = target_user("t1", "Ann", mail="ann@fabrikam.com")
    newcomer = user("s2", "Ann Two", mail="ANN@contoso.com")
    for sources, full in (([ann, newcomer], True), ([newcomer], False)):
        plan = plan_pair(rules, sources, [ann_target], {"s1": "t1"}, full=full)
        assert plan.operations == []
        [conflict] = plan.conflicts
        assert conflict.source_anchor == "s2" and "CN=Ann,OU=Migrated" in conflict.message
