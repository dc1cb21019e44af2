"""OData query options as Graph reads them for directory objects: $select, $top, $filter,
$orderby, $skiptoken, and server-side page cursors.

$filter supports what a directory sync sends: `eq`, `ne`, `ge`, `le`, `gt`, `lt`, `in (...)`,
`startswith(prop,'x')`, `endswith(prop,'x')`, `not`, `and`, `or`, parentheses, nested
properties (`onPremisesExtensionAttributes/extensionAttribute1`) and lambdas on collections
(`proxyAddresses/any(p:p eq 'smtp:a@b.com')`, `any(p:startswith(p,'x'))`). Strings compare
without regard to case, as Entra ID does.
"""

from __future__ import annotations

import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import GraphError, bad_request
from .model import Record, Resource

DEFAULT_PAGE = 100
MAX_PAGE = 999

Predicate = Callable[[Record], bool]


@dataclass(frozen=True)
class Query:
    select: list[str] | None
    top: int
    filter: Predicate | None
    orderby: tuple[str, bool] | None  # (property, descending)
    skiptoken: str | None
    count: bool


def parse_query(params: Mapping[str, str], resource: Resource, *, default_top: int = DEFAULT_PAGE
                ) -> Query:
    if "$skip" in params:
        raise bad_request("'$skip' is not supported by the service.")
    select = split_select(params.get("$select"))
    resource.check_select(select)
    top = parse_top(params.get("$top"), default_top)
    text = params.get("$filter")
    predicate = parse_filter(text, resource) if text else None
    orderby = None
    if params.get("$orderby"):
        parts = params["$orderby"].split()
        if len(parts) > 2 or parts[0] not in resource.properties or (
                len(parts) == 2 and parts[1].lower() not in ("asc", "desc")):
            raise GraphError(400, "Request_UnsupportedQuery", "Unsupported Query.")
        orderby = (parts[0], len(parts) == 2 and parts[1].lower() == "desc")
    count = params.get("$count", "").lower() == "true"
    return Query(select, top, predicate, orderby, params.get("$skiptoken"), count)


def split_select(value: str | None) -> list[str] | None:
    if not value:
        return None
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_top(value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        top = int(value)
    except ValueError:
        raise bad_request(f"Invalid page size specified: '{value}'. Must be between 1 and "
                          f"{MAX_PAGE} inclusive.") from None
    if not 1 <= top <= MAX_PAGE:
        raise bad_request(f"Invalid page size specified: '{value}'. Must be between 1 and "
                          f"{MAX_PAGE} inclusive.")
    return top


def sort_key(prop: str) -> Callable[[Record], tuple[int, Any]]:
    def key(record: Record) -> tuple[int, Any]:
        value = record.get(prop)
        if value is None:
            return (1, "")
        return (0, value.lower() if isinstance(value, str) else value)
    return key


# ---- $filter ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<punct>[(),:])|(?P<number>-?\d+(?:\.\d+)?(?![\w-]))"
    r"|(?P<word>[A-Za-z_$][\w./-]*))"
)
_COMPARISONS = {"eq", "ne", "gt", "ge", "lt", "le"}
_FUNCTIONS = {"startswith", "endswith"}


@dataclass
class _Tokens:
    text: str
    items: list[tuple[str, Any, int]] = field(default_factory=list)
    pos: int = 0

    def peek(self) -> tuple[str, Any, int] | None:
        return self.items[self.pos] if self.pos < len(self.items) else None

    def next(self) -> tuple[str, Any, int]:
        token = self.peek()
        if token is None:
            raise _syntax(self.text, len(self.text))
        self.pos += 1
        return token

    def expect(self, kind: str, value: Any = None) -> tuple[str, Any, int]:
        token = self.next()
        if token[0] != kind or (value is not None and token[1] != value):
            raise _syntax(self.text, token[2])
        return token

    def accept_word(self, word: str) -> bool:
        token = self.peek()
        if token and token[0] == "word" and token[1].lower() == word:
            self.pos += 1
            return True
        return False


def _syntax(text: str, position: int) -> GraphError:
    return GraphError(
        400, "BadRequest", f"Invalid filter clause: Syntax error at position {position} in "
        f"'{text}'."
    )


def _tokenize(text: str) -> _Tokens:
    tokens = _Tokens(text)
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match:
            raise _syntax(text, pos)
        kind = match.lastgroup or ""
        raw = match.group(kind)
        start = match.start(kind)
        value: Any = raw
        if kind == "string":
            value = raw[1:-1].replace("''", "'")
        elif kind == "number":
            value = float(raw) if "." in raw else int(raw)
        tokens.items.append((kind, value, start))
        pos = match.end()
    return tokens


def parse_filter(text: str, resource: Resource) -> Predicate:
    tokens = _tokenize(text)
    predicate = _or(tokens, resource, {})
    if tokens.peek() is not None:
        raise _syntax(text, tokens.next()[2])
    return predicate


def _or(tokens: _Tokens, resource: Resource, scope: dict[str, None]) -> Predicate:
    left = _and(tokens, resource, scope)
    while tokens.accept_word("or"):
        right = _and(tokens, resource, scope)
        left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
    return left


