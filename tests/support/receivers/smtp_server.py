"""A real SMTP submission server for tests (aiosmtpd, run as its own process): STARTTLS
required before AUTH, one login allowed, each message saved as <folder>/<n>.eml.

usage: smtp_server.py HOST PORT CERT KEY USER PASSWORD FOLDER
"""

from __future__ import annotations

import signal
import ssl
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


def main() -> None:
    host, port, cert, key, user, password, folder = sys.argv[1:8]
    saved = Path(folder)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    def authenticate(server: Any, session: Session, envelope: Envelope, mechanism: str,
                     data: Any) -> AuthResult:
        ok = (isinstance(data, LoginPassword) and data.login.decode() == user
              and data.password.decode() == password)
        return AuthResult(success=ok, handled=False)

    class Save:
        async def handle_DATA(self, server: Any, session: Session,
                              envelope: Envelope) -> str:
            number = len(list(saved.glob("*.eml")))
            tmp = saved / f"{number}.tmp"
            tmp.write_bytes(envelope.original_content or b"")
            tmp.rename(saved / f"{number}.eml")
            return "250 OK"

    controller = Controller(Save(), hostname=host, port=int(port), tls_context=context,
                            require_starttls=True, auth_require_tls=True,
                            authenticator=authenticate, auth_exclude_mechanism=["CRAM-MD5"],
                            server_hostname=host)
    controller.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
