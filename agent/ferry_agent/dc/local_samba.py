"""The Samba DC this agent runs on, reached through its own database, not LDAP.

Samba's Python bindings exist only for the distribution's interpreter (Debian: python3-samba
under /usr/bin/python3), and the agent runs on its own Python, so the agent never imports
them: it runs samba_backend.py with Samba's interpreter (backend_process.py: isolated, JSON
lines over its stdin and stdout, nothing on the command line but the script's path).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from ..backend_process import BackendProcess
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


class BackendExchange(BackendProcess):
    """One run of the backend: the database opened once, then targets one by one (an open
    transaction is cancelled by the backend as it exits)."""

    def __init__(self, python: str, smb_conf: Path, timeout: float):
        self.smb_conf = smb_conf
        try:
            super().__init__(python, BACKEND, timeout)
        except OSError as exc:
            raise LocalDcError("backend", f"cannot run Samba's Python {python!r}: {exc};"
                               " install python3-samba (Debian) or name the interpreter"
                               ) from None

    def refused(self, kind: str, message: str) -> LocalDcError:
        return LocalDcError(kind, f"{self.smb_conf}: {message}")

    def ended(self, code: int | None, stderr: str) -> LocalDcError:
        if code is not None and code < 0:
            return LocalDcError("timeout", f"{self.smb_conf}: Samba's database gave no answer"
                                f" within {self.timeout:.0f}s")
        return LocalDcError("backend", f"{self.smb_conf}: the Samba backend ended (exit {code})"
                            + (f": {stderr}" if stderr else ""))
