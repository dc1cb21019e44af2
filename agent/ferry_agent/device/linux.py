"""The Linux device backend: a Samba/winbind (or adcli/Kerberos) workstation's actions, for
real. Each action is one module's job (domain, credentials, reboot, reacl); this wires them
to the device's configuration."""

from __future__ import annotations

import platform
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ferry_agent.device.domain import (
    DomainJoinError,
    Membership,
    create_keytab,
    join_offline,
    join_with_password,
    pending_keytab,
    restore,
    test_join,
)
from ferry_agent.device.odj import OdjError
from ferry_agent.device.outcome import ActionOutcome, ReaclMode, ReaclScope, SidTable
from ferry_agent.device.reboot import notify
from ferry_agent.device.reboot import reboot as run_reboot

if TYPE_CHECKING:
    from ferry_agent.device.reacl import ReaclTargets

DEFAULT_STATE_DIR = Path("/var/lib/ferry-agent/device")
RESTART_TIMEOUT = 120.0


@dataclass(frozen=True)
class LinuxDeviceConfig:
    """What the [linux] section of the device INI says, plus the agent's state folder."""

    smb_conf: Path
    krb5_conf: Path = Path("/etc/krb5.conf")
    keytab: Path = Path("/etc/krb5.keytab")
    join_tool: str = "adcli"
    file_roots: tuple[Path, ...] = ()
    software_hive: Path | None = None
    profiles_root: Path | None = None
    reboot_command: tuple[str, ...] = ("systemctl", "reboot")
    notice_command: tuple[str, ...] = ()
    winbind_pid_file: Path | None = None
    # Run once the membership changed (a join, a rollback): winbindd reads its domain at start.
    restart_command: tuple[str, ...] = ()
    # 0700: the source's membership kept for a rollback, temporary secret files.
    state_dir: Path = DEFAULT_STATE_DIR

    @property
    def membership(self) -> Membership:
        return Membership(self.smb_conf, self.krb5_conf, self.keytab, self.state_dir)


