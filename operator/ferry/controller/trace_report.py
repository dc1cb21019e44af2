"""A trace's report sized for status: the object `ferry trace --json` prints, as compact
JSON of at most 32 KiB; when it is larger, lists and texts are cut, and the report says so."""

from __future__ import annotations

import json
from typing import Any

REPORT_LIMIT = 32 * 1024
# (items kept per list, characters per text), tried in order until the report fits; the
# last always does.
_CUTS = ((200, 2000), (50, 500), (15, 120), (4, 60), (0, 40))


def bounded_report(report: dict[str, Any], limit: int = REPORT_LIMIT) -> str:
    """The report as JSON within `limit` characters (ASCII, so as many bytes)."""
    text = _compact(report)
    for items, chars in _CUTS:
        if len(text) <= limit:
            break
        cut = _cut(report, items, chars)
        cut["truncated"] = (f"cut to fit the Workflow's status ({limit // 1024} KiB): lists"
                            f" to {items} items, texts to {chars} characters; `ferry trace"
                            f" -f DIR` shows all of it")
        text = _compact(cut)
    return text


def _compact(report: dict[str, Any]) -> str:
    return json.dumps(report, separators=(",", ":"), ensure_ascii=True)


def _cut(value: Any, items: int, chars: int) -> Any:
    if isinstance(value, dict):
        return {key: _cut(item, items, chars) for key, item in value.items()}
    if isinstance(value, list):
        return [_cut(item, items, chars) for item in value[:items]]
    if isinstance(value, str) and len(value) > chars:
        return value[:max(chars - 3, 0)] + "..."
    return value
