"""Template reconciler: Ready when every expression compiles, else the mapping and the error."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from ferry.api.template import TemplateSpec
from ferry.controller.conditions import condition_of, set_condition
from ferry.controller.events import EventRecorder
from ferry.kube import FerryObjects, status_changes
from ferry.sync.expression_check import template_problems


def template_problem(name: str, spec: dict[str, Any]) -> str:
    """Why the Template cannot stage objects, or "" when it can."""
    try:
        parsed = TemplateSpec.model_validate(spec)
    except ValidationError as exc:
        return f"spec: {exc.errors()[0]['msg']}"
    problems = template_problems(name, parsed)  # the same check `ferry run` makes
    return "; ".join(f"Template/{name}: {path}: {message}" for path, message in problems)


class TemplateReconciler:
    def __init__(self, objects: FerryObjects, events: EventRecorder):
        self._objects = objects
        self._events = events

    def reconcile(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        if meta.get("deletionTimestamp"):
            return
        problem = template_problem(meta["name"], body.get("spec") or {})
        old = dict(body.get("status") or {})
        new = dict(old)
        new["conditions"] = set_condition(
            list(old.get("conditions") or []), "Ready", not problem,
            "Compiled" if not problem else "InvalidExpression",
            problem or "every expression compiles", meta.get("generation"), datetime.now(UTC))
        new["observedGeneration"] = meta.get("generation")
        changes = status_changes(old, new)
        if not changes:
            return
        try:
            self._objects.patch_status("templates", body, changes)
        except ApiException as exc:
            if exc.status == 409:
                return  # a newer version is on its way through the watch
            raise
        was_ready = (condition_of(old.get("conditions"), "Ready") or {}).get("status")
        if problem and was_ready != "False":
            self._events.post(body, "Warning", "InvalidExpression", problem)
