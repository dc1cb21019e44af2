"""What an alert says: the webhook's JSON body and the e-mail's subject and text. Pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ferry.alerts.outcomes import delivery_id
from ferry.api.status import k8s_time


@dataclass(frozen=True)
class AlertMessage:
    """One alert about one run's outcome (no secret is ever part of it)."""

    alert: str
    workflow: str
    namespace: str | None         # None outside a cluster
    run: str
    outcome: str
    result: str
    message: str
    counts: Mapping[str, int] = field(default_factory=dict)
    start_time: datetime | None = None
    completion_time: datetime | None = None

    @property
    def id(self) -> str:
        """The delivery's idempotency id (X-Ferry-Delivery, the e-mail's Message-ID)."""
        return delivery_id(self.run, self.outcome, self.alert)

    @property
    def workflow_label(self) -> str:
        return f"{self.namespace}/{self.workflow}" if self.namespace else self.workflow


def payload(message: AlertMessage) -> bytes:
    """The webhook's body: compact JSON, keys sorted, so the bytes signed are the bytes sent."""
    document = {
        "id": message.id,
        "alert": message.alert,
        "workflow": message.workflow,
        "namespace": message.namespace,
        "run": message.run,
        "outcome": message.outcome,
        "result": message.result,
        "message": message.message,
        "counts": dict(message.counts),
        "startTime": _time(message.start_time),
        "completionTime": _time(message.completion_time),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


_HEADLINES = {
    "Failed": "failed",
    "CompletedWithErrors": "completed with errors",
    "ThresholdHit": "hit its delete threshold (nothing deleted)",
    "NewConflicts": "has new conflicts",
    "Recovered": "recovered",
    "Succeeded": "succeeded",
}


def subject(message: AlertMessage) -> str:
    """E.g. "[Ferry] Workflow tenant-a/ad-to-ad failed (run 1a2b3c)"."""
    what = _HEADLINES.get(message.outcome, message.outcome)
    return f"[Ferry] Workflow {message.workflow_label} {what} (run {message.run})"


def text(message: AlertMessage) -> str:
    """The e-mail's plain-text body."""
    lines = [
        f"Workflow:  {message.workflow_label}",
        f"Run:       {message.run}",
        f"Outcome:   {message.outcome}",
        f"Result:    {message.result}",
        f"Started:   {_time(message.start_time) or '-'}",
        f"Finished:  {_time(message.completion_time) or '-'}",
        "",
        message.message or "(no message)",
        "",
        "Counts:",
        *(f"  {key}: {value}" for key, value in message.counts.items() if value),
        "",
        f"Alert {message.alert}; delivery id {message.id}.",
    ]
    return "\n".join(lines) + "\n"


def _time(moment: datetime | None) -> str | None:
    return k8s_time(moment) if moment is not None else None
