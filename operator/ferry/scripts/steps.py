"""Run a workflow's script steps at their points of a run and record how each went."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import structlog

from ferry.api.status import ScriptResult, ScriptRun
from ferry.api.workflow import ScriptFailure
from ferry.scripts.context import script_context
from ferry.scripts.hosts import ScriptHost
from ferry.scripts.placement import PlacedScript, ScriptPoint
from ferry.scripts.texts import ScriptTexts
from ferry.secrets import SecretSource
from ferry.state.store import StateStore
from ferry.sync.outcome import RunOutcome
from ferry_agent.scripts.process import ProcessOutcome

log = structlog.get_logger("ferry.scripts")
TAIL_CHARACTERS = 4000   # status keeps at most 4096


@dataclass
class ScriptSteps:
    """The run's script steps; run_at(point) runs those of one point in step order."""

    scripts: list[PlacedScript]
    outcome: RunOutcome
    store: StateStore | None          # None: test mode records nothing
    secrets: SecretSource
    texts: ScriptTexts
    host_for: Callable[[PlacedScript], ScriptHost]

    def plan(self) -> None:
        """Test mode: each step listed as Planned, where it would run; nothing runs."""
        for script in self.scripts:
            self._keep(ScriptRun(step=script.index, name=script.name,
                                 where=self.host_for(script).where,
                                 result=ScriptResult.PLANNED))

    def run_at(self, point: ScriptPoint) -> bool:
        """Run the point's scripts; False when one failed the run (later ones are skipped)."""
        for script in (s for s in self.scripts if s.point is point):
            if self.outcome.fatal:
                break
            host = self.host_for(script)
            counts = self.outcome.counts_as_dict()
            results = self.store.runs.results(self.outcome.run_id) if self.store else []
            context = script_context(script, self.outcome.workflow, self.outcome.run_id,
                                     self.outcome.mode, counts, results, self.secrets)
            log.info("script.started", step=script.index, name=script.name, where=host.where)
            done = host.run(script, self.texts.text_of(script), context)
            run = _recorded(script, host.where, done)
            self._keep(run)
            log.info("script.finished", step=script.index, result=run.result,
                     exit_code=run.exit_code, seconds=run.duration_seconds)
            if run.result is not ScriptResult.SUCCEEDED \
                    and script.step.on_failure is ScriptFailure.FAIL:
                self.outcome.fatal = f"{script.label} {_failure(run, done)}"
        return not self.outcome.fatal

    def skip_rest(self) -> None:
        """Steps that did not get to run because the run ended first: Skipped."""
        ran = {s.step for s in self.outcome.scripts}
        for script in self.scripts:
            if script.index not in ran:
                self._keep(ScriptRun(step=script.index, name=script.name,
                                     where=self.host_for(script).where,
                                     result=ScriptResult.SKIPPED))

    def _keep(self, run: ScriptRun) -> None:
        self.outcome.scripts.append(run)
        if self.store is not None:
            self.store.script_runs.record(self.outcome.run_id, run)


def _recorded(script: PlacedScript, where: str, done: ProcessOutcome) -> ScriptRun:
    result = (ScriptResult.TIMED_OUT if done.timed_out
              else ScriptResult.SUCCEEDED if done.succeeded else ScriptResult.FAILED)
    tail = done.tail if not done.error else f"{done.tail}\n{done.error}".strip()
    return ScriptRun(step=script.index, name=script.name, where=where, result=result,
                     exit_code=done.exit_code, duration_seconds=round(done.duration, 3),
                     output_tail=tail[-TAIL_CHARACTERS:])


def _failure(run: ScriptRun, done: ProcessOutcome) -> str:
    if done.error:
        return f"could not run: {done.error}"
    if run.result is ScriptResult.TIMED_OUT:
        return "timed out and was stopped"
    return f"failed with exit code {run.exit_code}"
