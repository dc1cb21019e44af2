"""Where in a run each runScript step falls: before the reads, between the reads and the
writes, or after the writes. A run reads every environment in one phase and writes every
pair in another, so a script placed inside either phase is refused rather than moved."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ferry.api.workflow import RunScriptStep, WorkflowSpec

_READS = frozenset({"readFrom"})
_WRITES = frozenset({"writeTo", "deleteObjects"})


class ScriptPoint(StrEnum):
    BEFORE_READ = "beforeRead"     # nothing read yet: a gate, or an export to prepare
    BEFORE_WRITE = "beforeWrite"   # everything read and planned, nothing written
    AFTER_WRITE = "afterWrite"     # every pair written (and deleted in)


@dataclass(frozen=True)
class PlacedScript:
    """One runScript step, its index in spec.steps and the point of the run it runs at."""

    index: int
    name: str | None
    step: RunScriptStep
    point: ScriptPoint

    @property
    def label(self) -> str:
        named = f" ({self.name})" if self.name else ""
        return f"spec.steps[{self.index}].runScript{named}"


def placed_scripts(spec: WorkflowSpec) -> list[PlacedScript]:
    """The workflow's runScript steps in order, each with its point (placement_problems
    must be empty)."""
    kinds = [s.kind for s in spec.steps]
    placed = []
    for index, step in enumerate(spec.steps):
        if step.run_script is None:
            continue
        before = set(kinds[:index])
        point = (ScriptPoint.BEFORE_READ if not before & _READS
                 else ScriptPoint.AFTER_WRITE if before & _WRITES
                 else ScriptPoint.BEFORE_WRITE)
        placed.append(PlacedScript(index, step.name, step.run_script, point))
    return placed


def placement_problems(spec: WorkflowSpec) -> list[tuple[int, str]]:
    """(step index, message) for each runScript step inside the reads or the writes."""
    kinds = [s.kind for s in spec.steps]
    problems = []
    for index, kind in enumerate(kinds):
        if kind != "runScript":
            continue
        before, after = set(kinds[:index]), set(kinds[index + 1:])
        if before & _READS and after & _READS:
            problems.append((index, "a run reads every readFrom environment in one phase, so"
                             " a runScript between two readFrom steps cannot run between"
                             " them; move it before the first readFrom or after the last"))
        elif before & _WRITES and after & _WRITES:
            problems.append((index, "a run writes every pair in one phase, so a runScript"
                             " between writeTo/deleteObjects steps cannot run between them;"
                             " move it before the first writeTo or after the last"
                             " writeTo/deleteObjects"))
    return problems
