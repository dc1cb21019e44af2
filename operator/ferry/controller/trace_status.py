"""How status.lastTrace is written, by the operator and by the trace Job: whole, each time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from ferry.api.status import TraceSummary, WorkflowStatus
from ferry.kube import FerryObjects, retry_conflicts

log = structlog.get_logger("ferry.trace_job")


def last_trace_patch(old: TraceSummary | None, new: TraceSummary | None) -> dict[str, Any]:
    """The status merge patch turning lastTrace `old` into `new` ({} when they are equal). A
    merge patch keeps the fields it does not name, so those `new` lacks are sent as null:
    a new trace must not keep the last one's report."""
    before = old.dump() if old is not None else {}
    after = new.dump() if new is not None else None
    if before == (after or {}):
        return {}
    if after is None:
        return {"lastTrace": None}
    return {"lastTrace": {**dict.fromkeys(before.keys() - after.keys()), **after}}


def report_trace(objects: FerryObjects, namespace: str, name: str, trace_id: str,
                 change: Callable[[TraceSummary], None]) -> bool:
    """Apply `change` to status.lastTrace while it is still `trace_id`; False when another
    trace took its place (or the Workflow is gone)."""
    kept = [True]

    def attempt() -> None:
        body = objects.get("workflows", namespace, name)
        old = WorkflowStatus.of(body).last_trace
        if body is None or old is None or old.id != trace_id:
            log.warning("trace_job.status_gone", trace=trace_id)
            kept[0] = False
            return
        new = old.model_copy()
        change(new)
        patch = last_trace_patch(old, new)
        if patch:
            objects.patch_status("workflows", body, patch)

    if not retry_conflicts(attempt):
        log.warning("trace_job.status_conflicts", trace=trace_id)
        return False
    return kept[0]