class LinuxBackend:
    """DeviceBackend for a Linux workstation."""

    def __init__(self, config: LinuxDeviceConfig, stop: threading.Event | None = None):
        self.config = config
        self.stop = stop or threading.Event()   # set: a waiting reboot is called off

    # ReACL (ferry_agent.device.reacl, imported when used) ---------------------------------
    def reacl(self, table: SidTable, source_domain: str, mode: ReaclMode,
              scopes: Sequence[ReaclScope]) -> ActionOutcome:
        from ferry_agent.device.reacl import reacl

        return reacl(self._reacl_targets(), table, source_domain, mode, scopes)

    def undo_reacl(self, table: SidTable, source_domain: str, mode: ReaclMode,
                   scopes: Sequence[ReaclScope]) -> ActionOutcome:
        from ferry_agent.device.reacl import undo_reacl

        return undo_reacl(self._reacl_targets(), table, source_domain, mode, scopes)

    def _reacl_targets(self) -> ReaclTargets:
        from ferry_agent.device.reacl import ReaclTargets

        c = self.config
        return ReaclTargets(file_roots=c.file_roots, software_hive=c.software_hive,
                            profiles_root=c.profiles_root, smb_conf=c.smb_conf)

    # logons and membership -------------------------------------------------------------
    def cache_credentials(self, users: Sequence[str], timeout_seconds: float) -> ActionOutcome:
        from ferry_agent.device.credentials import Winbind, cache_credentials

        winbind = Winbind(self.config.smb_conf, self.config.winbind_pid_file)
        return cache_credentials(winbind, users, timeout_seconds, self._notify)

    def join(self, domain: str, domain_controller: str, computer_name: str,
             one_time_password: str) -> ActionOutcome:
        if self.config.join_tool != "adcli":
            return ActionOutcome(False, "a join with a staged one-time password goes through"
                                        " adcli: Samba's net ads join takes only an"
                                        " administrator's credentials; set join_tool = adcli")
        try:
            joined = join_with_password(self.config.membership, domain, domain_controller,
                                        computer_name, one_time_password)
        except DomainJoinError as exc:
            return ActionOutcome(False, f"DomainJoin: {exc}")
        restart = self._restart()
        if restart:
            return ActionOutcome(False, f"DomainJoin: joined {joined.domain}, but {restart}",
                                 {"domain": joined.domain, "dn": joined.dn})
        return ActionOutcome(True, f"joined {joined.domain} ({joined.workgroup}) as"
                                   f" {computer_name.upper()}; testjoin passes",
                             {"domain": joined.domain, "dn": joined.dn,
                              "seconds": round(joined.seconds, 2)})

    def offline_join(self, blob: bytes) -> ActionOutcome:
        try:
            joined = join_offline(self.config.membership, blob)
        except (DomainJoinError, OdjError) as exc:
            return ActionOutcome(False, f"OfflineDomainJoin: {exc}")
        restart = self._restart()
        if restart:
            return ActionOutcome(False, f"OfflineDomainJoin: applied for {joined.domain},"
                                        f" but {restart}", {"domain": joined.domain})
        return ActionOutcome(True, f"offline join to {joined.domain} ({joined.workgroup})"
                                   " applied; its keytab is made at the first start with"
                                   " network", {"domain": joined.domain,
                                                "seconds": round(joined.seconds, 2)})

    def resume(self) -> ActionOutcome | None:
        """An offline join's next-boot step, once the network is there: the keytab, made as
        the machine account, then winbindd restarted; None when nothing is pending."""
        machine = self.config.membership
        if pending_keytab(machine) is None:
            return None
        try:
            line = create_keytab(machine)
        except DomainJoinError as exc:
            return ActionOutcome(False, f"OfflineDomainJoin (next start): {exc}")
        restart = self._restart()
        if restart:
            return ActionOutcome(False, f"OfflineDomainJoin (next start): {line}, but {restart}")
        return ActionOutcome(True, f"OfflineDomainJoin (next start): {line}")

    def entra_join(self, package: bytes) -> ActionOutcome:
        return ActionOutcome(False, "EntraJoin needs a Windows device (a provisioning package"
                                    " with a bulk token); this is a Linux device")

    def rejoin_source(self, one_time_password: str = "",
                      domain_controller: str = "") -> ActionOutcome:
        """Restore the backed-up membership (it holds the source's machine password); if the
        source account's password changed since, join again with `one_time_password`."""
        machine = self.config.membership
        try:
            source = restore(machine)
        except DomainJoinError as exc:
            return ActionOutcome(False, f"rollback: {exc}")
        domain = source.get("realm", "").lower()
        dc = domain_controller or source.get("dc", "")
        try:
            line = test_join(machine, domain, dc)
        except DomainJoinError as exc:
            if not one_time_password:
                return ActionOutcome(False, _stale_source(source, domain, exc), {"domain": domain})
            try:
                join_with_password(machine, domain, dc, source.get("name", ""),
                                   one_time_password)
            except DomainJoinError as failed:
                return ActionOutcome(False, f"rollback: the restored {domain} membership"
                                            f" failed its test and joining again with the"
                                            f" one-time password failed too: {failed}",
                                     {"domain": domain})
            line = ("its password had changed, so joined again with the one-time password"
                    " staged on the source account; testjoin passes")
        restart = self._restart()
        if restart:
            return ActionOutcome(False, f"rollback: source membership restored, but {restart}",
                                 {"domain": domain})
        return ActionOutcome(True, f"source membership restored ({source.get('realm')}); {line}",
                             {"domain": domain})

    def reboot(self, delay_seconds: int, notice: str) -> ActionOutcome:
        return run_reboot(delay_seconds, notice, self.config.notice_command,
                          self.config.reboot_command, self.stop)

    def facts(self) -> dict[str, str]:
        facts = {"os": "linux", "osVersion": platform.release(), "host": socket.gethostname()}
        try:
            current = self.config.membership.current()
        except DomainJoinError:
            return facts
        return {**facts, "domain": current["realm"].lower(), "workgroup": current["workgroup"],
                "computerName": current["name"]}

    def _restart(self) -> str:
        """Run restart_command (if any) after the membership changed; "" or what failed."""
        command = self.config.restart_command
        if not command:
            return ""
        try:
            done = subprocess.run(list(command), capture_output=True, text=True, check=False,
                                  timeout=RESTART_TIMEOUT, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"restart_command {command[0]} failed ({type(exc).__name__})"
        if done.returncode != 0:
            return (f"restart_command exited {done.returncode}:"
                    f" {(done.stderr or done.stdout).strip()[-200:]}")
        return ""

    def _notify(self, text: str) -> None:
        notify(self.config.notice_command, text)


def _stale_source(source: dict[str, str], domain: str, error: DomainJoinError) -> str:
    """Why a restored membership fails its test, and the two ways out."""
    name = source.get("name", "") or "this computer"
    return (f"rollback: the source membership was restored but fails its test ({error}):"
            f" the machine password of {name}$ in {domain} changed since the move (staged"
            " again, or reset). Roll back with a one-time password staged on that account"
            " (RestoreSource carries it), or join again by hand: adcli join"
            f" --domain={domain} --login-user=<an admin of {domain}>")
