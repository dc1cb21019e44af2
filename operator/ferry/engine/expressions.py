"""CEL expressions of a Template and a pair's source filter, compiled once, run per object."""

# The CEL activation is `source` (the source attributes; multi-valued ones as lists), `dn`
# (the source DN) and `objectType` ("user", "group", ...). A missing attribute makes the
# expression null (no value); any other runtime failure is an ExpressionError naming the
# template and the mapping.

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from ferry.engine import expression_cost as cost
from ferry.engine.cel_runtime import cel
from ferry.engine.cel_runtime import stdlib as cel_stdlib
from ferry.engine.cel_syntax import STRING_OPENING, SyntaxProblem, string_end
from ferry.engine.domains import DomainMapper
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.engine.rules import ApplyWhen, StagingRules, TypeSwitch
from ferry.errors import InvalidInput
from ferry_agent.dn import DNError, dn_key, parse_dn

# What a mapping evaluates to: no value, one value, or several.
StagedValue = AttributeValue | None

SOURCE, DN, OBJECT_TYPE = "source", "dn", "objectType"
_VARIABLES = frozenset({SOURCE, DN, OBJECT_TYPE})
# Attributes that follow the RDN: changing them is a rename (MOVE), never an UPDATE.
RDN_ATTRIBUTES = frozenset({"cn", "name"})

