"""Errors raised by the directory library: one per failed object or failed connection.

Messages carry the DN (or host), the operation and what the server said. They never carry
attribute values, so a password sent in an add can never surface in an error or a log line.
"""

from __future__ import annotations

from typing import Any

from ferry_agent.errors import FerryAgentError


class DirectoryError(FerryAgentError):
    """An LDAP operation on one object failed; the connection stays usable."""

    def __init__(self, dn: str, operation: str, code: int, message: str, description: str = ""):
        self.dn = dn
        self.operation = operation
        self.code = code
        self.message = message
        self.description = description
        super().__init__(str(self))

    def __str__(self) -> str:
        what = f"{self.description} ({self.code})" if self.description else f"code {self.code}"
        detail = f": {self.message}" if self.message else ""
        return f'{self.operation} "{self.dn}" failed: {what}{detail}'


class DirectoryConnectionError(FerryAgentError):
    """Connecting or binding to a directory server failed."""

    def __init__(self, host: str, port: int, reason: str):
        self.host = host
        self.port = port
        self.reason = reason
        super().__init__(f"cannot connect to {host}:{port}: {reason}")


class WatermarkError(FerryAgentError):
    """A delta watermark cannot be used against this server: do a full read instead."""


def result_error(result: dict[str, Any] | None, dn: str, operation: str) -> DirectoryError:
    """Build a DirectoryError from an ldap3 result dict."""
    result = result or {}
    return DirectoryError(
        dn=dn,
        operation=operation,
        code=int(result.get("result", -1)),
        message=str(result.get("message") or "").strip(),
        description=str(result.get("description") or ""),
    )
