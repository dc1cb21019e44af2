"""counts.newConflicts: conflicts the workflow's previous non-failed run did not have, from
the state store's per-object results."""

from __future__ import annotations

from pathlib import Path

from ferry.api.status import RunCounts, RunResult
from ferry.engine.plan import Conflict, Count, ObjectType
from ferry.state.rows import ObjectResult
from ferry.state.store import StateStore
from ferry.sync.new_conflicts import count_new_conflicts
from ferry.sync.outcome import RunOutcome


def conflict(anchor: str) -> Conflict:
    return Conflict("src->tgt", anchor, f"CN={anchor},DC=src", ObjectType.USER, "mail -> mail",
                    "dup@x", ("CN=a", "CN=b"), f"{anchor}: two candidates")


def run(store: StateStore, anchors: list[str], result: RunResult = RunResult.SUCCEEDED
        ) -> RunOutcome:
    run_id = store.runs.start("wf", "full", RunResult.RUNNING)
    outcome = RunOutcome(run_id, "wf", "full", conflicts=[conflict(a) for a in anchors])
    store.runs.record(run_id, [ObjectResult("src->tgt", "user", a, "", "match", "conflict", "")
                               for a in anchors])
    count_new_conflicts(store.runs, outcome)
    store.runs.finish(run_id, result, 0, "", outcome.counts_as_dict())
    return outcome


def test_only_conflicts_the_previous_run_lacked_are_new(tmp_path: Path) -> None:
    with StateStore(str(tmp_path / "state.sqlite")) as store:
        assert run(store, ["a", "b"]).totals()[Count.NEW_CONFLICTS] == 2   # no earlier run
        assert run(store, ["a", "b"]).totals()[Count.NEW_CONFLICTS] == 0
        assert run(store, ["b", "c"]).totals()[Count.NEW_CONFLICTS] == 1
        # A failed run in between (it may not have got as far as planning) is passed over.
        run(store, [], RunResult.FAILED)
        assert run(store, ["b", "c"]).totals()[Count.NEW_CONFLICTS] == 0
        # Gone, then back: new again.
        run(store, ["b"])
        assert run(store, ["b", "c"]).totals()[Count.NEW_CONFLICTS] == 1


def test_status_counts_take_the_count() -> None:
    # sync-job reports every Count into status.activeRun.counts by its name.
    assert RunCounts.model_validate({Count.NEW_CONFLICTS.value: 2}).new_conflicts == 2
