"""Which source objects a pair covers: object types, source OUs and the source filter."""

from __future__ import annotations

from collections.abc import Callable

from ferry.engine.expressions import CompiledFilter, ExpressionError, compile_filter
from ferry.engine.records import Record
from ferry.engine.rules import PairRules
from ferry_agent.dn import DNError, dn_key, parent_dn, parse_dn


class PairScope:
    """Decides whether a source object is in a pair's scope, and says why not."""

    __slots__ = ("_filter", "_inside", "_ous", "_types")

    _INSIDE_LIMIT = 100_000

    def __init__(self, rules: PairRules) -> None:
        self._types = rules.object_types
        self._ous = tuple((key, "," + key) for key in map(_ou_key(rules), rules.source_ous))
        self._inside: dict[str, bool] = {}  # parent DN as spelled -> below a source OU
        self._filter: CompiledFilter | None = (
            compile_filter(rules.source_filter, pair=rules.name) if rules.source_filter else None
        )

    def out_of_scope(self, record: Record) -> str | None:
        """None when in scope, else why not; raises ExpressionError if the filter fails."""
        if record.object_type not in self._types:
            return f"object type {record.object_type.value} is not synchronised by this pair"
        if self._ous and not self._below_source_ou(record.dn):
            return "no longer below one of the source OUs"
        if self._filter is not None and not self._filter.matches(record):
            return "no longer matches the source filter"
        return None

    def _below_source_ou(self, dn: str) -> bool:
        # By comparison keys, not raw DNs: an OU named `x\,OU=Sales` is not in OU=Sales.
        # Decided once per parent OU (objects share OUs), and for the DN itself only when
        # the parent is outside: the DN may be a source OU.
        parent = parent_dn(dn)
        inside = self._inside.get(parent)
        if inside is None:
            key = dn_key(parent)
            inside = any(key == ou or key.endswith(suffix) for ou, suffix in self._ous)
            if len(self._inside) >= self._INSIDE_LIMIT:
                self._inside.clear()
            self._inside[parent] = inside
        return inside or dn_key(dn) in (ou for ou, _ in self._ous)


def _ou_key(rules: PairRules) -> Callable[[str], str]:
    """The comparison key of one of the pair's source OUs; a bad DN names the pair."""
    def key(ou: str) -> str:
        try:
            found = parse_dn(ou).key  # parsed in full: a manifest DN is checked
            if not found:
                raise DNError("it is empty")
        except DNError as error:
            raise ExpressionError(rules.name, "sourceOUs", f"{error}; write a DN such as"
                                  " OU=Sales,DC=corp,DC=example", owner_kind="pair",
                                  field_kind="field") from None
        return found
    return key
