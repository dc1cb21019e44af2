"""Each alert's delivery as status keeps it: queued when a run is recorded, tried a bounded
number of times with backoff, then Sent or Failed for good. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

from ferry.alerts.outcomes import due, run_outcomes
from ferry.api.status import AlertDelivery, AlertState, RunResult, RunSummary
from ferry.api.workflow import Alert

MAX_ATTEMPTS = 3
# The wait after attempt 1 and after attempt 2.
BACKOFF = (timedelta(seconds=30), timedelta(seconds=120))
# status.alerts' bound (WorkflowStatus.alerts max_length): the newest are kept.
KEPT = 50


def queue(deliveries: list[AlertDelivery], alerts: list[Alert], run: RunSummary,
          previous: RunResult | None) -> list[AlertDelivery]:
    """status.alerts with a Pending entry for each alert the finished run sends, newest
    first; an entry already there (the run recorded twice) is not added again."""
    known = {(d.alert, d.run, d.outcome) for d in deliveries}
    outcomes = run_outcomes(run.result, run.counts.new_conflicts, previous)
    added = [AlertDelivery(alert=alert.name, run=run.id, outcome=outcome,
                           state=AlertState.PENDING)
             for alert, outcome in due(alerts, outcomes)
             if (alert.name, run.id, outcome) not in known]
    return [*added, *deliveries][:KEPT]


def attempt_due(delivery: AlertDelivery, now: datetime) -> bool:
    """Whether a delivery should be tried now: Pending, and its backoff over."""
    if delivery.state != AlertState.PENDING:
        return False
    if delivery.attempts == 0 or delivery.time is None:
        return True
    wait = BACKOFF[min(delivery.attempts, len(BACKOFF)) - 1]
    return now >= delivery.time + wait


def attempted(delivery: AlertDelivery, error: str | None, now: datetime) -> AlertDelivery:
    """The delivery after one attempt: Sent, Pending again, or Failed after the last one."""
    attempts = delivery.attempts + 1
    if error is None:
        state = AlertState.SENT
    else:
        state = AlertState.FAILED if attempts >= MAX_ATTEMPTS else AlertState.PENDING
    return delivery.model_copy(update={"attempts": attempts, "time": now, "state": state,
                                       "message": (error or "")[:1024]})
