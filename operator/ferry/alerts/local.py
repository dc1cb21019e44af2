"""The alerts of a run `ferry run` made, sent once it has finished (no cluster: no status
to queue them in, so each is tried once and a failure is the caller's to report)."""

from __future__ import annotations

from datetime import datetime

from ferry.alerts.delivery import AlertNotSent, send
from ferry.alerts.message import AlertMessage
from ferry.alerts.outcomes import due, run_outcomes
from ferry.api.status import RunResult
from ferry.api.workflow import Alert
from ferry.engine.plan import Count
from ferry.secrets import SecretSource
from ferry.sync.outcome import RunOutcome


def send_run_alerts(alerts: list[Alert], outcome: RunOutcome, previous: RunResult | None,
                    secrets: SecretSource, started: datetime, finished: datetime
                    ) -> tuple[list[str], list[str]]:
    """(what was sent, why each other was not), one line each."""
    totals = outcome.totals()
    sent: list[str] = []
    failed: list[str] = []
    for alert, result in due(alerts, run_outcomes(outcome.result, totals[Count.NEW_CONFLICTS],
                                                  previous)):
        message = AlertMessage(
            alert=alert.name,
            workflow=outcome.workflow, namespace=None, run=outcome.run_id, outcome=result,
            result=outcome.result, message=outcome.message,
            counts={key.value: totals[key] for key in Count}, start_time=started,
            completion_time=finished)
        index = alerts.index(alert)
        try:
            send(alert, message, secrets, f"Workflow/{outcome.workflow}: spec.alerts[{index}]")
            sent.append(f"alert {alert.name} sent ({result})")
        except AlertNotSent as exc:
            failed.append(f"alert {alert.name} ({result}) not sent: {exc}")
    return sent, failed
