"""What a run did: per-type counts, problems, the exit code and the plan as JSON."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry.api.status import RunResult, ScriptRun
from ferry.engine.plan import (
    Conflict,
    Count,
    Operation,
    OpKind,
    OutOfScope,
    PairPlan,
    StagingError,
)
from ferry.errors import ExitCode

# The count an applied (or, in test mode, planned) operation adds to.
COUNT_OF = {OpKind.CREATE: Count.CREATED, OpKind.UPDATE: Count.UPDATED,
            OpKind.MOVE: Count.MOVED, OpKind.DELETE: Count.DELETED}


@dataclass(frozen=True)
class EnvironmentReadCount:
    """What a run read of one environment: how many objects, and whether all of it."""

    environment: str
    role: str                 # source | target
    objects: int
    full: bool
    reason: str = ""          # a target read in full: why
    delta_objects: int = 0    # a target read in part: what its own delta returned

    def dump(self) -> dict[str, Any]:
        found: dict[str, Any] = {"environment": self.environment, "role": self.role,
                                 "objects": self.objects, "full": self.full}
        if self.reason:
            found["reason"] = self.reason
        if self.role == "target" and not self.full:
            found["deltaObjects"] = self.delta_objects
        return found


@dataclass(frozen=True)
class ObjectFailure:
    pair: str
    object_type: str
    target: str
    operation: str
    message: str


@dataclass
class RunOutcome:
    run_id: str
    workflow: str
    mode: str                         # full | changed | test
    counts: dict[str, Counter[Count]] = field(default_factory=lambda: defaultdict(Counter))
    conflicts: list[Conflict] = field(default_factory=list)
    staging_errors: list[StagingError] = field(default_factory=list)
    failures: list[ObjectFailure] = field(default_factory=list)
    threshold_messages: list[str] = field(default_factory=list)
    # References to objects the pairs never sync: reported, counted, not an error.
    out_of_scope: list[OutOfScope] = field(default_factory=list)
    scripts: list[ScriptRun] = field(default_factory=list)   # runScript steps, in order run
    graph_throttled: int = 0          # Graph's 429s the run waited out
    graph_retries: int = 0            # Graph requests it sent again (429, 5xx, lost)
    reads: list[EnvironmentReadCount] = field(default_factory=list)
    fatal: str = ""

    @property
    def exit_code(self) -> ExitCode:
        if self.fatal:
            return ExitCode.FAILED
        if self.threshold_messages:
            return ExitCode.DELETE_THRESHOLD
        if self.failures or self.staging_errors:
            return ExitCode.OBJECT_ERRORS
        return ExitCode.OK

    @property
    def result(self) -> RunResult:
        return {
            ExitCode.OK: RunResult.SUCCEEDED,
            ExitCode.FAILED: RunResult.FAILED,
            ExitCode.DELETE_THRESHOLD: RunResult.THRESHOLD_HIT,
            ExitCode.OBJECT_ERRORS: RunResult.COMPLETED_WITH_ERRORS,
        }[self.exit_code]

    @property
    def message(self) -> str:
        if self.fatal:
            return self.fatal
        parts = list(self.threshold_messages)
        if self.failures:
            parts.append(f"{len(self.failures)} object(s) failed and will be retried")
        if self.conflicts:
            new = self.totals()[Count.NEW_CONFLICTS]
            parts.append(f"{len(self.conflicts)} conflict(s) ({new} new): nothing written for"
                         " them" if new else f"{len(self.conflicts)} conflict(s): nothing"
                         " written for them")
        return "; ".join(parts)

    def count(self, object_type: str, key: Count, amount: int = 1) -> None:
        self.counts[object_type][key] += amount

    def totals(self) -> Counter[Count]:
        total: Counter[Count] = Counter()
        for per_type in self.counts.values():
            total.update(per_type)
        return total

    def counts_as_dict(self) -> dict[str, dict[str, int]]:
        return {t: {k.value: c[k] for k in Count} for t, c in sorted(self.counts.items())}


def plan_to_json(outcome: RunOutcome, plans: list[PairPlan]) -> dict[str, Any]:
    """A JSON-ready document of everything a run would do (or did) and why."""

    def clean(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
            if isinstance(value, Operation):  # its changes as one mapping, not two lists
                fields = {("changes" if name == "change_names" else name):
                          (value.changes if name == "change_names" else field)
                          for name, field in fields.items() if name != "change_values"}
            return {name: clean(field) for name, field in fields.items()
                    if field not in (None, "", (), [], {})}
        if isinstance(value, Mapping):  # dicts, and operations' changes
            return {str(k): clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return {
        "workflow": outcome.workflow,
        "runId": outcome.run_id,
        "mode": outcome.mode,
        "counts": outcome.counts_as_dict(),
        "thresholds": outcome.threshold_messages,
        "scripts": [s.dump() for s in outcome.scripts],
        "reads": [r.dump() for r in outcome.reads],
        "pairs": [
            {
                "pair": p.pair,
                "operations": [clean(op) for op in p.operations],
                "conflicts": [clean(c) for c in p.conflicts],
                "errors": [clean(e) for e in p.errors],
                "outOfScope": [{**clean(r), "message": r.message} for r in p.out_of_scope],
                "sidHistory": [{**clean(a), "message": f"sIDHistory would get {a.sid}"
                                if outcome.mode == "test" else f"sIDHistory gets {a.sid}"}
                               for a in p.sid_history],
                "passwords": [{**clean(u), "message": "password would be synced"
                               if outcome.mode == "test" else "password synced"}
                              for u in p.passwords],
                "thresholdHit": p.threshold_hit,
                "thresholdMessage": p.threshold_message,
            }
            for p in plans
        ],
    }


def write_plan(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(document, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
