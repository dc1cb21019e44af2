"""What a script step is given about its run: variables and two JSON files (the context, and
the per-object results recorded so far). Secrets go in only as the step's own env values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from ferry.scripts.placement import PlacedScript
from ferry.secrets import SecretSource
from ferry.state.rows import ObjectResult

CONTEXT_VARIABLE = "FERRY_CONTEXT_FILE"
RESULTS_VARIABLE = "FERRY_RESULTS_FILE"
# Per-object results a script is handed: enough for any report of a run, bounded so the file
# (and a work item to an agent, 16 MiB at most) stays small.
MAX_RESULTS = 20_000


@dataclass(frozen=True)
class ScriptContext:
    """One step's invocation: its variables, and file variable -> (file name, content)."""

    variables: dict[str, str]
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    secret_names: frozenset[str] = frozenset()   # variables whose values are secrets


def script_context(script: PlacedScript, workflow: str, run_id: str, mode: str,
                   counts: Mapping[str, Mapping[str, int]], results: list[ObjectResult],
                   secrets: SecretSource) -> ScriptContext:
    """The variables and files a step's script reads about its run."""
    totals: dict[str, int] = {}
    for per_type in counts.values():
        for key, value in per_type.items():
            totals[key] = totals.get(key, 0) + value
    kept = results[:MAX_RESULTS]
    context = {
        "workflow": workflow, "run": run_id, "mode": mode, "step": script.index,
        "stepName": script.name, "point": script.point.value,
        "counts": {k: v for k, v in totals.items() if v}, "countsByType": counts,
    }
    document = {"total": len(results), "included": len(kept), "results": [
        {"pair": r.pair, "objectType": r.object_type, "sourceAnchor": r.source_anchor,
         "targetDn": r.target_dn, "operation": r.operation, "outcome": r.outcome,
         "message": r.message} for r in kept]}
    variables = {
        "FERRY_WORKFLOW": workflow, "FERRY_RUN_ID": run_id, "FERRY_RUN_MODE": mode,
        "FERRY_STEP": str(script.index), "FERRY_STEP_NAME": script.name or "",
        "FERRY_STEP_POINT": script.point.value,
        "FERRY_COUNTS": json.dumps(context["counts"], sort_keys=True),
    }
    secret_names = set()
    for var in script.step.env:
        if var.value_from is not None:
            secret_names.add(var.name)
            if script.step.image is None:   # a script Job's kubelet reads its own Secrets
                variables[var.name] = secrets.resolve(
                    var.value_from, f"{script.label}.env[{var.name}].valueFrom")
        else:
            variables[var.name] = var.value or ""
    return ScriptContext(variables, {
        CONTEXT_VARIABLE: ("ferry-context.json", _json(context)),
        RESULTS_VARIABLE: ("ferry-results.json", _json(document)),
    }, frozenset(secret_names))


def _json(value: object) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True).encode("utf-8")
