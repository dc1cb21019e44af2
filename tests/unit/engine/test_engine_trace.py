"""engine/trace.py: one source object's scope, join, rules, staging, diff and operation."""

from __future__ import annotations

from engine_world import SRC_OU, pair, staging, target_user, user

from ferry.engine.expressions import compile_template
from ferry.engine.plan import OpKind
from ferry.engine.rules import AttributeMapping, DomainMapping, MatchRule
from ferry.engine.trace import KeyKind, key_kinds, trace_pair

RULES = pair(staging(AttributeMapping("cn", "source.cn", origin="built-in mapping"),
                     AttributeMapping("mail", "source.mail", origin="Template/t: m[0]"),
                     domain_mappings=(DomainMapping("src.test", "tgt.test"),)),
             MatchRule("mail", "mail"), MatchRule("employeeID", "employeeID"),
             source_ous=(SRC_OU,))
TEMPLATE = compile_template(RULES.staging)


def test_key_kinds() -> None:
    assert key_kinds("CN=Ann,OU=Staff,DC=src,DC=test") == (KeyKind.DN,)
    assert key_kinds("{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}") == (KeyKind.GUID,)
    assert key_kinds("ann@src.test") == (KeyKind.UPN, KeyKind.MAIL)
    assert key_kinds("ann") == (KeyKind.ACCOUNT,)


def test_unmatched_user_is_created_with_provenance() -> None:
    source = user("s1", "Ann", mail="ann@src.test", employeeID="7")
    trace = trace_pair(RULES, TEMPLATE, source, [], {})
    assert trace.scope_reason is None and trace.join == ""
    assert [s.note for s in trace.rules] == ["no candidate: the next rule decides"] * 2
    mail = next(s for s in trace.staged if s.name == "mail")
    assert mail.value == "ann@tgt.test" and mail.domain_mapped_from == "ann@src.test"
    assert mail.produced_by.startswith("Template/t: m[0]: source.mail")
    assert [op.kind for op in trace.operations] == [OpKind.CREATE]
    assert trace.decision == "create"


def test_joined_user_shows_the_diff() -> None:
    source = user("s1", "Ann", mail="ann@src.test")
    target = target_user("t1", "Ann", mail="old@tgt.test")
    trace = trace_pair(RULES, TEMPLATE, source, [target], {"s1": "t1"})
    assert trace.join.startswith("joined to CN=Ann")
    assert trace.rules == []   # a joined object is not matched again
    assert [(d.name, d.current, d.staged) for d in trace.diff] == [
        ("mail", "old@tgt.test", "ann@tgt.test")]
    assert trace.decision == "update"


def test_out_of_scope_says_why() -> None:
    source = user("s1", "Ann", ou="OU=Elsewhere,DC=src,DC=test", mail="ann@src.test")
    trace = trace_pair(RULES, TEMPLATE, source, [], {})
    assert trace.scope_reason == "no longer below one of the source OUs"
    assert trace.operations == [] and trace.decision == "out of scope: nothing to do"


def test_ambiguous_match_lists_candidates_and_writes_nothing() -> None:
    source = user("s1", "Ann", mail="ann@src.test", employeeID="7")
    targets = [target_user("t1", "Ann1", employeeID="7"),
               target_user("t2", "Ann2", employeeID="7")]
    trace = trace_pair(RULES, TEMPLATE, source, targets, {})
    step = trace.rules[1]
    assert step.note == "2 candidates: ambiguous, nothing is written"
    assert {c.anchor for c in step.candidates} == {"t1", "t2"}
    assert trace.operations == [] and len(trace.conflicts) == 1
    assert trace.decision == "conflict: nothing is written"


def test_match_by_the_first_rule_with_one_candidate_joins_and_updates() -> None:
    source = user("s1", "Ann", mail="ann@src.test", employeeID="7")
    targets = [target_user("t1", "Ann", employeeID="7", mail="x@tgt.test")]
    trace = trace_pair(RULES, TEMPLATE, source, targets, {})
    assert trace.rules[1].note == "one candidate: this rule decides"
    assert trace.plan is not None and trace.plan.new_joins == {"s1": "t1"}
    assert trace.decision == "update"


def test_a_rule_value_another_source_shares_is_a_conflict() -> None:
    source = user("s1", "Ann", mail="same@src.test")
    peer = user("s2", "Anne", mail="SAME@src.test")
    trace = trace_pair(RULES, TEMPLATE, source, [], {}, peers=[peer])
    assert [c.candidates for c in trace.conflicts] == [(peer.dn,)]
    assert trace.operations == [] and trace.plan is not None and not trace.plan.new_joins
