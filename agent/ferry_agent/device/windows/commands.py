"""The few programs the Windows backend starts (PowerShell, dsregcmd, msg), always by full
path under %SystemRoot% and as an argument list, never through a shell; no secret is ever
one of their arguments (files only SYSTEM can read carry those)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PureWindowsPath


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    stdout: str
    stderr: str


Runner = Callable[[Sequence[str], float], CommandResult]


def run(argv: Sequence[str], timeout: float) -> CommandResult:
    """Run `argv` and wait for it; a program that cannot start or hangs is returncode -1."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return CommandResult(-1, "", str(exc))
    return CommandResult(done.returncode, done.stdout, done.stderr)


def system_program(*parts: str, system_root: str | None = None) -> str:
    """%SystemRoot%\\System32\\<parts>: not looked up in PATH, which a user could prepend to."""
    root = system_root or os.environ.get("SYSTEMROOT", "C:\\Windows")
    return str(PureWindowsPath(root, "System32", *parts))


def powershell(command: str, system_root: str | None = None) -> list[str]:
    return [system_program("WindowsPowerShell", "v1.0", "powershell.exe",
                           system_root=system_root),
            "-NoLogo", "-NoProfile", "-NonInteractive", "-Command", command]


def ps_quote(text: str) -> str:
    """A PowerShell single-quoted string: nothing inside is expanded; ' is doubled."""
    return "'" + text.replace("'", "''") + "'"
