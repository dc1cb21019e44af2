"""How a run's Job reports into its object's status: change the object's active entry while
it is still this run, patching only what changed and reading again on a conflict."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import structlog

from ferry.api.status import DiscoveryRun, RunSummary, StatusModel
from ferry.kube import FerryObjects, retry_conflicts, status_changes

log = structlog.get_logger("ferry.job")
StatusT = TypeVar("StatusT", bound=StatusModel)
RunT = TypeVar("RunT", RunSummary, DiscoveryRun)


@dataclass(frozen=True)
class ActiveEntry(Generic[StatusT, RunT]):
    """Where a kind keeps the run its Job reports into."""

    plural: str
    status: type[StatusT]
    entry: Callable[[StatusT], RunT | None]
    job: str  # the prefix of the Job's log events, e.g. sync_job


def report(objects: FerryObjects, where: ActiveEntry[StatusT, RunT], namespace: str, name: str,
           run_id: str, change: Callable[[StatusT, RunT], None]) -> None:
    """Apply `change` to the status and its active entry if that entry is still `run_id`."""
    def attempt() -> None:
        body = objects.get(where.plural, namespace, name)
        old = where.status.of(body)
        new = old.model_copy(deep=True)
        run = where.entry(new)
        if body is None or run is None or run.id != run_id:
            log.warning(f"{where.job}.status_gone", run=run_id)
            return
        change(new, run)
        objects.patch_status(where.plural, body, status_changes(old, new))

    if not retry_conflicts(attempt):
        log.warning(f"{where.job}.status_conflicts", run=run_id)