_DIRECT_DOT = re.compile(r"\s*source\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_DIRECT_INDEX = re.compile(r"""\s*source\s*\[\s*(?:'([^'\\]+)'|"([^"\\]+)")\s*\]\s*""")
# One operand of a plain string concatenation: an attribute read or a simple string literal.
_OPERAND = re.compile(
    r"""\s*(?:source\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)|source\s*\[\s*(?:'([^'\\]+)'|"([^"\\]+)")\s*\]"""
    r"""|'([^'\\\n]*)'|"([^"\\\n]*)")\s*"""
)
# Identifiers bound by comprehension macros are not free variables of the expression.
_MACRO_BINDING = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")
def _concatenation(expression: str) -> tuple[tuple[bool, str], ...] | None:
    """(is attribute, name or text) operands when the expression only joins attributes and
    literals with `+` (e.g. `source.givenName + ' ' + source.sn`); else None."""
    # Such expressions are common enough (display names, logins) to be worth a Python path.
    operands: list[tuple[bool, str]] = []
    position = 0
    while True:
        found = _OPERAND.match(expression, position)
        if found is None:
            return None
        attribute = found.group(1) or found.group(2) or found.group(3)
        if attribute is not None:
            operands.append((True, attribute))
        else:
            literal = found.group(4) if found.group(4) is not None else found.group(5)
            operands.append((False, literal))
        position = found.end()
        if position == len(expression):
            break
        if expression[position] != "+":
            return None
        position += 1
    return tuple(operands) if any(is_attr for is_attr, _ in operands) else None


_IDENT_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_IDENT_CHARS = _IDENT_START | frozenset("0123456789")


class ExpressionError(InvalidInput):
    """A CEL expression failed to compile or evaluate; names its owner, its field and why."""

    def __init__(self, template: str, mapping: str, message: str, *, owner_kind: str = "template",
                 field_kind: str = "mapping") -> None:
        self.template = template
        self.mapping = mapping
        self.cel_message = message
        super().__init__(f"{owner_kind} {template!r}, {field_kind} {mapping!r}: {message}")


def _stdlib_functions() -> dict[str, Callable[..., Any]]:
    context = cel.Context()
    cel_stdlib.add_stdlib_to_context(context)
    return context.functions


_STDLIB = _stdlib_functions()


def _one_line(message: str) -> str:
    """CEL parse errors span several lines with a caret diagram; status lines need one."""
    lines = [line.strip() for line in message.splitlines()]
    return " ".join(line for line in lines if line and not line.startswith("|"))


_SCAN_DOT = re.compile(r"source\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_SCAN_INDEX = re.compile(r"""source\s*\[\s*(?:'([^'\\]+)'|"([^"\\]+)")\s*\]""")
# Flattened `source.x` reads become these variables; the prefix keeps clear of user names.
_FLAT_PREFIX = "_ferry_s"
_UNDEFINED = "Undefined variable or function: '" + _FLAT_PREFIX


def _scan_source(expression: str) -> list[tuple[int, int, str]] | None:
    """(start, end, attribute) of every `source.x` / `source['x']` read in the expression;
    None if it uses `source` any other way (then the whole attribute map must be passed)."""
    # Converting a map into CEL costs per entry, so passing only the attributes an expression
    # reads (better: as plain variables) is most of the evaluation cost saved.
    reads: list[tuple[int, int, str]] = []
    text, length, index = expression, len(expression), 0
    previous = ""  # last significant character before the current token
    while index < length:
        char = text[index]
        if char.isspace():
            index += 1
            continue
        opening = STRING_OPENING.match(text, index) if char in "'\"rRbB" else None
        if opening:  # an unclosed string runs to the end (compiling it says what is wrong)
            index = string_end(text, index, opening.group()) or length
            previous = "'"
            continue
        if char.isdigit():
            while index < length and (text[index] in _IDENT_CHARS or text[index] == "."):
                index += 1
            previous = "0"
            continue
        if char in _IDENT_START:
            start = index
            while index < length and text[index] in _IDENT_CHARS:
                index += 1
            name = text[start:index]
            if name == SOURCE and previous != ".":
                dot = _SCAN_DOT.match(text, start)
                bracket = _SCAN_INDEX.match(text, start)
                if dot is not None and not text[dot.end() :].lstrip().startswith("("):
                    reads.append((start, dot.end(), dot.group(1)))
                    index = dot.end()
                elif bracket is not None:
                    reads.append((start, bracket.end(), bracket.group(1) or bracket.group(2)))
                    index = bracket.end()
                else:
                    return None
                previous = "a"
                continue
            previous = "a"
            continue
        previous = char
        index += 1
    return reads


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, bytes):
        return "bytes"
    if isinstance(value, datetime):
        return "a timestamp"
    if isinstance(value, timedelta):
        return "a duration"
    return type(value).__name__


def _scalar(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bool):
        return "true" if value else "false"  # as CEL's string(bool) spells it
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(
        f"returned {_type_name(value)}; expected a string, a list of strings, a bool, an int "
        "or null (convert with string())"
    )


def to_staged_value(result: Any) -> StagedValue:
    """Convert a CEL result to an attribute value; empty strings and lists mean no value."""
    if result is None:
        return None
    if type(result) is str:
        return result or None
    if isinstance(result, list | tuple):
        values = tuple(_scalar(item) for item in result if item is not None)
        values = tuple(item for item in values if item)
        return values or None
    return _scalar(result) or None


class CompiledExpression:
    """One CEL expression, ready to evaluate against source records."""

    __slots__ = ("_concat", "_flat", "_functions", "_keys", "_needs_dn", "_needs_type", "_program",
                 "_shape", "direct", "expression", "field", "field_kind", "owner", "owner_kind")

    def __init__(self, expression: str, *, owner: str, field: str, owner_kind: str = "template",
                 field_kind: str = "mapping") -> None:
        self.expression = expression
        self.owner, self.field = owner, field
        self.owner_kind, self.field_kind = owner_kind, field_kind
        whole = _DIRECT_DOT.fullmatch(expression) or _DIRECT_INDEX.fullmatch(expression)
        # Fast path: a plain attribute copy needs no CEL at all.
        self.direct: str | None = None
        if whole is not None:
            self.direct = next(group for group in whole.groups() if group)
        self._concat = None if self.direct is not None else _concatenation(expression)
        if len(expression) > cost.MAX_EXPRESSION_LENGTH:
            raise self.error(f"the expression is {len(expression)} characters long; at most"
                             f" {cost.MAX_EXPRESSION_LENGTH}")
        try:
            self._program = cel.compile(expression)
        except ValueError as error:
            raise self.error(_one_line(str(error))) from None
        variables = set(self._program.variables())
        unknown = variables - _VARIABLES - set(_MACRO_BINDING.findall(expression))
        if unknown:
            raise self.error(
                f"unknown variable {sorted(unknown)[0]!r}; use source.<attribute>, dn or objectType"
            )
        # The CEL library cannot stop an evaluation: what one may cost is bounded before.
        self._shape = self._bounded_shape()
        self._needs_dn = DN in variables
        self._needs_type = OBJECT_TYPE in variables
        # A context is only needed for the Python-implemented stdlib functions; a plain dict
        # activation is cheaper when the expression uses none of them.
        self._functions = {
            name: _STDLIB[name] for name in self._program.functions() if name in _STDLIB
        }
        reads = _scan_source(expression)
        self._keys: tuple[str, ...] | None = (
            None if reads is None else tuple(dict.fromkeys(key for _, _, key in reads))
        )
        # (variable, attribute) when `source.x` reads were rewritten to plain variables.
        self._flat: tuple[tuple[str, str], ...] | None = None
        if self._keys and "has(" not in expression.replace(" ", ""):  # has() needs a field
            assert reads is not None
            names = {key: f"{_FLAT_PREFIX}{i}" for i, key in enumerate(self._keys)}
            parts, last = [], 0
            for start, end, key in reads:
                parts.append(expression[last:start] + names[key])
                last = end
            parts.append(expression[last:])
            try:
                self._program = cel.compile("".join(parts))
                self._flat = tuple((name, key) for key, name in names.items())
            except ValueError:
                pass  # keep the original program

    def error(self, message: str) -> ExpressionError:
        return ExpressionError(self.owner, self.field, message, owner_kind=self.owner_kind,
                               field_kind=self.field_kind)

    def _bounded_shape(self) -> cost.Node | None:
        """The parsed expression when what it costs depends on the values it reads (checked
        per object), None when it is linear in them; refuses one that is unbounded."""
        try:
            shape = cost.parse(self.expression)
        except SyntaxProblem as error:
            raise self.error(f"Ferry cannot bound what this expression costs ({error});"
                             " write it more simply") from None
        depth = cost.comprehension_depth(shape)
        if depth > cost.MAX_COMPREHENSION_DEPTH:
            raise self.error(
                f"comprehensions (map, filter, all, exists, exists_one) nest {depth} deep; at"
                f" most {cost.MAX_COMPREHENSION_DEPTH}: each level multiplies the cost")
        least = cost.estimate(shape, lambda _: cost.NOTHING, {})
        if least > cost.EVALUATION_BUDGET:
            raise self.error(f"costs about {least:,} steps for any object, over the budget of"
                             f" {cost.EVALUATION_BUDGET:,}; build smaller values")
        return shape if cost.may_be_costly(shape) else None

    def _within_budget(self, record: Record, shape: cost.Node) -> None:
        attributes = record.attributes

        def sizes(name: str) -> cost.Size:
            if name:
                return cost.size_of(attributes.get(name))
            parts = [cost.size_of(value) for value in attributes.values()]
            return cost.Size(len(parts), max((p.weight for p in parts), default=0),
                             sum(p.weight + 1 for p in parts))

        steps = cost.estimate(shape, sizes, {DN: cost.size_of(record.dn)})
        if steps > cost.EVALUATION_BUDGET:
            raise self.error(f"would cost about {steps:,} steps for this object (its values"
                             f" are large), over the budget of {cost.EVALUATION_BUDGET:,}")

    def execute(self, record: Record) -> Any:
        """Run the CEL program for record; a missing attribute yields None."""
        if self._shape is not None:
            self._within_budget(record, self._shape)
        attributes = record.attributes
        flat, keys = self._flat, self._keys
        activation: dict[str, Any]
        if flat is not None:
            activation = {name: attributes[key] for name, key in flat if key in attributes}
        elif keys is not None:
            activation = {SOURCE: {key: attributes[key] for key in keys if key in attributes}}
        else:
            activation = {SOURCE: attributes}
        if self._needs_dn:
            activation[DN] = record.dn
        if self._needs_type:
            activation[OBJECT_TYPE] = str(record.object_type)
        try:
            if not self._functions:
                return self._program.execute(activation)
            return self._program.execute(cel.Context(activation, self._functions))
        except KeyError:
            return None  # a missing attribute: the expression has no value for this object
        except Exception as error:  # the CEL runtime raises many types; all mean "this object"
            message = str(error)
            if flat is not None and message.startswith(_UNDEFINED):
                return None  # a flattened `source.x` read of a missing attribute
            raise self.error(_one_line(message) or type(error).__name__) from None

    def evaluate(self, record: Record) -> StagedValue:
        """The attribute value the expression gives for record."""
        if self.direct is not None:
            return record.attributes.get(self.direct)
        if self._concat is not None:
            attributes = record.attributes
            parts: list[str] = []
            for is_attribute, text in self._concat:
                if not is_attribute:
                    parts.append(text)
                    continue
                value = attributes.get(text)
                if value is None:
                    return None  # as in CEL: a missing attribute makes the whole value null
                if type(value) is not str:
                    break  # a multi-valued attribute: let CEL report what it makes of it
                parts.append(value)
            else:
                return "".join(parts) or None
        result = self.execute(record)
        try:
            return to_staged_value(result)
        except TypeError as error:
            raise self.error(str(error)) from None


class CompiledFilter:
    """A pair's source filter: objects for which it is not true are out of scope."""

    __slots__ = ("_expression",)

    def __init__(self, expression: str, *, pair: str) -> None:
        self._expression = CompiledExpression(expression, owner=pair, field="sourceFilter",
                                              owner_kind="pair", field_kind="field")

    def matches(self, record: Record) -> bool:
        result = self._expression.execute(record)
        if result is None or isinstance(result, bool):
            return result is True
        raise self._expression.error(f"returned {_type_name(result)}; a filter must return a bool")


class CompiledMapping:
    """One attribute mapping with its expression compiled."""

    __slots__ = ("apply", "expression", "target_attribute")

    def __init__(self, target_attribute: str, apply: ApplyWhen, expression: CompiledExpression):
        self.target_attribute = target_attribute
        self.apply = apply
        self.expression = expression


_Picker = Callable[[tuple[StagedValue, ...]], tuple[StagedValue, ...]]


def _picker(positions: tuple[int, ...]) -> _Picker:
    """values -> the values at positions, as a tuple."""
    if len(positions) > 1:
        return itemgetter(*positions)  # C speed; it returns a bare value for one position

    def pick(values: tuple[StagedValue, ...]) -> tuple[StagedValue, ...]:
        return tuple([values[i] for i in positions])

    return pick


class Layout:
    """Where one object type's staged values go: the template's attribute names in staging
    order (plain copies first, then CEL mappings), and the positions staging and diff use."""

    # Staged values are a tuple aligned with `names` (None: no value), so diffs compare by
    # position and a create keeps the tuple as it is, instead of a dict per object.

    __slots__ = ("compared", "compared_values", "computed", "copies", "domain", "names", "rdn",
                 "updatable")

    def __init__(self, mappings: tuple[CompiledMapping, ...], domain_attributes: tuple[str, ...],
                 rdn_attribute: str, updatable: tuple[tuple[str, bool], ...]) -> None:
        copies = [m for m in mappings if m.expression.direct is not None]
        computed = [m for m in mappings if m.expression.direct is None]
        self.names = tuple(m.target_attribute for m in copies + computed)
        # Source attribute of names[i] for the plain copies (a dict lookup, no CEL)...
        self.copies = tuple(m.expression.direct or "" for m in copies)
        # ... then the expressions giving names[len(copies):].
        self.computed = tuple(m.expression for m in computed)
        # Positions of the attributes domain mapping rewrites and of the RDN attribute (-1:
        # not mapped).
        self.domain = tuple(i for i, name in enumerate(self.names) if name in domain_attributes)
        self.rdn = self.names.index(rdn_attribute) if rdn_attribute in self.names else -1
        # (attribute, only when the target is empty) an UPDATE may set, and their positions.
        self.updatable = updatable
        self.compared = tuple(self.names.index(name) for name, _ in updatable)
        self.compared_values = _picker(self.compared)


class CompiledTemplate:
    """A StagingRules with expressions compiled and lookups precomputed; reuse across runs."""

    __slots__ = ("_compared", "_layouts", "_mappings", "_ou_cache", "_ou_mappings", "_switches",
                 "_updatable", "domain_mapper", "name", "staging")

    _OU_CACHE_LIMIT = 100_000

    def __init__(self, staging: StagingRules) -> None:
        self.staging = staging
        self.name = staging.template_name
        compiled: list[tuple[CompiledMapping, frozenset[ObjectType]]] = []
        for mapping in staging.mappings:
            expression = CompiledExpression(mapping.expression, owner=self.name,
                                            field=mapping.target_attribute)
            compiled.append((CompiledMapping(mapping.target_attribute, mapping.apply, expression),
                             mapping.object_types))
        self._mappings: dict[ObjectType, tuple[CompiledMapping, ...]] = {}
        self._updatable: dict[ObjectType, tuple[tuple[str, bool], ...]] = {}
        self._layouts: dict[ObjectType, Layout] = {}
        self.domain_mapper = DomainMapper(staging.domain_mappings)
        domain_attributes = staging.domain_mapped_attributes if self.domain_mapper else ()
        # In a directory with containers the RDN changes by a move, never by an update.
        excluded = (RDN_ATTRIBUTES | {staging.rdn_attribute.lower()} if staging.containers
                    else RDN_ATTRIBUTES)
        for object_type in ObjectType:
            chosen = tuple(m for m, types in compiled if not types or object_type in types)
            seen: set[str] = set()
            for compiled_mapping in chosen:
                key = compiled_mapping.target_attribute.lower()
                if key in seen:
                    raise ExpressionError(
                        self.name, compiled_mapping.target_attribute,
                        f"mapped more than once for {object_type.value} objects; keep one mapping "
                        "per attribute and object type",
                    )
                seen.add(key)
            self._mappings[object_type] = chosen
            # (attribute, only-when-empty) pairs an UPDATE may change; OnCreate never does.
            updatable = tuple(
                (m.target_attribute, m.apply is ApplyWhen.WHEN_EMPTY)
                for m in chosen
                if m.apply is not ApplyWhen.ON_CREATE and m.target_attribute.lower() not in excluded
            )
            self._updatable[object_type] = updatable
            self._layouts[object_type] = Layout(chosen, domain_attributes, staging.rdn_attribute,
                                                updatable)
        self._compared = {object_type: tuple(name for name, _ in pairs)
                          for object_type, pairs in self._updatable.items()}
        # (suffix, key, target) by comparison key (see ferry_agent.dn), deepest source OU
        # first so the first hit is the most specific mapping; a key's commas separate RDNs.
        keys = [(self._source_ou_key(index, m.source_ou), m.target_ou)
                for index, m in enumerate(staging.ou_mappings)]
        self._ou_mappings = tuple(
            ("," + key, key, target)
            for key, target in sorted(keys, key=lambda kt: kt[0].count(","), reverse=True)
        )
        self._ou_cache: dict[str, str] = {}
        self._switches = staging.object_types

    def layout(self, object_type: ObjectType) -> Layout:
        """How staged values of object_type are laid out."""
        return self._layouts[object_type]

    def compared(self, object_type: ObjectType) -> tuple[str, ...]:
        """The attribute names of updatable(object_type), in the same order."""
        return self._compared[object_type]

    def updatable(self, object_type: ObjectType) -> tuple[tuple[str, bool], ...]:
        """(attribute, only when the target is empty) for every attribute an UPDATE may set."""
        return self._updatable[object_type]

    def switch(self, object_type: ObjectType) -> TypeSwitch:
        return self._switches.get(object_type) or _DEFAULT_SWITCH

    def _source_ou_key(self, index: int, source_ou: str) -> str:
        try:
            key = parse_dn(source_ou).key  # parsed in full: a manifest DN is checked
            if not key:
                raise DNError("it is empty")
        except DNError as error:
            raise ExpressionError(self.name, f"targetOU.mappings[{index}].sourceOU",
                                  f"{error}; write a DN such as OU=Sales,DC=corp,DC=example",
                                  field_kind="field") from None
        return key

    @property
    def has_ou_mappings(self) -> bool:
        return bool(self._ou_mappings)

    def target_ou(self, parent_dn: str) -> str:
        """Target container for objects whose source parent is parent_dn."""
        if not self._ou_mappings:
            return self.staging.default_target_ou
        # Cached by the parent as given: objects of one OU spell it the same way, and this
        # saves computing its key once per object.
        cached = self._ou_cache.get(parent_dn)
        if cached is not None:
            return cached
        parent = dn_key(parent_dn)
        result = self.staging.default_target_ou
        for suffix, exact, target in self._ou_mappings:
            if parent == exact or parent.endswith(suffix):
                result = target
                break
        if len(self._ou_cache) >= self._OU_CACHE_LIMIT:
            self._ou_cache.clear()
        self._ou_cache[parent_dn] = result
        return result


_DEFAULT_SWITCH = TypeSwitch()


def compile_template(staging: StagingRules) -> CompiledTemplate:
    """Compile every mapping of a template; raises ExpressionError naming the bad mapping."""
    return CompiledTemplate(staging)


def compile_filter(expression: str, *, pair: str) -> CompiledFilter:
    """Compile a pair's source filter; raises ExpressionError naming the pair."""
    return CompiledFilter(expression, pair=pair)
