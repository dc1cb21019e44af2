"""Expression errors name the template and the mapping; one object's failure stays its own."""

from __future__ import annotations

import pytest
from engine_world import pair, staging, user

from ferry.engine.expressions import ExpressionError, compile_template
from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import OpKind
from ferry.engine.rules import AttributeMapping
from ferry.engine.stage import stage

M = AttributeMapping


def test_compile_error_names_template_mapping_and_cel_message() -> None:
    with pytest.raises(ExpressionError) as caught:
        compile_template(staging(M("cn", "source.cn"), M("displayName", "source.givenName +")))
    message = str(caught.value)
    assert "'corp-users'" in message and "'displayName'" in message
    assert "Syntax error" in message
    assert "\n" not in message
    assert caught.value.template == "corp-users" and caught.value.mapping == "displayName"


def test_unknown_variable_is_caught_at_compile_time() -> None:
    with pytest.raises(ExpressionError, match=r"'title'.*unknown variable 'src'"):
        compile_template(staging(M("title", "src.title")))


def test_attribute_mapped_twice_for_one_type_is_rejected() -> None:
    with pytest.raises(ExpressionError, match="mapped more than once"):
        compile_template(staging(M("title", "source.title"), M("title", "'x'")))


def test_runtime_error_is_a_staging_error_for_that_object_only() -> None:
    rules = pair(staging(M("cn", "source.cn"), M("employeeNumber", "string(int(source.badge))")))
    good = user("s1", "Ann", badge="17")
    bad = user("s2", "Bob", badge="seventeen")
    plan = plan_pair(rules, [good, bad], [], {})

    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.CREATE, "s1")]
    assert plan.operations[0].changes["employeeNumber"] == "17"
    [error] = plan.errors
    assert error.source_anchor == "s2" and error.source_dn == bad.dn
    assert "'corp-users'" in error.message and "'employeeNumber'" in error.message


def test_wrong_result_type_is_a_staging_error() -> None:
    rules = pair(staging(M("cn", "source.cn"), M("info", "{'a': source.cn}")))
    plan = plan_pair(rules, [user("s1", "Ann")], [], {})
    [error] = plan.errors
    assert "'info'" in error.message and "map" in error.message
    assert plan.operations == []


def test_source_filter_errors_do_not_delete() -> None:
    rules = pair(staging(M("cn", "source.cn")), source_filter="int(source.badge) > 10")
    source = user("s1", "Ann", badge="x")
    plan = plan_pair(rules, [source], [], {"s1": "t1"})
    assert plan.operations == []
    [error] = plan.errors
    assert "sourceFilter" in error.message and "'src->tgt'" in error.message


def test_source_filter_compile_error_names_the_pair() -> None:
    with pytest.raises(ExpressionError, match=r"pair 'src->tgt'.*sourceFilter"):
        plan_pair(pair(staging(M("cn", "source.cn")), source_filter="source.x =="), [], [], {})


@pytest.mark.parametrize(("expression", "expected"), [
    ("source.givenName + ' ' + source.sn", None),          # sn missing: no value
    ("has(source.sn) ? source.sn : 'none'", "none"),
    ("source.givenName.upperAscii()", "ANN"),
    ("source.sn.upperAscii()", None),
    ("'source.sn is ' + source['givenName']", "source.sn is Ann"),
    ("'givenName' in source ? 'yes' : 'no'", "yes"),
    ("source.proxyAddresses.filter(p, p.startsWith('SMTP:'))", ("SMTP:ann@x.test",)),
    ("source.givenName + ':' + objectType", "Ann:user"),
    ("'Dr ' + source.givenName + \"-\" + source['givenName']", "Dr Ann-Ann"),
    ("'' + source.missing", None),
])
def test_expressions_read_source_attributes_dn_and_object_type(
        expression: str, expected: object) -> None:
    template = compile_template(staging(M("cn", "source.cn"), M("info", expression)))
    first = user("s0", "Zed", givenName="Zed", sn="Present")
    source = user("s1", "Ann", givenName="Ann", proxyAddresses=("SMTP:ann@x.test", "x500:/o"))
    # Evaluating another object first must leave nothing behind for the next one.
    stage(first, template)
    assert stage(source, template).attributes.get("info") == expected


def test_joining_a_multi_valued_attribute_into_a_string_is_a_staging_error() -> None:
    rules = pair(staging(M("cn", "source.cn"), M("info", "source.proxyAddresses + '!'")))
    plan = plan_pair(rules, [user("s1", "Ann", proxyAddresses=("SMTP:a@x.test",))], [], {})
    [error] = plan.errors
    assert "'info'" in error.message and plan.operations == []
