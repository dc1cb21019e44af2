"""A bound on what one CEL expression can cost, found without running it.

The CEL library has no cost limit and no way to stop an evaluation, and its comprehensions
copy what they build (a `map` over n values costs about n * n steps). So Ferry parses each
expression itself and estimates, from the sizes of the values it reads, an upper bound on the
steps an evaluation takes: at compile time with no values (an expression that costs too much
for any object is refused), and before each evaluation with the object's values (one over the
budget is an error for that object; the run goes on).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry.engine.cel_syntax import Node, children, comprehension_depth, is_comprehension, parse

__all__ = ["EVALUATION_BUDGET", "MAX_COMPREHENSION_DEPTH", "MAX_EXPRESSION_LENGTH", "NOTHING",
           "Node", "Size", "comprehension_depth", "estimate", "may_be_costly", "parse",
           "size_of"]

MAX_EXPRESSION_LENGTH = 2048
MAX_COMPREHENSION_DEPTH = 2
# Estimated steps of one evaluation; one step is 70 to 700 ns of the CEL library's time
# (measured: flat maps cost least per step, nested ones most), so at most about a second.
EVALUATION_BUDGET = 2_000_000
_CAP = 10**15  # estimates stop growing here: beyond any budget, and cheap to add up

# Functions whose result is a bool or a number, whatever their arguments are.
_SCALAR = frozenset({
    "size", "int", "uint", "double", "bool", "type", "duration", "timestamp", "matches",
    "startsWith", "endsWith", "contains", "indexOf", "lastIndexOf", "has", "sum", "min",
    "max", "getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek",
    "getDayOfYear", "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    "sets.contains", "sets.equivalent", "sets.intersects",
})


@dataclass(frozen=True, slots=True)
class Size:
    """What bounds a value: its length (elements or characters), the weight of its largest
    element, and its total weight (characters and elements, all levels)."""

    length: int
    element: int
    weight: int


NOTHING = Size(0, 0, 0)
_ONE = Size(1, 1, 1)


def size_of(value: Any) -> Size:
    """The Size of an attribute value (a string, or a tuple or list of strings)."""
    if value is None:
        return NOTHING
    if isinstance(value, str | bytes):
        return Size(len(value), 1, len(value))
    if isinstance(value, tuple | list):
        weights = [len(v) + 1 if isinstance(v, str | bytes) else 1 for v in value]
        return Size(len(value), max(weights, default=0), sum(weights))
    return _ONE


# Functions whose result can be much larger than their arguments, or that compare them pairwise.
_MULTIPLYING = frozenset({"replace", "join", "split", "flatten", "lists.range",
                          "sets.contains", "sets.equivalent", "sets.intersects", "sort",
                          "distinct"})


def may_be_costly(node: Node) -> bool:
    """False when the cost is linear in the expression and the values it reads."""
    if is_comprehension(node) or (node[0] == "call" and node[1] in _MULTIPLYING):
        return True
    return any(may_be_costly(child) for child in children(node))


Sizes = Callable[[str], Size]  # attribute name -> its Size for one object


def estimate(node: Node, attributes: Sizes, variables: Mapping[str, Size]) -> int:
    """An upper bound on the steps evaluating node takes, converting the result included."""
    cost, size = _estimate(node, attributes, dict(variables))
    return min(cost + size.weight, _CAP)


def _add(*values: int) -> int:
    return min(sum(values), _CAP)


def _mul(a: int, b: int) -> int:
    return min(a * b, _CAP)


def _part(size: Size) -> Size:
    """What one element (or field) of a value can be."""
    return Size(size.element, size.element, size.element)


def _estimate(node: Node, attributes: Sizes, env: dict[str, Size]) -> tuple[int, Size]:
    kind = node[0]
    if kind == "lit":
        return 1, Size(node[1], 1, node[1])
    if kind == "ident":
        name = node[1]
        if name in env:
            return 1, env[name]
        return 1, attributes("") if name == "source" else _ONE
    if node[1] == ("ident", "source") and "source" not in env and (
            kind == "select" or (kind == "index" and node[2][0] == "lit")):
        field = node[2] if kind == "select" else node[2][2]
        return 1, attributes(field) if isinstance(field, str) and field else _ONE
    if kind == "select":
        cost, size = _estimate(node[1], attributes, env)
        return cost + 1, Size(size.weight, size.element, size.weight)
    if kind == "index":
        cost_a, size_a = _estimate(node[1], attributes, env)
        cost_i, _ = _estimate(node[2], attributes, env)
        return _add(cost_a, cost_i, 1), _part(size_a)
    if kind == "unary":
        cost, size = _estimate(node[2], attributes, env)
        return cost + 1, size if node[1] == "-" else _ONE
    if kind == "binary":
        cost_l, left = _estimate(node[2], attributes, env)
        cost_r, right = _estimate(node[3], attributes, env)
        op = node[1]
        if op in ("&&", "||", "*", "/", "%", "-"):
            return _add(cost_l, cost_r, 1), _ONE
        work = _add(cost_l, cost_r, left.weight, right.weight)
        if op == "+":
            return work, Size(_add(left.length, right.length), max(left.element, right.element),
                              _add(left.weight, right.weight))
        return work, _ONE
    if kind == "cond":
        cost_c, _ = _estimate(node[1], attributes, env)
        cost_t, then = _estimate(node[2], attributes, env)
        cost_f, other = _estimate(node[3], attributes, env)
        return _add(cost_c, max(cost_t, cost_f)), Size(
            max(then.length, other.length), max(then.element, other.element),
            max(then.weight, other.weight))
    if kind == "list":
        parts = [_estimate(item, attributes, env) for item in node[1]]
        weight = _add(*(s.weight for _, s in parts))
        return (_add(*(c for c, _ in parts), len(parts), weight),
                Size(len(parts), max((s.weight for _, s in parts), default=0),
                     _add(weight, len(parts))))
    if kind == "map":
        entries = [(_estimate(k, attributes, env), _estimate(v, attributes, env))
                   for k, v in node[1]]
        weights = [_add(ks.weight, vs.weight) for (_, ks), (_, vs) in entries]
        weight = _add(*weights)
        return (_add(*(kc + vc for (kc, _), (vc, _) in entries), len(entries), weight),
                Size(len(entries), max(weights, default=0), _add(weight, len(entries))))
    if is_comprehension(node):
        return _comprehension(node, attributes, env)
    return _function(node, attributes, env)


def _comprehension(node: Node, attributes: Sizes, env: dict[str, Size]) -> tuple[int, Size]:
    name, target, args = node[1], node[2], node[3]
    cost_r, over = _estimate(target, attributes, env)
    count = over.length
    inner = {**env, args[0][1]: _part(over)}
    bodies = [_estimate(arg, attributes, inner) for arg in args[1:]]
    each = _add(*(c for c, _ in bodies), 1)
    cost = _add(cost_r, _mul(count, each))
    if name == "map":
        result = bodies[-1][1]
        weight = _mul(count, result.weight + 1)
        # Each step copies what was built so far: about count * count steps in all.
        return (_add(cost, _mul(count, count), weight),
                Size(count, result.weight, weight))
    if name == "filter":
        return _add(cost, _mul(count, count), over.weight), over
    return cost, _ONE


def _function(node: Node, attributes: Sizes, env: dict[str, Size]) -> tuple[int, Size]:
    name, target, args = node[1], node[2], node[3]
    parts = [_estimate(arg, attributes, env)
             for arg in ([target] if target is not None else []) + list(args)]
    sizes = [s for _, s in parts]
    work = _add(*(c for c, _ in parts), *(s.weight for s in sizes), 1)
    total = _add(*(s.weight for s in sizes))
    if name in _SCALAR or name.startswith("math."):
        return work, _ONE
    if name == "lists.range":
        literal = args[0][2] if args and args[0][0] == "lit" else None
        count = _CAP if literal is None else literal
        return _add(work, count), Size(count, 1, _add(count, count))
    if name == "replace" and len(sizes) >= 3:
        weight = _mul(sizes[0].weight + 1, sizes[2].weight + 1)
        return _add(work, weight), Size(weight, 1, weight)
    if name == "join" and sizes:
        separator = sizes[1].weight if len(sizes) > 1 else 0
        weight = _add(sizes[0].weight, _mul(sizes[0].length, separator))
        return _add(work, weight), Size(weight, 1, weight)
    if name == "split" and sizes:
        text = sizes[0].weight
        return _add(work, text), Size(text + 1, text + 1, _add(text, text, 1))
    if name in ("sort", "distinct") and sizes:
        return _add(work, _mul(sizes[0].length, sizes[0].weight)), sizes[0]
    if name == "flatten" and sizes:
        return work, Size(sizes[0].weight, sizes[0].element, sizes[0].weight)
    # Anything else (string functions, conversions, dyn, slices): linear, no larger than
    # its arguments together.
    return work, Size(total, max((s.element for s in sizes), default=0), total)
