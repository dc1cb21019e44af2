"""Run history: each run's mode, result and counts, and what it did to each object."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from ferry.state.rows import ObjectResult, StoredRun
from ferry.state.schema import ObjectResultRow, RunRow


@dataclass(frozen=True)
class Runs:
    _session: sessionmaker[Session]

    def start(self, workflow: str, mode: str, result: str, run_id: str | None = None) -> str:
        """Record a run with its first result (the caller's Running); a given id that already
        exists (a retried Job) restarts it."""
        run_id = run_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._session.begin() as s:
            s.merge(RunRow(id=run_id, workflow=workflow, mode=mode, started_at=datetime.now(UTC),
                           finished_at=None, result=result, message="", counts={}))
        return run_id

    def record(self, run_id: str, results: Iterable[ObjectResult]) -> None:
        with self._session.begin() as s:
            s.add_all(ObjectResultRow(run_id=run_id, **vars(r)) for r in results)

    def finish(self, run_id: str, result: str, exit_code: int, message: str,
               counts: dict[str, dict[str, int]]) -> None:
        with self._session.begin() as s:
            s.execute(update(RunRow).where(RunRow.id == run_id).values(
                finished_at=datetime.now(UTC), result=result, exit_code=exit_code, message=message,
                counts=counts))

    def recent(self, workflow: str | None = None, limit: int = 20) -> list[StoredRun]:
        """The latest runs first, of one workflow or all."""
        with self._session() as s:
            query = select(RunRow).order_by(RunRow.started_at.desc()).limit(limit)
            if workflow:
                query = query.where(RunRow.workflow == workflow)
            return [_stored(r) for r in s.scalars(query)]

    def get(self, run_id: str) -> StoredRun | None:
        with self._session() as s:
            row = s.get(RunRow, run_id)
            return _stored(row) if row is not None else None

    def previous_finished(self, workflow: str, before: str) -> StoredRun | None:
        """The workflow's latest finished run other than `before` (the run in progress)."""
        with self._session() as s:
            row = s.scalars(select(RunRow).where(
                RunRow.workflow == workflow, RunRow.id != before,
                RunRow.finished_at.is_not(None)).order_by(RunRow.finished_at.desc()).limit(1)
            ).first()
            return _stored(row) if row is not None else None

    def anchors_with(self, run_id: str, outcome: str) -> set[tuple[str, str]]:
        """(pair, source anchor) of the run's objects that ended with `outcome`."""
        with self._session() as s:
            rows = s.execute(select(ObjectResultRow.pair, ObjectResultRow.source_anchor).where(
                ObjectResultRow.run_id == run_id, ObjectResultRow.outcome == outcome))
            return {(pair, anchor) for pair, anchor in rows}

    def results(self, run_id: str) -> list[ObjectResult]:
        with self._session() as s:
            rows = s.scalars(select(ObjectResultRow).where(ObjectResultRow.run_id == run_id)
                             .order_by(ObjectResultRow.id))
            return [ObjectResult(r.pair, r.object_type, r.source_anchor, r.target_dn,
                                 r.operation, r.outcome, r.message) for r in rows]


def _stored(row: RunRow) -> StoredRun:
    return StoredRun(row.id, row.workflow, row.mode, row.started_at, row.finished_at,
                     row.result, row.exit_code, row.message, row.counts or {})
