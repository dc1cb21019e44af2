"""Conflicts new in this run: those the workflow's previous finished run did not have."""

from __future__ import annotations

from ferry.api.status import RunResult
from ferry.engine.plan import Count
from ferry.state.runs import Runs
from ferry.sync.outcome import RunOutcome


def count_new_conflicts(runs: Runs, outcome: RunOutcome) -> None:
    """Count, per object type, the run's conflicts whose (pair, source anchor) was no
    conflict in the previous finished run. Failed runs are passed over (one may have stopped
    before it planned: its conflicts say nothing), so a failed run in between does not make
    old conflicts new; with no earlier run every conflict is new."""
    if not outcome.conflicts:
        return
    previous = next((r for r in runs.recent(outcome.workflow) if r.id != outcome.run_id
                     and r.finished_at is not None and r.result != RunResult.FAILED), None)
    known = runs.anchors_with(previous.id, "conflict") if previous is not None else set()
    for conflict in outcome.conflicts:
        if (conflict.pair, conflict.source_anchor) not in known:
            outcome.count(conflict.object_type.value, Count.NEW_CONFLICTS)
