"""[linux] of the device agent's INI as one typed value: config.py reads it from the INI,
linux.py acts on it (with the agent's state folder, which comes from --state-dir)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LinuxSettings:
    """Where a Linux workstation keeps its domain membership, files and hives, and the
    commands the agent runs there."""

    smb_conf: Path
    krb5_conf: Path = Path("/etc/krb5.conf")
    keytab: Path = Path("/etc/krb5.keytab")
    join_tool: str = "adcli"
    file_roots: tuple[Path, ...] = ()
    software_hive: Path | None = None
    profiles_root: Path | None = None
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    notice_command: tuple[str, ...] = ()        # run with the notice text as last argument
    winbind_pid_file: Path | None = None
    # Run once the membership changed (a join, a rollback): winbindd reads its domain at start.
    restart_command: tuple[str, ...] = ()
