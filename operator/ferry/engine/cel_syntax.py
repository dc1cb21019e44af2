"""The shape of a CEL expression, parsed by Ferry itself: the CEL library gives no syntax tree,
and bounding what an expression costs needs one (see expression_cost)."""

from __future__ import annotations

import re
from typing import Any

from ferry.errors import InvalidInput

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_NAMESPACES = frozenset({"lists", "math", "sets", "base64", "strings"})


class SyntaxProblem(InvalidInput):
    """The expression cannot be read; the message says where."""


# Nodes are tuples: ("lit", length, text, int or None), ("ident", name), ("select", operand,
# field), ("index", operand, index), ("call", name, target or None, args), ("list", items),
# ("map", entries), ("unary", op, operand), ("binary", op, left, right), ("cond", c, t, f).
Node = tuple[Any, ...]

# The opening of a string or bytes literal: its prefix and its quotes.
STRING_OPENING = re.compile(r"""(?:[rR][bB]?|[bB][rR]?)?(?:'''|\"\"\"|'|")""")
_TOKEN = re.compile(r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>""" + STRING_OPENING.pattern + r""")
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*|`[^`]*`)
  | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
""", re.VERBOSE)


def _tokens(text: str) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    index = 0
    while index < len(text):
        match = _TOKEN.match(text, index)
        if match is None:
            raise SyntaxProblem(f"cannot read {text[index:index + 10]!r} at {index + 1}")
        kind = match.lastgroup
        if kind == "string":
            end = string_end(text, match.start(), match.group())
            if end is None:
                raise SyntaxProblem("a string is not closed")
            quote = len(match.group().lstrip("rRbB"))
            found.append(("str", text[match.end():end - quote]))
            index = end
            continue
        if kind == "number":
            literal = match.group()
            found.append(("num", int(literal.rstrip("uU"), 0)
                          if re.fullmatch(r"0[xX][0-9a-fA-F]+[uU]?|\d+[uU]?", literal) else 0))
        elif kind == "ident":
            found.append(("id", match.group()))
        elif kind == "op":
            found.append(("op", match.group()))
        index = match.end()
    found.append(("end", None))
    return found


def string_end(text: str, start: int, opening: str) -> int | None:
    """Index just past the literal that starts at `start` with `opening` (STRING_OPENING);
    None when it is not closed."""
    raw = "r" in opening.lower().rstrip("'\"")
    quote = opening.lstrip("rRbB")
    index = start + len(opening)
    while index < len(text):
        if not raw and text[index] == "\\":
            index += 2
            continue
        if text.startswith(quote, index):
            return index + len(quote)
        index += 1
    return None


class _Parser:
    """CEL's grammar, by precedence climbing; only the shape is kept, not the meaning."""

    _LEVELS = (("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"),
               ("*", "/", "%"))

    def __init__(self, text: str) -> None:
        self.tokens, self.at = _tokens(text), 0

    def parse(self) -> Node:
        node = self.expression()
        if self.peek() != ("end", None):
            raise SyntaxProblem(f"unexpected {self.peek()[1]!r}")
        return node

    def peek(self) -> tuple[str, Any]:
        return self.tokens[self.at]

    def take(self, value: str | None = None) -> tuple[str, Any]:
        token = self.tokens[self.at]
        if value is not None and token[1] != value:
            raise SyntaxProblem(f"expected {value!r}, found {token[1]!r}")
        self.at += 1
        return token

    def accept(self, value: str) -> bool:
        if self.peek()[1] == value and self.peek()[0] in ("op", "id"):
            self.at += 1
            return True
        return False

    def expression(self) -> Node:
        condition = self.binary(0)
        if self.accept("?"):
            then = self.binary(0)
            self.take(":")
            return ("cond", condition, then, self.expression())
        return condition

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek()[1] in self._LEVELS[level] and self.peek()[0] in ("op", "id"):
            op = self.take()[1]
            node = ("binary", op, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek() in (("op", "!"), ("op", "-")):
            return ("unary", self.take()[1], self.unary())
        return self.member(self.primary())

    def member(self, node: Node) -> Node:
        while True:
            if self.accept("."):
                self.accept("?")
                name = self.take()[1]
                if self.accept("("):
                    node = _call(name, node, self.arguments(")"))
                else:
                    node = ("select", node, name)
            elif self.accept("["):
                self.accept("?")
                node = ("index", node, self.expression())
                self.take("]")
            elif self.peek() == ("op", "{") and node[0] in ("ident", "select"):
                self.take("{")
                node = ("map", self.entries("}"))  # a message: its fields are its size
            else:
                return node

    def primary(self) -> Node:
        kind, value = self.take()
        if kind == "str":
            return ("lit", len(value), value)
        if kind == "num":
            return ("lit", 1, value)
        if kind == "id":
            if value in ("true", "false", "null"):
                return ("lit", 1, None)
            if self.accept("("):
                return _call(value, None, self.arguments(")"))
            return ("ident", value)
        if value == ".":  # a name from the root scope
            return self.primary()
        if value == "(":
            node = self.expression()
            self.take(")")
            return node
        if value == "[":
            return ("list", self.arguments("]"))
        if value == "{":
            return ("map", self.entries("}"))
        raise SyntaxProblem(f"unexpected {value!r}")

    def arguments(self, closing: str) -> list[Node]:
        items: list[Node] = []
        while not self.accept(closing):
            self.accept("?")
            items.append(self.expression())
            if not self.accept(","):
                self.take(closing)
                break
        return items

    def entries(self, closing: str) -> list[tuple[Node, Node]]:
        items: list[tuple[Node, Node]] = []
        while not self.accept(closing):
            self.accept("?")
            key = self.expression()
            self.take(":")
            items.append((key, self.expression()))
            if not self.accept(","):
                self.take(closing)
                break
        return items


def _call(name: str, target: Node | None, args: list[Node]) -> Node:
    if target is not None and target[0] == "ident" and target[1] in _NAMESPACES:
        return ("call", f"{target[1]}.{name}", None, args)
    return ("call", name, target, args)


def parse(expression: str) -> Node:
    """The expression's shape; raises SyntaxProblem where it cannot be read."""
    return _Parser(expression).parse()


def is_comprehension(node: Node) -> bool:
    return (node[0] == "call" and node[1] in MACROS and node[2] is not None
            and len(node[3]) in (2, 3) and node[3][0][0] == "ident")


def children(node: Node) -> list[Node]:
    kind = node[0]
    if kind in ("lit", "ident"):
        return []
    if kind == "select":
        return [node[1]]
    if kind == "index":
        return [node[1], node[2]]
    if kind == "call":
        return ([node[2]] if node[2] is not None else []) + list(node[3])
    if kind == "list":
        return list(node[1])
    if kind == "map":
        return [part for entry in node[1] for part in entry]
    if kind == "unary":
        return [node[2]]
    if kind == "binary":
        return [node[2], node[3]]
    return [node[1], node[2], node[3]]  # cond


def comprehension_depth(node: Node) -> int:
    """How deeply comprehensions (map, filter, all, exists, exists_one) nest in node."""
    if is_comprehension(node):
        inner = max(comprehension_depth(arg) for arg in node[3][1:])
        return max(1 + inner, comprehension_depth(node[2]))
    return max((comprehension_depth(child) for child in children(node)), default=0)
