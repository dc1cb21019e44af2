"""What one ReACL scope saw, in the figures an action's outcome reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .outcome import MAX_REPORTED_SIDS

MAX_REPORTED_ERRORS = 100


@dataclass
class ReaclFigures:
    """What one scope's run saw: objects scanned and changed, SIDs matched and left."""

    scanned: int = 0
    changed: int = 0
    without_acl: int = 0
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    def error(self, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(message)

    def add(self, other: ReaclFigures) -> None:
        self.scanned += other.scanned
        self.changed += other.changed
        self.without_acl += other.without_acl
        self.matched |= other.matched
        self.unmatched |= other.unmatched
        for message in other.errors:
            self.error(message)
        self.error_count += other.error_count - len(other.errors)

    def details(self) -> dict[str, Any]:
        return {"scanned": self.scanned, "changed": self.changed,
                "withoutAcl": self.without_acl, "matched": len(self.matched),
                "unmatched": sorted(self.unmatched)[:MAX_REPORTED_SIDS],
                "errors": self.error_count}
