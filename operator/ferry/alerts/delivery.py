"""Send one alert over its channel: a signed webhook POST or an e-mail over SMTP."""

from __future__ import annotations

import hashlib
import hmac
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import formatdate

from ferry.alerts.message import AlertMessage, payload, subject, text
from ferry.api.base import ValueSource
from ferry.api.workflow import Alert, EmailChannel, WebhookChannel
from ferry.errors import FerryError
from ferry.secrets import SecretError, SecretSource

# One attempt never holds its caller longer than this per network step.
TIMEOUT_SECONDS = 10.0

SIGNATURE_HEADER = "X-Ferry-Signature"
TIMESTAMP_HEADER = "X-Ferry-Timestamp"
DELIVERY_HEADER = "X-Ferry-Delivery"


class AlertNotSent(FerryError):
    """An alert could not be delivered; the message names the alert and why, never a secret."""


def alert_secrets(alerts: list[Alert], where: str) -> Iterator[tuple[ValueSource, str]]:
    """(source, where) of every secret the alerts use; `where` is e.g. "Workflow/x: spec"."""
    for index, alert in enumerate(alerts):
        field = f"{where}.alerts[{index}]"
        if alert.webhook is not None:
            yield alert.webhook.signing_key, f"{field}.webhook.signingKey"
        if alert.email is not None and alert.email.smtp.password is not None:
            yield alert.email.smtp.password, f"{field}.email.smtp.password"


def send(alert: Alert, message: AlertMessage, secrets: SecretSource, where: str) -> None:
    """Deliver the alert once; AlertNotSent says why it was not. `where` names the alert's
    field (e.g. "Workflow/x: spec.alerts[0]") in errors."""
    try:
        if alert.webhook is not None:
            key = secrets.resolve(alert.webhook.signing_key, f"{where}.webhook.signingKey")
            post_webhook(alert.webhook, message, key.encode("utf-8"), where)
        elif alert.email is not None:
            smtp = alert.email.smtp
            password = (secrets.resolve(smtp.password, f"{where}.email.smtp.password")
                        if smtp.password is not None else None)
            send_email(alert.email, message, password, where)
    except SecretError as exc:
        raise AlertNotSent(str(exc)) from None


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", as the X-Ferry-Signature header carries it:
    signing the timestamp too lets a receiver refuse an old body replayed."""
    digest = hmac.new(key, timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def post_webhook(channel: WebhookChannel, message: AlertMessage, key: bytes,
                 where: str) -> None:
    body = payload(message)
    timestamp = str(int(time.time()))
    request = urllib.request.Request(channel.url, data=body, method="POST", headers={
        "Content-Type": "application/json",
        "User-Agent": "ferry-alerts",
        SIGNATURE_HEADER: signature(key, timestamp, body),
        TIMESTAMP_HEADER: timestamp,
        DELIVERY_HEADER: message.id,
    })
    # The URL's path and query may hold a token of the receiver's: errors name the host only.
    host = urllib.parse.urlsplit(channel.url).netloc
    context = _tls(channel.ca_file, f"{where}.webhook.caFile")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS, context=context) as answer:
            answer.read(4096)
    except urllib.error.HTTPError as exc:
        raise AlertNotSent(f"{where}: webhook at {host} answered {exc.code} {exc.reason}"
                           ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise AlertNotSent(f"{where}: webhook at {host} not reached: {reason}") from None


def send_email(channel: EmailChannel, message: AlertMessage, password: str | None,
               where: str) -> None:
    smtp = channel.smtp
    mail = EmailMessage()
    mail["From"] = channel.from_address
    mail["To"] = ", ".join(channel.to)
    mail["Subject"] = subject(message)
    mail["Date"] = formatdate(localtime=False)
    # The same id on every attempt: a repeat after a crash is one thread to the reader.
    domain = channel.from_address.rpartition("@")[2] or "ferry.invalid"
    mail["Message-ID"] = f"<{message.id}@{domain}>"
    mail["X-Ferry-Delivery"] = message.id
    mail.set_content(text(message))
    server = f"{where}: SMTP server {smtp.host}:{smtp.port}"
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=TIMEOUT_SECONDS) as client:
            client.ehlo()
            if smtp.start_tls:
                client.starttls(context=_tls(smtp.ca_file, f"{where}.email.smtp.caFile"))
                client.ehlo()
            if smtp.username is not None and password is not None:
                client.login(smtp.username, password)
            client.send_message(mail)
    except smtplib.SMTPAuthenticationError as exc:
        raise AlertNotSent(f"{server} refused the login of {smtp.username!r}"
                           f" ({exc.smtp_code}); check email.smtp.username and password"
                           ) from None
    except smtplib.SMTPNotSupportedError:
        raise AlertNotSent(f"{server} offers no STARTTLS; use a submission port that does"
                           ) from None
    except smtplib.SMTPResponseException as exc:
        raise AlertNotSent(f"{server} answered {exc.smtp_code} {_said(exc.smtp_error)}"
                           ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise AlertNotSent(f"{server} refused the recipients"
                           f" {', '.join(sorted(exc.recipients))}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise AlertNotSent(f"{server} not reached: {exc}") from None


def _said(error: bytes | str) -> str:
    return (error.decode("utf-8", "replace") if isinstance(error, bytes) else error)[:200]


def _tls(ca_file: str | None, where: str) -> ssl.SSLContext:
    """The system's trust store, or only caFile's CAs when it is set."""
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise AlertNotSent(f"{where}: cannot read CA bundle {ca_file}: {exc}") from None
