"""The Samba DC this agent runs on, reached through its own database, not LDAP.

Samba's Python bindings exist only for the distribution's interpreter (Debian: python3-samba
under /usr/bin/python3), and the agent runs on its own Python, so the agent never imports
them: it runs samba_backend.py with Samba's interpreter, isolated (-I), and talks JSON lines
over its stdin and stdout. Nothing goes on the command line but the script's path.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from ..errors import FerryAgentError

BACKEND = Path(__file__).with_name("samba_backend.py")
DEFAULT_SMB_CONF = Path("/etc/samba/smb.conf")
DEFAULT_TIMEOUT = 120.0  # for each answer of the backend; generous, as the DC may be busy


class LocalDcError(FerryAgentError):
    """The DC's database could not be used, or refused the change; the message says which."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def samba_python() -> str:
    """The interpreter samba-tool runs with (it has Samba's bindings); /usr/bin/python3 else."""
    tool = shutil.which("samba-tool")
    if tool:
        with open(tool, "rb") as handle:
            first = handle.readline().decode("utf-8", "replace")[2:].split()
        if first and first[0].endswith("/env") and len(first) > 1:
            return shutil.which(first[1]) or first[1]
        if first:
            return first[0]
    return "/usr/bin/python3"


@dataclass(frozen=True)
class LocalSambaDc:
    """A Samba AD DC on this machine: its smb.conf and the Python that has its bindings."""

    smb_conf: Path = DEFAULT_SMB_CONF
    python: str = ""  # "": samba_python()
    timeout: float = DEFAULT_TIMEOUT

    def exchange(self) -> BackendExchange:
        """Start the backend; use it as a context manager so it always ends."""
        if not self.smb_conf.is_file():
            raise LocalDcError("config", f"{self.smb_conf}: no such smb.conf; name the DC's"
                               " smb.conf (samba -b | grep CONFIGFILE shows the default)")
        backend = BackendExchange(self.python or samba_python(), self.smb_conf, self.timeout)
        try:
            backend.call({"smbConf": str(self.smb_conf)})
        except BaseException:
            backend.close()
            raise
        return backend


class BackendExchange:
    """One run of the backend: the database opened once, then targets one by one."""

    def __init__(self, python: str, smb_conf: Path, timeout: float):
        self.smb_conf = smb_conf
        try:
            self._process = subprocess.Popen(
                [python, "-I", str(BACKEND)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True, encoding="utf-8",
            )
        except OSError as exc:
            raise LocalDcError("backend", f"cannot run Samba's Python {python!r}: {exc};"
                               " install python3-samba (Debian) or name the interpreter"
                               ) from None
        self._timeout = timeout

    def __enter__(self) -> BackendExchange:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the exchange (an open transaction is cancelled by the backend as it exits)."""
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
        try:
            self._process.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one JSON line, read the answer line; an error answer is a LocalDcError."""
        self.send(message)
        return self.receive()

    def send(self, message: dict[str, Any]) -> None:
        stdin = _stream(self._process.stdin)
        try:
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        except OSError:
            raise self._failure() from None

    def receive(self) -> dict[str, Any]:
        # Watchdog: a DC that holds its database lock forever must not hang the agent.
        timer = threading.Timer(self._timeout, self._process.kill)
        timer.daemon = True
        timer.start()
        try:
            line = _stream(self._process.stdout).readline()
        finally:
            timer.cancel()
        if not line:
            raise self._failure()
        answer = json.loads(line)
        if not answer.get("ok"):
            error = answer.get("error") or {}
            raise LocalDcError(str(error.get("kind", "backend")),
                               f"{self.smb_conf}: {error.get('message', 'failed')}")
        return dict(answer)

    def _failure(self) -> LocalDcError:
        """The backend ended without answering: its stderr tail says why."""
        stderr = _stream(self._process.stderr).read()[-2000:].strip()
        try:
            code = self._process.wait(timeout=self._timeout)
        except subprocess.TimeoutExpired:
            code = None
        if code is not None and code < 0:
            return LocalDcError("timeout", f"{self.smb_conf}: Samba's database gave no answer"
                                f" within {self._timeout:.0f}s")
        return LocalDcError("backend", f"{self.smb_conf}: the Samba backend ended (exit {code})"
                            + (f": {stderr}" if stderr else ""))


def _stream(stream: IO[str] | None) -> IO[str]:
    assert stream is not None  # Popen with PIPE always sets it
    return stream
