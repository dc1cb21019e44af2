"""The Linux device backend: a Samba/winbind (or adcli/Kerberos) workstation's actions, for
real. Each action is one module's job (domain, credentials, reboot, reacl); this wires them
to the device's [linux] settings (linux_settings.py)."""

from __future__ import annotations

import platform
import socket
import subprocess
import threading
from collections.abc import Sequence
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
from ferry_agent.device.linux_settings import LinuxSettings
from ferry_agent.device.odj import OdjError
from ferry_agent.device.outcome import ActionOutcome, ReaclMode, ReaclScope, SidTable
from ferry_agent.device.reboot import notify
from ferry_agent.device.reboot import reboot as run_reboot

if TYPE_CHECKING:
    from ferry_agent.device.reacl import ReaclTargets

RESTART_TIMEOUT = 120.0


class LinuxBackend:
    """DeviceBackend for a Linux workstation."""

    def __init__(self, settings: LinuxSettings, state_dir: Path,
                 stop: threading.Event | None = None):
        """`state_dir` (0700) keeps the source's membership for a rollback and temporary
        secret files."""
        self.settings = settings
        self.membership = Membership(settings.smb_conf, settings.krb5_conf, settings.keytab,
                                     state_dir)
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

        c = self.settings
        return ReaclTargets(file_roots=c.file_roots, software_hive=c.software_hive,
                            profiles_root=c.profiles_root, smb_conf=c.smb_conf)

    # logons and membership -------------------------------------------------------------
    def cache_credentials(self, users: Sequence[str], timeout_seconds: float) -> ActionOutcome:
        from ferry_agent.device.credentials import Winbind, cache_credentials

        winbind = Winbind(self.settings.smb_conf, self.settings.winbind_pid_file)
        return cache_credentials(winbind, users, timeout_seconds, self._notify)

    def join(self, domain: str, domain_controller: str, computer_name: str,
             one_time_password: str) -> ActionOutcome:
        if self.settings.join_tool != "adcli":
            return ActionOutcome(False, "a join with a staged one-time password goes through"
                                        " adcli: Samba's net ads join takes only an"
                                        " administrator's credentials; set join_tool = adcli")
        try:
            joined = join_with_password(self.membership, domain, domain_controller,
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
            joined = join_offline(self.membership, blob)
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
        machine = self.membership
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
        machine = self.membership
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
        return run_reboot(delay_seconds, notice, self.settings.notice_command,
                          self.settings.reboot_command, self.stop)

    def facts(self) -> dict[str, str]:
        facts = {"os": "linux", "osVersion": platform.release(), "host": socket.gethostname()}
        try:
            current = self.membership.current()
        except DomainJoinError:
            return facts
        return {**facts, "domain": current["realm"].lower(), "workgroup": current["workgroup"],
                "computerName": current["name"]}

    def _restart(self) -> str:
        """Run restart_command (if any) after the membership changed; "" or what failed."""
        command = self.settings.restart_command
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
        notify(self.settings.notice_command, text)


def _stale_source(source: dict[str, str], domain: str, error: DomainJoinError) -> str:
    """Why a restored membership fails its test, and the two ways out."""
    name = source.get("name", "") or "this computer"
    return (f"rollback: the source membership was restored but fails its test ({error}):"
            f" the machine password of {name}$ in {domain} changed since the move (staged"
            " again, or reset). Roll back with a one-time password staged on that account"
            " (RestoreSource carries it), or join again by hand: adcli join"
            f" --domain={domain} --login-user=<an admin of {domain}>")
