"""Alerts delivered to real servers on loopback: an aiosmtpd process (STARTTLS, AUTH) and an
HTTP server process; the tests read what they received."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.alert_receivers import SmtpServer, WebhookServer, smtp_server, webhook_server

from ferry.alerts.delivery import AlertNotSent, send
from ferry.alerts.message import AlertMessage
from ferry.api.workflow import Alert
from ferry.secrets import SecretResolver

MESSAGE = AlertMessage(alert="ops",
                       workflow="ad-to-ad", namespace=None, run="run-7", outcome="Failed",
                       result="Failed", message="LDAP server down", counts={"errors": 2})
WHERE = "Workflow/ad-to-ad: spec.alerts[0]"


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path_factory.mktemp("smtp")) as server:
        yield server


@pytest.fixture()
def hooks(tmp_path: Path) -> Iterator[WebhookServer]:
    with webhook_server(tmp_path) as server:
        yield server


def email_alert(smtp: SmtpServer, password_file: Path) -> Alert:
    return Alert.model_validate({"name": "ops", "email": {
        "to": ["oncall@example.test", "it@example.test"], "from": "ferry@example.test",
        "smtp": {"host": smtp.host, "port": smtp.port, "username": smtp.user,
                 "password": {"file": str(password_file)}, "caFile": str(smtp.ca_file)}}})


def test_email_over_starttls_with_login(smtp: SmtpServer, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(smtp.password + "\n")
    before = len(smtp.messages())
    send(email_alert(smtp, password), MESSAGE, SecretResolver(), WHERE)
    mail = smtp.messages()[before]  # saved before the server answered 250
    assert mail["Subject"] == "[Ferry] Workflow ad-to-ad failed (run run-7)"
    assert mail["To"] == "oncall@example.test, it@example.test"
    assert mail["Message-ID"] == "<run-7.Failed.ops@example.test>"
    body = mail.get_content()
    assert "LDAP server down" in body and "errors: 2" in body


def test_email_refused_login_names_the_fields_not_the_password(smtp: SmtpServer,
                                                               tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("not-the-password")
    before = len(smtp.messages())
    with pytest.raises(AlertNotSent) as refused:
        send(email_alert(smtp, password), MESSAGE, SecretResolver(), WHERE)
    assert f"{WHERE}: SMTP server {smtp.host}:{smtp.port} refused the login" in str(refused.value)
    assert "email.smtp.username and password" in str(refused.value)
    assert "not-the-password" not in str(refused.value)
    assert len(smtp.messages()) == before


def test_email_needs_the_servers_ca(smtp: SmtpServer, tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text(smtp.password)
    body = email_alert(smtp, password).model_dump(by_alias=True, exclude_none=True)
    del body["email"]["smtp"]["caFile"]  # the system's CAs do not know the test CA
    alert = Alert.model_validate(body)
    with pytest.raises(AlertNotSent, match="CERTIFICATE_VERIFY_FAILED"):
        send(alert, MESSAGE, SecretResolver(), WHERE)


def test_missing_password_file_is_named(smtp: SmtpServer, tmp_path: Path) -> None:
    with pytest.raises(AlertNotSent, match=r"spec.alerts\[0\].email.smtp.password"):
        send(email_alert(smtp, tmp_path / "absent"), MESSAGE, SecretResolver(), WHERE)


def test_webhook_is_signed_and_carries_its_id(hooks: WebhookServer, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("whsec-123")
    alert = Alert.model_validate({"name": "ops", "webhook": {
        "url": hooks.url, "signingKey": {"file": str(key)}}})
    send(alert, MESSAGE, SecretResolver(), WHERE)
    [received] = hooks.requests()
    headers, body = received["headers"], received["body"]
    assert received["path"] == "/hooks/ferry"
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Ferry-Delivery"] == "run-7.Failed.ops"
    signed = headers["X-Ferry-Timestamp"].encode() + b"." + body
    expected = hmac.new(b"whsec-123", signed, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-Ferry-Signature"], f"sha256={expected}")
    document = json.loads(body)
    assert (document["id"], document["outcome"], document["message"]) == (
        "run-7.Failed.ops", "Failed", "LDAP server down")
    assert b"whsec-123" not in body and "whsec-123" not in json.dumps(headers)


def test_webhook_error_answer_fails_the_delivery(hooks: WebhookServer, tmp_path: Path
                                                 ) -> None:
    key = tmp_path / "key"
    key.write_text("whsec-123")
    hooks.answer_with(503)
    alert = Alert.model_validate({"name": "ops", "webhook": {
        "url": hooks.url + "?token=receiver-secret", "signingKey": {"file": str(key)}}})
    with pytest.raises(AlertNotSent) as failed:
        send(alert, MESSAGE, SecretResolver(), WHERE)
    assert "webhook at 127.0.0.1" in str(failed.value) and "503" in str(failed.value)
    assert "receiver-secret" not in str(failed.value)
