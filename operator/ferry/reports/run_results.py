"""A run's per-object results as CSV (`ferry runs --run ID --csv`)."""

from __future__ import annotations

from collections.abc import Iterable

from ferry.reports.tables import csv_text
from ferry.state.rows import ObjectResult

HEADER = ("pair", "type", "anchor", "dn", "operation", "result", "message")


def run_csv(results: Iterable[ObjectResult]) -> str:
    return csv_text(HEADER, ((r.pair, r.object_type, r.source_anchor or "", r.target_dn,
                              r.operation, r.outcome, r.message) for r in results))
