"""Script steps' runs: one row per runScript step of a run, as status shows it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from ferry.api.status import ScriptResult, ScriptRun
from ferry.state.schema import ScriptRunRow


@dataclass(frozen=True)
class ScriptRuns:
    _session: sessionmaker[Session]

    def record(self, run_id: str, run: ScriptRun) -> None:
        """Keep how a step went; a retried Job's second attempt replaces the first's."""
        with self._session.begin() as s:
            s.execute(delete(ScriptRunRow).where(ScriptRunRow.run_id == run_id,
                                                 ScriptRunRow.step == run.step))
            s.add(ScriptRunRow(run_id=run_id, step=run.step, name=run.name or "",
                               where=run.where, result=run.result.value,
                               exit_code=run.exit_code, duration_seconds=run.duration_seconds,
                               output_tail=run.output_tail))

    def of(self, run_id: str) -> list[ScriptRun]:
        """The run's script steps, in step order."""
        with self._session() as s:
            rows = s.scalars(select(ScriptRunRow).where(ScriptRunRow.run_id == run_id)
                             .order_by(ScriptRunRow.step))
            return [ScriptRun(step=r.step, name=r.name or None, where=r.where,
                              result=ScriptResult(r.result), exit_code=r.exit_code,
                              duration_seconds=r.duration_seconds, output_tail=r.output_tail)
                    for r in rows]
