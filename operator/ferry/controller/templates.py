"""Template reconciler: Ready when every expression compiles, else the mapping and the error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from ferry.api.base import ObjectMeta
from ferry.api.conditions import (
    ConditionType,
    Reason,
    Signal,
    has_condition,
    set_condition,
    set_kstatus,
)
from ferry.api.events import EventType
from ferry.api.status import ConditionStatus, TemplateStatus
from ferry.api.template import TemplateSpec
from ferry.controller.events import EventRecorder
from ferry.kube import FerryObjects, retry_conflicts, status_changes
from ferry.sync.expression_check import template_problems

SPEC_PROBLEM = "spec: "   # the start of a problem with the spec's shape, not an expression


def template_problem(name: str, spec: dict[str, Any]) -> str:
    """Why the Template cannot stage objects, or "" when it can."""
    try:
        parsed = TemplateSpec.model_validate(spec)
    except ValidationError as exc:
        return f"{SPEC_PROBLEM}{exc.errors()[0]['msg']}"
    problems = template_problems(name, parsed)  # the same check `ferry run` makes
    return "; ".join(f"Template/{name}: {path}: {message}" for path, message in problems)


class TemplateReconciler:
    def __init__(self, objects: FerryObjects, events: EventRecorder):
        self._objects = objects
        self._events = events

    def reconcile(self, body: dict[str, Any]) -> None:
        meta = ObjectMeta.model_validate(body["metadata"])
        if meta.deletion_timestamp:
            return
        problem = template_problem(meta.name, body.get("spec") or {})
        old = TemplateStatus.of(body)
        new = old.model_copy(deep=True)
        now = datetime.now(UTC)
        reason = (Reason.COMPILED if not problem else Reason.INVALID_SPEC
                  if problem.startswith(SPEC_PROBLEM) else Reason.INVALID_EXPRESSION)
        set_condition(new, ConditionType.READY, not problem, reason,
                      problem or "every expression compiles", meta.generation, now)
        set_kstatus(new, None, Signal(reason, problem) if problem else None, meta.generation,
                    now)
        new.observed_generation = meta.generation
        changes = status_changes(old, new)
        if not changes:
            return
        if not retry_conflicts(lambda: self._objects.patch_status("templates", body, changes),
                               attempts=1):
            return  # a newer version is on its way through the watch
        if problem and not has_condition(old, ConditionType.READY, ConditionStatus.FALSE):
            self._events.post(body, EventType.WARNING, reason, problem)
