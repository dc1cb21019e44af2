"""The match report of one pair: every source object with its target and how it was matched,
or why not, from the engine's own plan (plan_pair) and scope: pure, nothing re-decided."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from functools import partial

from ferry.engine.expressions import ExpressionError
from ferry.engine.plan import OpKind, PairPlan
from ferry.engine.records import Record
from ferry.engine.rules import PairRules
from ferry.engine.scope import PairScope
from ferry.reports.tables import csv_text
from ferry.state.rows import MatchRow, MatchStatus, PairMatches

HEADER = ("sourceDN", "sourceType", "anchor", "targetDN", "targetType", "status", "rule",
          "candidates", "reason")


def match_rows(rules: PairRules, sources: Iterable[Record], targets: Mapping[str, Record],
               joins: Mapping[str, str], plan: PairPlan) -> list[MatchRow]:
    """One row per source object the pair read (sources: those of its object types;
    targets: the target's records by anchor; joins: the stored ones the plan was made with)."""
    scope = PairScope(rules)
    errors = {e.source_anchor: e for e in plan.errors}
    conflicts = {c.source_anchor: c for c in plan.conflicts}
    creates = {op.source_anchor: op for op in plan.operations if op.kind is OpKind.CREATE}
    deletes = {op.source_anchor for op in plan.operations if op.kind is OpKind.DELETE}
    dropped = set(plan.dropped_joins)
    rows = []
    for source in sources:
        anchor, kind = source.anchor, source.object_type.value
        row = partial(_row, source)
        joined = targets.get(joins.get(anchor, ""))
        if anchor in errors:
            rows.append(row(MatchStatus.ERROR, joined, reason=errors[anchor].message))
            continue
        try:
            outside = scope.out_of_scope(source)
        except ExpressionError as error:   # the plan has it as an error too
            rows.append(row(MatchStatus.ERROR, joined, reason=str(error)))
            continue
        if outside is not None:
            then = ("" if joined is None else "; the run deletes its target" if anchor in deletes
                    else "; its target is kept")
            rows.append(row(MatchStatus.OUT_OF_SCOPE, joined, "join" if joined else "",
                            reason=outside + then))
            continue
        if anchor in conflicts:
            conflict = conflicts[anchor]
            rows.append(row(MatchStatus.CONFLICT, rule=conflict.rule,
                            candidates=conflict.candidates, reason=conflict.message))
        elif anchor in plan.new_joins:
            rule = plan.matched_by.get(anchor, "")
            rows.append(row(MatchStatus.MATCHED, targets.get(plan.new_joins[anchor]), rule,
                            reason="a create begun by an interrupted run" if rule ==
                            "pending create" else ""))
        elif joined is not None and anchor not in dropped:
            rows.append(row(MatchStatus.JOINED, joined, "join"))
        elif anchor in creates:
            op = creates[anchor]
            rows.append(MatchRow(source.dn, kind, anchor, op.dn, op.object_type.value,
                                 MatchStatus.WOULD_CREATE, reason=_no_target(rules, anchor,
                                                                             joins, dropped)))
        else:
            switch = rules.staging.object_types.get(source.object_type)
            why = _no_target(rules, anchor, joins, dropped)
            if switch is not None and not switch.create:
                why += f"; Template {rules.staging.template_name} does not create {kind}s"
            rows.append(row(MatchStatus.UNMATCHED, reason=why))
    return sorted(rows, key=lambda r: (r.source_type, r.source_dn.lower()))


def _row(source: Record, status: MatchStatus, target: Record | None = None, rule: str = "",
         candidates: tuple[str, ...] = (), reason: str = "") -> MatchRow:
    return MatchRow(source.dn, source.object_type.value, source.anchor,
                    target.dn if target else "", target.object_type.value if target else "",
                    status, rule, candidates, reason)


def _no_target(rules: PairRules, anchor: str, joins: Mapping[str, str],
               dropped: set[str]) -> str:
    if anchor in joins and anchor in dropped:
        return "its joined target is gone from the target directory"
    if not rules.match_rules:
        return "the pair has no match rules"
    return "no match rule found a target"


def matches_csv(rows: Iterable[MatchRow]) -> str:
    return csv_text(HEADER, ((r.source_dn, r.source_type, r.anchor, r.target_dn, r.target_type,
                              r.status.value, r.rule, "; ".join(r.candidates), r.reason)
                             for r in rows))


def match_files(report: Iterable[PairMatches]) -> dict[str, str]:
    """File name -> CSV text, a file per pair (the same from a plan as from the store)."""
    return {pair.file_name: matches_csv(pair.rows) for pair in report}


def status_counts(rows: Iterable[MatchRow]) -> dict[str, int]:
    """How many rows have each status, by status name ({} for none)."""
    return dict(Counter(row.status.value for row in rows))


def summary_line(pair: PairMatches) -> str:
    """`src -> tgt: 1 conflict, 2 joined`: the statuses a pair has, by name."""
    return counts_line(pair.source, pair.target, status_counts(pair.rows))


def counts_line(source: str, target: str, counts: Mapping[str, int]) -> str:
    """The summary line from counts by status name (as status.lastMatchReport keeps them)."""
    return (f"{source} -> {target}: "
            + (", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if n) or "none"))
