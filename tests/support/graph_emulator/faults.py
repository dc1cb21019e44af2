"""Injected failures: the next N requests whose method and path match answer with a status
(500, 502, 503, 504, 429, with or without Retry-After) or have their connection reset.

Paths are matched with `re.search` against the request path as the server sees it: Graph
requests as `/v1.0/users/...`, requests inside a `$batch` likewise (so one rule covers both),
token requests as `/{tenant}/oauth2/v2.0/token`. Resets apply to whole HTTP requests only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Graph's codes for server-side failures (https://learn.microsoft.com/graph/errors).
GRAPH_CODES = {
    429: ("TooManyRequests", "Too many requests. Please try again later."),
    500: ("generalException", "An unspecified error has occurred."),
    502: ("UnknownError", "Bad gateway."),
    503: ("serviceNotAvailable", "The service is temporarily unavailable. Please retry later."),
    504: ("UnknownError", "Gateway timeout."),
}
TOKEN_CODES = {
    429: ("temporarily_unavailable", 50196),
    500: ("server_error", 90033),
    502: ("temporarily_unavailable", 90033),
    503: ("temporarily_unavailable", 90033),
    504: ("temporarily_unavailable", 90033),
}


@dataclass
class FaultRule:
    id: int
    path: re.Pattern[str]
    method: str | None
    remaining: int
    action: str  # 'status' or 'reset'
    status: int
    retry_after: int | None
    served: int = 0

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "pathPattern": self.path.pattern, "method": self.method,
            "remaining": self.remaining, "action": self.action, "status": self.status,
            "retryAfter": self.retry_after, "served": self.served,
        }


class Faults:
    def __init__(self) -> None:
        self.rules: list[FaultRule] = []
        self._next_id = 1

    def add(self, spec: dict[str, Any]) -> FaultRule:
        action = spec.get("action", "status")
        if action not in ("status", "reset"):
            raise ValueError("action must be 'status' or 'reset'")
        status = int(spec.get("status", 503))
        if action == "status" and status not in GRAPH_CODES:
            raise ValueError(f"status must be one of {sorted(GRAPH_CODES)}")
        retry_after = spec.get("retryAfter")
        rule = FaultRule(
            id=self._next_id,
            path=re.compile(spec["pathPattern"]),
            method=spec["method"].upper() if spec.get("method") else None,
            remaining=int(spec.get("count", 1)),
            action=action,
            status=status,
            retry_after=int(retry_after) if retry_after is not None else None,
        )
        self._next_id += 1
        self.rules.append(rule)
        return rule

    def take(self, method: str, path: str, *, allow_reset: bool = True) -> FaultRule | None:
        """The first live rule matching, with one use consumed; None when nothing matches."""
        for rule in self.rules:
            if rule.remaining <= 0 or (rule.action == "reset" and not allow_reset):
                continue
            if rule.method and rule.method != method.upper():
                continue
            if rule.path.search(path):
                rule.remaining -= 1
                rule.served += 1
                return rule
        return None

    def clear(self) -> None:
        self.rules.clear()
