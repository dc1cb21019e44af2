"""Which outcomes a run has, the queue in status, the payload, the e-mail text, the signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from ferry.alerts.attempts import KEPT, attempt_due, attempted, queue
from ferry.alerts.delivery import signature
from ferry.alerts.message import AlertMessage, payload, subject, text
from ferry.alerts.outcomes import run_outcomes
from ferry.api.status import AlertDelivery, AlertState, RunCounts, RunResult, RunSummary
from ferry.api.workflow import Alert, AlertOutcome, SmtpServer

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
F, R, S, N = (AlertOutcome.FAILED, AlertOutcome.RECOVERED, AlertOutcome.SUCCEEDED,
              AlertOutcome.NEW_CONFLICTS)


def webhook(name: str, on: list[str] | None = None) -> Alert:
    body: dict[str, object] = {"name": name, "webhook": {
        "url": "https://hooks.example/x", "signingKey": {"env": "KEY"}}}
    if on is not None:
        body["on"] = on
    return Alert.model_validate(body)


def test_outcomes_of_a_run() -> None:
    assert run_outcomes(RunResult.FAILED, 0, RunResult.SUCCEEDED) == [F]
    assert run_outcomes(RunResult.THRESHOLD_HIT, 2, None) == [AlertOutcome.THRESHOLD_HIT, N]
    assert run_outcomes(RunResult.SUCCEEDED, 0, RunResult.FAILED) == [S, R]
    # The first run ever, or one after a success, has not recovered from anything.
    assert run_outcomes(RunResult.SUCCEEDED, 0, None) == [S]
    assert run_outcomes(RunResult.SUCCEEDED, 0, RunResult.SUCCEEDED) == [S]
    assert run_outcomes(RunResult.COMPLETED_WITH_ERRORS, 0, RunResult.FAILED) == [
        AlertOutcome.COMPLETED_WITH_ERRORS]


def test_queue_adds_pending_per_alert_and_outcome_once() -> None:
    run = RunSummary(id="r2", result=RunResult.SUCCEEDED, counts=RunCounts(new_conflicts=1))
    alerts = [webhook("ops"), webhook("all", ["Succeeded", "Failed"])]
    queued = queue([], alerts, run, RunResult.FAILED)
    # Succeeded is off by default; "all" hears only of Succeeded and Failed.
    assert [(d.alert, d.outcome, d.state) for d in queued] == [
        ("ops", N, AlertState.PENDING), ("ops", R, AlertState.PENDING),
        ("all", S, AlertState.PENDING)]
    assert queue(queued, alerts, run, RunResult.FAILED) == queued  # recorded twice: once


def test_queue_keeps_the_newest() -> None:
    old = [AlertDelivery(alert="ops", run=f"r{i}", outcome="Failed", state=AlertState.SENT)
           for i in range(KEPT)]
    queued = queue(old, [webhook("ops")], RunSummary(id="new", result=RunResult.FAILED), None)
    assert len(queued) == KEPT
    assert queued[0].run == "new" and queued[-1].run == f"r{KEPT - 2}"


def test_attempts_back_off_then_fail() -> None:
    pending = AlertDelivery(alert="ops", run="r", outcome="Failed", state=AlertState.PENDING)
    assert attempt_due(pending, NOW)
    first = attempted(pending, "refused", NOW)
    assert (first.state, first.attempts) == (AlertState.PENDING, 1)
    assert not attempt_due(first, NOW + timedelta(seconds=29))
    assert attempt_due(first, NOW + timedelta(seconds=30))
    second = attempted(first, "refused", NOW + timedelta(seconds=30))
    assert not attempt_due(second, NOW + timedelta(seconds=149))
    third = attempted(second, "refused again", NOW + timedelta(seconds=150))
    assert (third.state, third.attempts, third.message) == (AlertState.FAILED, 3,
                                                             "refused again")
    assert not attempt_due(third, NOW + timedelta(days=1))
    sent = attempted(pending, None, NOW)
    assert sent.state == AlertState.SENT and not attempt_due(sent, NOW + timedelta(days=1))


MESSAGE = AlertMessage(
    alert="ops", workflow="ad-to-ad", namespace="t1",
    run="r1", outcome="Failed", result="Failed", message="LDAP server down",
    counts={"created": 0, "errors": 3}, start_time=NOW, completion_time=NOW + timedelta(1))


def test_payload_and_email_text() -> None:
    document = json.loads(payload(MESSAGE))
    assert document == {
        "id": "r1.Failed.ops", "alert": "ops", "workflow": "ad-to-ad", "namespace": "t1",
        "run": "r1", "outcome": "Failed", "result": "Failed", "message": "LDAP server down",
        "counts": {"created": 0, "errors": 3}, "startTime": "2026-12-02T10:00:00Z",
        "completionTime": "2026-12-03T10:00:00Z"}
    assert subject(MESSAGE) == "[Ferry] Workflow t1/ad-to-ad failed (run r1)"
    body = text(MESSAGE)
    assert "LDAP server down" in body and "errors: 3" in body and "created" not in body


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = payload(MESSAGE)
    expected = hmac.new(b"k3y", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature(b"k3y", "1700000000", body) == f"sha256={expected}"
    assert signature(b"other", "1700000000", body) != f"sha256={expected}"
    assert signature(b"k3y", "1700000001", body) != f"sha256={expected}"


def test_smtp_login_needs_starttls_and_both_halves() -> None:
    password = {"secretKeyRef": {"name": "smtp", "key": "password"}}
    with pytest.raises(ValidationError, match="set startTLS: true"):
        SmtpServer.model_validate({"host": "mail", "startTLS": False, "username": "u",
                                   "password": password})
    with pytest.raises(ValidationError, match="both username and password"):
        SmtpServer.model_validate({"host": "mail", "username": "u"})
    assert SmtpServer.model_validate({"host": "mail", "username": "u",
                                      "password": password}).start_tls
