"""Deletions: target objects whose source is gone or out of scope, guarded by a threshold."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ferry.engine.diff import StoredTarget
from ferry.engine.expressions import CompiledTemplate
from ferry.engine.plan import Operation, OpKind
from ferry.engine.rules import PairRules

SOURCE_DELETED = "the source object was deleted"
SOURCE_ABSENT = "the source object is no longer in the source read"


@dataclass(slots=True)
class DeleteCandidate:
    """A joined target object that should go, and why."""

    source_anchor: str
    target: StoredTarget
    reason: str


@dataclass(slots=True)
class DeletePlan:
    operations: list[Operation] = field(default_factory=list)
    threshold_hit: bool = False
    threshold_message: str = ""
    # Target anchors the threshold held back: nothing that follows from their deletion
    # (leaving a group, losing a manager) may happen either.
    held_back: frozenset[str] = frozenset()


def plan_deletes(rules: PairRules, template: CompiledTemplate,
                 candidates: Iterable[DeleteCandidate]) -> DeletePlan:
    """DELETE operations for candidates the pair may delete; above the threshold none at all,
    and every candidate is held back."""
    result = DeletePlan()
    if not rules.delete_enabled:
        return result
    operations = [
        Operation(OpKind.DELETE, c.target.object_type, rules.name, c.source_anchor,
                  c.target.anchor, c.target.dn, reason=c.reason)
        for c in candidates
        if template.switch(c.target.object_type).delete
    ]
    if len(operations) > rules.delete_threshold:
        result.threshold_hit = True
        result.threshold_message = (
            f"pair {rules.name!r}: {len(operations)} objects would be deleted, more than the "
            f"delete threshold of {rules.delete_threshold}, so nothing was deleted. Check that "
            "the source read is complete (a missing OU or a failed read looks like mass "
            "deletion); if the deletions are intended, raise spec.steps[].threshold of the "
            "DeleteObjects step and run again."
        )
        result.held_back = frozenset(op.target_anchor for op in operations if op.target_anchor)
        return result
    result.operations = operations
    return result
