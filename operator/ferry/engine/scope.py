"""Which source objects a pair covers: object types, source OUs and the source filter."""

from __future__ import annotations

from ferry.engine.expressions import CompiledFilter, compile_filter
from ferry.engine.records import Record
from ferry.engine.rules import PairRules


class Scope:
    """Decides whether a source object is in a pair's scope, and says why not."""

    __slots__ = ("_filter", "_ous", "_types")

    def __init__(self, rules: PairRules) -> None:
        self._types = rules.object_types
        self._ous = tuple((ou.lower(), "," + ou.lower()) for ou in rules.source_ous)
        self._filter: CompiledFilter | None = (
            compile_filter(rules.source_filter, pair=rules.name) if rules.source_filter else None
        )

    def out_of_scope(self, record: Record) -> str | None:
        """None when in scope, else why not; raises ExpressionError if the filter fails."""
        if record.object_type not in self._types:
            return f"object type {record.object_type.value} is not synchronised by this pair"
        if self._ous:
            dn = record.dn.lower()
            if not any(dn == ou or dn.endswith(suffix) for ou, suffix in self._ous):
                return "no longer below one of the source OUs"
        if self._filter is not None and not self._filter.matches(record):
            return "no longer matches the source filter"
        return None
