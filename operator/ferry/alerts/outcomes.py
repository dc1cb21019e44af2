"""Which alert outcomes a finished run has, and which alerts they send. Pure."""

from __future__ import annotations

from ferry.api.status import RunResult
from ferry.api.workflow import Alert, AlertOutcome

_RESULT_OUTCOME = {
    RunResult.SUCCEEDED: AlertOutcome.SUCCEEDED,
    RunResult.FAILED: AlertOutcome.FAILED,
    RunResult.THRESHOLD_HIT: AlertOutcome.THRESHOLD_HIT,
    RunResult.COMPLETED_WITH_ERRORS: AlertOutcome.COMPLETED_WITH_ERRORS,
}


def run_outcomes(result: RunResult, new_conflicts: int,
                 previous: RunResult | None) -> list[AlertOutcome]:
    """The outcomes of a finished run: its result, NewConflicts, and Recovered when it
    succeeded and the workflow's previous finished run (None: there was none) did not."""
    outcomes = [_RESULT_OUTCOME[result]] if result in _RESULT_OUTCOME else []
    if new_conflicts > 0:
        outcomes.append(AlertOutcome.NEW_CONFLICTS)
    if result == RunResult.SUCCEEDED and previous is not None and previous != result:
        outcomes.append(AlertOutcome.RECOVERED)
    return outcomes


def due(alerts: list[Alert], outcomes: list[AlertOutcome]) -> list[tuple[Alert, AlertOutcome]]:
    """Each (alert, outcome) to send: one per alert and outcome it is on for."""
    return [(alert, outcome) for alert in alerts for outcome in outcomes if outcome in alert.on]


def delivery_id(run_id: str, outcome: str, alert: str) -> str:
    """The idempotency id of one alert about one run's outcome: a receiver drops a repeat."""
    return f"{run_id}.{outcome}.{alert}"
