"""The servers alerts go to in tests, each a real process on loopback: an SMTP submission
server (aiosmtpd, STARTTLS and AUTH) and an HTTP server for webhooks; both save what they
receive in a folder the test reads."""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.support.pki import CertificateAuthority

HOST = "127.0.0.1"
RECEIVERS = Path(__file__).parent / "receivers"


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int
    ca_file: Path
    user: str
    password: str
    folder: Path

    def messages(self) -> list[EmailMessage]:
        return [email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
                for p in sorted(self.folder.glob("*.eml"), key=lambda p: int(p.stem))]


@dataclass(frozen=True)
class WebhookServer:
    url: str
    folder: Path

    def requests(self) -> list[dict[str, Any]]:
        found = []
        for path in sorted(self.folder.glob("*.json"), key=lambda p: int(p.stem)):
            request = json.loads(path.read_text())
            request["body"] = base64.b64decode(request["body"])
            found.append(request)
        return found

    def answer_with(self, status: int) -> None:
        (self.folder / "answer").write_text(str(status))


@contextmanager
def smtp_server(folder: Path, user: str = "alerts", password: str = "s3cret-smtp"
                ) -> Iterator[SmtpServer]:
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.create("Ferry alerts test CA")
    cert, key = ca.issue_server(HOST, folder)
    port = _free_port()
    saved = folder / "mail"
    saved.mkdir()
    with _process([str(RECEIVERS / "smtp_server.py"), HOST, str(port), str(cert), str(key),
                   user, password, str(saved)]):
        yield SmtpServer(HOST, port, ca.write(folder / "ca.pem"), user, password, saved)


@contextmanager
def webhook_server(folder: Path) -> Iterator[WebhookServer]:
    saved = folder / "hooks"
    saved.mkdir(parents=True)
    with _process([str(RECEIVERS / "webhook_server.py"), HOST, str(saved)]) as ready:
        yield WebhookServer(f"http://{HOST}:{ready.split()[1]}/hooks/ferry", saved)


@contextmanager
def _process(args: list[str]) -> Iterator[str]:
    process = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the server prints "ready" once it listens
        assert line.startswith("ready"), f"{args[0]} did not start (exit {process.poll()})"
        yield line.strip()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port