def _and(tokens: _Tokens, resource: Resource, scope: dict[str, None]) -> Predicate:
    left = _unary(tokens, resource, scope)
    while tokens.accept_word("and"):
        right = _unary(tokens, resource, scope)
        left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
    return left


def _unary(tokens: _Tokens, resource: Resource, scope: dict[str, None]) -> Predicate:
    if tokens.accept_word("not"):
        inner = _unary(tokens, resource, scope)
        return lambda r: not inner(r)
    token = tokens.peek()
    if token and token[0] == "punct" and token[1] == "(":
        tokens.next()
        inner = _or(tokens, resource, scope)
        tokens.expect("punct", ")")
        return inner
    return _primary(tokens, resource, scope)


def _primary(tokens: _Tokens, resource: Resource, scope: dict[str, None]) -> Predicate:
    word = tokens.expect("word")[1]
    if word.lower() in _FUNCTIONS:
        tokens.expect("punct", "(")
        getter = _getter(tokens.expect("word")[1], resource, scope)
        tokens.expect("punct", ",")
        literal = tokens.expect("string")[1].lower()
        tokens.expect("punct", ")")
        if word.lower() == "startswith":
            return lambda r: _str(getter(r)).startswith(literal)
        return lambda r: _str(getter(r)).endswith(literal)
    if word.endswith("/any"):
        return _lambda(tokens, word[: -len("/any")], resource, scope)
    getter = _getter(word, resource, scope)
    if tokens.accept_word("in"):
        tokens.expect("punct", "(")
        values = [_fold(tokens.next()[1])]
        while tokens.peek() and tokens.peek()[1] == ",":  # type: ignore[index]
            tokens.next()
            values.append(_fold(tokens.next()[1]))
        tokens.expect("punct", ")")
        allowed = set(values)
        return lambda r: _fold(getter(r)) in allowed
    op_token = tokens.expect("word")
    op = op_token[1].lower()
    if op not in _COMPARISONS:
        raise _syntax(tokens.text, op_token[2])
    literal = _literal(tokens.next())
    return _compare(getter, op, literal)


def _lambda(tokens: _Tokens, collection: str, resource: Resource, scope: dict[str, None]
            ) -> Predicate:
    items = _getter(collection, resource, scope)
    tokens.expect("punct", "(")
    var = tokens.expect("word")[1]
    tokens.expect("punct", ":")
    inner = _or(tokens, resource, {**scope, var: None})
    tokens.expect("punct", ")")
    # The variable is bound through a one-key record, so the inner predicate reads it as a
    # property of that record.
    return lambda r: any(inner({var: item}) for item in (items(r) or ()))


def _getter(path: str, resource: Resource, scope: dict[str, None]) -> Callable[[Record], Any]:
    parts = path.split("/")
    if parts[0] in scope:
        name = parts[0]
        return lambda r: r.get(name)
    if parts[0] not in resource.properties and not parts[0].startswith("extension_"):
        raise GraphError(
            400, "Request_UnsupportedQuery",
            f"Unsupported or invalid query filter clause specified for property '{parts[0]}' "
            f"of resource '{resource.name}'.",
        )

    def get(record: Record) -> Any:
        value: Any = record
        for part in parts:
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        return value
    return get


def _literal(token: tuple[str, Any, int]) -> Any:
    kind, value, _ = token
    if kind == "word":
        lowered = value.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered == "null":
            return None
    return value


def _fold(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _str(value: Any) -> str:
    return value.lower() if isinstance(value, str) else ""


def _compare(getter: Callable[[Record], Any], op: str, literal: Any) -> Predicate:
    folded = _fold(literal)
    if op == "eq":
        return lambda r: _fold(getter(r)) == folded
    if op == "ne":
        return lambda r: _fold(getter(r)) != folded

    def ordered(record: Record) -> bool:
        value = _fold(getter(record))
        if value is None or folded is None:
            return False
        try:
            return {"gt": value > folded, "ge": value >= folded,
                    "lt": value < folded, "le": value <= folded}[op]
        except TypeError:
            return False
    return ordered


# ---- paging ---------------------------------------------------------------------------------


class Cursors:
    """Server-side page cursors behind opaque $skiptoken values: the first page fixes the list
    of ids (so concurrent writes don't shift pages), later pages slice it."""

    def __init__(self, limit: int = 512) -> None:
        self._cursors: OrderedDict[str, tuple[Sequence[Any], int]] = OrderedDict()
        self._limit = limit

    def page(self, items: Sequence[Any] | None, token: str | None, top: int
             ) -> tuple[Sequence[Any], str | None]:
        """One page: from `items` when token is None, else from the cursor `token` names."""
        if token is not None:
            found = self._cursors.pop(token, None)
            if found is None:
                raise GraphError(
                    400, "Directory_ExpiredPageToken",
                    "The specified page token value has expired and can no longer be included "
                    "in your request.",
                )
            items, start = found
        else:
            start = 0
        assert items is not None
        end = start + top
        if end >= len(items):
            return items[start:], None
        new_token = secrets.token_urlsafe(24)
        self._cursors[new_token] = (items, end)
        while len(self._cursors) > self._limit:
            self._cursors.popitem(last=False)
        return items[start:end], new_token
