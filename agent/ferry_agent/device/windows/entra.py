"""Entra join from a provisioning package (a bulk enrollment token inside): the package in a
file only SYSTEM can read, Install-ProvisioningPackage, the file removed, then dsregcmd
/status polled until it says AzureAdJoined : YES (the join completes in the background)."""

from __future__ import annotations

import contextlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ferry_agent.sid import parse_sid

from ..descriptor import SE_DACL_PRESENT, Ace, Acl, SecurityDescriptor, build_descriptor
from ..outcome import ActionOutcome
from .commands import Runner, powershell, ps_quote, system_program
from .security import SE_DACL_PROTECTED, write_file_security
from .win32 import Win32

LOCAL_SYSTEM = "S-1-5-18"
FILE_ALL_ACCESS = 0x001F01FF
ACCESS_ALLOWED_ACE_TYPE = 0x00
ACL_REVISION = 2
MAX_PACKAGE = 100 << 20
_STATUS_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True)
class EntraSettings:
    install_timeout: float = 600.0     # Install-ProvisioningPackage
    join_timeout: float = 600.0        # until dsregcmd shows the join
    poll_seconds: float = 15.0
    system_root: str | None = None


def system_only_descriptor() -> bytes:
    """Owner SYSTEM, a protected DACL granting SYSTEM alone: not inherited from the folder."""
    system = parse_sid(LOCAL_SYSTEM)
    return build_descriptor(SecurityDescriptor(
        control=SE_DACL_PRESENT | SE_DACL_PROTECTED, owner=system, group=system,
        dacl=Acl(ACL_REVISION, (Ace(ACCESS_ALLOWED_ACE_TYPE, 0, FILE_ALL_ACCESS, system),))))


def install_command(package: Path, system_root: str | None = None) -> list[str]:
    return powershell(f"Install-ProvisioningPackage -PackagePath {ps_quote(str(package))}"
                      " -ForceInstall -QuietInstall", system_root)


def dsreg_status(text: str) -> dict[str, str]:
    """dsregcmd /status's "Name : VALUE" lines (its section headers have no colon)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = _STATUS_LINE.match(line)
        if match:
            found.setdefault(match.group(1), match.group(2))
    return found


def entra_join(win32: Win32, run: Runner, package: bytes, folder: Path,
               settings: EntraSettings, clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep) -> ActionOutcome:
    if not package or len(package) > MAX_PACKAGE:
        return ActionOutcome(False, f"EntraJoin: the provisioning package is {len(package)}"
                             f" bytes (expected 1 to {MAX_PACKAGE}); stage it again")
    status_command = [system_program("dsregcmd.exe", system_root=settings.system_root),
                      "/status"]
    before = dsreg_status(run(status_command, 60).stdout)
    if before.get("AzureAdJoined", "").upper() == "YES":
        return ActionOutcome(True, "EntraJoin: already joined to Entra ID",
                             {"tenantName": before.get("TenantName", "")})
    path = folder / f"entra-{secrets.token_hex(8)}.ppkg"
    try:
        # Created empty, made SYSTEM's alone, and only then given the token-bearing package.
        path.touch(exist_ok=False)
        write_file_security(win32, str(path), system_only_descriptor())
        path.write_bytes(package)
        installed = run(install_command(path, settings.system_root), settings.install_timeout)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if installed.returncode != 0:
        return ActionOutcome(False, "EntraJoin: Install-ProvisioningPackage failed (exit"
                             f" {installed.returncode}): {_last_line(installed.stderr)}")
    deadline = clock() + settings.join_timeout
    while True:
        status = dsreg_status(run(status_command, 60).stdout)
        if status.get("AzureAdJoined", "").upper() == "YES":
            return ActionOutcome(True, "EntraJoin: joined to Entra ID",
                                 {"tenantName": status.get("TenantName", ""),
                                  "deviceId": status.get("DeviceId", "")})
        if clock() >= deadline:
            return ActionOutcome(False, "EntraJoin: the package is installed but dsregcmd"
                                 " /status still shows AzureAdJoined :"
                                 f" {status.get('AzureAdJoined', '(missing)')} after"
                                 f" {settings.join_timeout:.0f} s; check the bulk token's"
                                 " expiry and the device's access to login.microsoftonline.com")
        sleep(settings.poll_seconds)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no message"
