"""status.conditions the Kubernetes way: one entry per type, transition time kept when unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ferry.api.status import Condition, ConditionStatus


def set_condition(conditions: list[dict[str, Any]], type_: str, status: bool | None, reason: str,
                  message: str, generation: int | None,
                  now: datetime | None = None) -> list[dict[str, Any]]:
    """Conditions with type_ set; lastTransitionTime moves only when the status changes."""
    value = (ConditionStatus.UNKNOWN if status is None
             else ConditionStatus.TRUE if status else ConditionStatus.FALSE)
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != value.value
    transition = (now or datetime.now(UTC)) if changed else _parse(previous)
    condition = Condition(type=type_, status=value, observed_generation=generation,
                          last_transition_time=transition, reason=reason, message=message[:32768])
    entry = condition.model_dump(mode="json", by_alias=True, exclude_none=True)
    if previous is None:
        return [*conditions, entry]
    return [entry if c.get("type") == type_ else c for c in conditions]


def condition_of(conditions: list[dict[str, Any]] | None, type_: str) -> dict[str, Any] | None:
    return next((c for c in conditions or [] if c.get("type") == type_), None)


def _parse(previous: dict[str, Any] | None) -> datetime:
    assert previous is not None
    return datetime.fromisoformat(str(previous["lastTransitionTime"]).replace("Z", "+00:00"))
