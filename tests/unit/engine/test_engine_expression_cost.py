"""What a CEL expression may cost is bounded: nesting and size are refused at compile time,
and an object whose values would make it too costly is an error for that object alone."""

from __future__ import annotations

import pytest
from engine_world import pair, staging, user

from ferry.engine.expression_cost import EVALUATION_BUDGET, MAX_EXPRESSION_LENGTH
from ferry.engine.expressions import ExpressionError, compile_filter, compile_template
from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import OpKind
from ferry.engine.rules import AttributeMapping

M = AttributeMapping
TEN = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"


def nested_maps(depth: int) -> str:
    """TEN.map(a1, TEN.map(a2, ... a<depth>)): ten to the depth values."""
    expression = f"string(a{depth})"
    for level in range(depth, 0, -1):
        expression = f"{TEN}.map(a{level}, {expression})"
    return expression


def _refused(expression: str) -> str:
    with pytest.raises(ExpressionError) as caught:
        compile_template(staging(M("cn", "source.cn"), M("info", expression)))
    assert caught.value.template == "corp-users" and caught.value.mapping == "info"
    return caught.value.cel_message


@pytest.mark.parametrize("depth", [6, 8])
def test_deeply_nested_comprehensions_are_refused_at_compile_time(depth: int) -> None:
    # Depth 6 took 14.7 to 19 s for one object, depth 7 and more never finished.
    assert _refused(nested_maps(depth)) == (
        f"comprehensions (map, filter, all, exists, exists_one) nest {depth} deep; at most 2:"
        " each level multiplies the cost")


def test_a_filter_is_bounded_as_a_mapping_is() -> None:
    with pytest.raises(ExpressionError, match="nest 3 deep"):
        compile_filter(f"size({nested_maps(3)}) > 0", pair="wf/src->tgt")


def test_chained_comprehensions_that_double_their_values_are_refused() -> None:
    doubling = TEN + "".join(f".map(x{i}, [x{i}, x{i}])" for i in range(14))
    message = _refused(doubling)
    assert message.startswith("costs about ") and message.endswith(
        f" steps for any object, over the budget of {EVALUATION_BUDGET:,}; build smaller"
        " values")


def test_a_string_that_grows_tenfold_with_each_replace_is_refused() -> None:
    growing = "'x'" + ".replace('x', 'xxxxxxxxxx')" * 8  # 10**8 characters
    assert "for any object" in _refused(growing)


def test_an_overlong_expression_is_refused() -> None:
    long = " + ".join(["source.cn"] * 300)
    assert _refused(long) == (f"the expression is {len(long)} characters long; at most"
                              f" {MAX_EXPRESSION_LENGTH}")


def test_an_object_too_large_for_its_expression_is_its_own_error_and_the_run_goes_on(
        ) -> None:
    pairs_of_groups = "source.memberOf.map(a, source.memberOf.map(b, a + b)).size() > 0"
    rules = pair(staging(M("cn", "source.cn"),
                         M("info", f"{pairs_of_groups} ? 'many' : 'none'")))
    small = user("s1", "Ann", memberOf=("g1", "g2", "g3"))
    # 300 values: 27 million steps, seconds in the CEL library (1000 took 149 s).
    large = user("s2", "Bob", memberOf=tuple(f"CN=g{i},OU=Groups,DC=src,DC=test"
                                             for i in range(300)))
    plan = plan_pair(rules, [small, large], [], {})
    assert [(op.kind, op.source_anchor) for op in plan.operations] == [(OpKind.CREATE, "s1")]
    assert plan.operations[0].changes["info"] == "many"
    [error] = plan.errors
    assert error.source_anchor == "s2"
    assert "template 'corp-users', mapping 'info': would cost about " in error.message
    assert f"steps for this object (its values are large), over the budget of" \
           f" {EVALUATION_BUDGET:,}" in error.message


def test_everyday_comprehensions_over_many_values_stay_within_budget() -> None:
    rules = pair(staging(
        M("cn", "source.cn"),
        M("mail", "source.proxyAddresses.filter(p, p.startsWith('SMTP:'))"
                  ".map(p, p.substring(5))[0]"),
        M("info", "source.memberOf.exists(g, g.startsWith('CN=Admins')) ? 'admin' : null"),
        M("description", "source.memberOf.map(g, g.split(',')[0]).join(';').size() > 0"
                         " ? 'member' : null")))
    proxies = ("SMTP:ann@src.test", *(f"smtp:alias{i}@src.test" for i in range(50)))
    groups = ("CN=Admins,OU=Groups,DC=src,DC=test",
              *(f"CN=group{i},OU=Groups,DC=src,DC=test" for i in range(1000)))
    plan = plan_pair(rules, [user("s1", "Ann", proxyAddresses=proxies, memberOf=groups)], [], {})
    assert plan.errors == []
    [create] = plan.operations
    assert create.changes["mail"] == "ann@src.test"
    assert create.changes["info"] == "admin" and create.changes["description"] == "member"
