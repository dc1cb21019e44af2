"""WindowsBackend: the device actions on a Windows workstation, by contract (see the modules
of this package for each call). Importable anywhere; the DLLs are bound at the first action.
The agent runs as LocalSystem: the privileges and files it relies on are SYSTEM's.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ferry_agent.errors import FerryAgentError

from ..descriptor import DescriptorError, SidMap
from ..figures import MAX_REPORTED_ERRORS, ReaclFigures
from ..outcome import MAX_REPORTED_SIDS, ActionOutcome, ReaclMode, ReaclScope, SidTable
from . import commands, entra, facts, logons, membership, power, privileges
from .local_groups import DEFAULT_GROUPS, translate_groups
from .profiles import ProfileFigures, reacl_profiles, restore_profiles
from .security import reacl_keys, reacl_tree, split_key
from .win32 import Win32, Win32Error

log = logging.getLogger("ferry_agent.device.windows")
BACKUP_FILE = "windows-source-membership.json"


@dataclass(frozen=True)
class WindowsSettings:
    """What ReACL covers and where the agent keeps its state (a folder only SYSTEM reads)."""

    state_dir: Path = Path("C:/ProgramData/Ferry/device")
    file_roots: tuple[Path, ...] = ()
    registry_keys: tuple[str, ...] = ()          # e.g. HKLM\SOFTWARE\Contoso
    local_groups: tuple[str, ...] = DEFAULT_GROUPS
    system_root: str = field(default_factory=lambda: os.environ.get("SYSTEMROOT", "C:\\Windows"))
    entra: entra.EntraSettings = field(default_factory=entra.EntraSettings)


class WindowsBackend:
    """DeviceBackend for Windows: each action returns an ActionOutcome, never raises for a
    Windows failure (the message names the call and its Win32 error)."""

    def __init__(self, settings: WindowsSettings | None = None, win32: Win32 | None = None,
                 run: commands.Runner = commands.run,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.settings = settings or WindowsSettings()
        self._win32, self.run, self.clock, self.sleep = win32, run, clock, sleep

    @property
    def win32(self) -> Win32:
        if self._win32 is None:
            self._win32 = Win32.load()
        return self._win32

    # -- ReACL --------------------------------------------------------------------------------
    def reacl(self, table: SidTable, source_domain: str, mode: ReaclMode,
              scopes: Sequence[ReaclScope]) -> ActionOutcome:
        return self._translate(table, source_domain, mode, scopes, undo=False)

    def undo_reacl(self, table: SidTable, source_domain: str, mode: ReaclMode,
                   scopes: Sequence[ReaclScope]) -> ActionOutcome:
        """A replace is translated back (target -> source); add kept the source SIDs, so only
        ProfileList is restored; remove dropped entries that cannot come back."""
        return self._translate(table, source_domain, mode, scopes, undo=True)

    def _translate(self, table: SidTable, source_domain: str, mode: ReaclMode,
                   scopes: Sequence[ReaclScope], *, undo: bool) -> ActionOutcome:
        action = "Rollback ReACL" if undo else "ReACL"
        try:
            mode = ReaclMode(mode)
            forward = SidMap(table)
            sid_map = forward.inverted() if undo else forward
            keys = [split_key(key) for key in self.settings.registry_keys]
        except (DescriptorError, ValueError) as exc:
            return ActionOutcome(False, f"{action}: {exc}")
        translate = not undo or mode is ReaclMode.REPLACE
        details: dict[str, Any] = {}
        seen: list[ReaclFigures] = []
        win32 = self.win32
        try:
            with privileges.enabled(win32, privileges.REACL_PRIVILEGES):
                for scope in scopes:
                    figures = ReaclFigures()
                    seen.append(figures)
                    if scope is ReaclScope.PROFILES:
                        counts = ProfileFigures()
                        if undo:
                            restore_profiles(win32, forward, counts, figures, translate)
                        else:
                            reacl_profiles(win32, forward, mode, source_domain, counts, figures)
                        details["profiles"] = counts.details(figures)
                        continue
                    if not translate:
                        details[_KEYS[scope]] = {"skipped": f"nothing to undo after {mode}"}
                        continue
                    run_mode = ReaclMode.REPLACE if undo else mode
                    # Translating back, target-domain SIDs are the "source": none is reported.
                    domain = "" if undo else source_domain
                    if scope is ReaclScope.FILES:
                        for root in self.settings.file_roots:
                            reacl_tree(win32, root, sid_map, run_mode, domain, figures)
                    elif scope is ReaclScope.REGISTRY:
                        for root_key, path in keys:
                            reacl_keys(win32, root_key, path, sid_map, run_mode, domain, figures)
                    else:
                        translate_groups(win32, self.settings.local_groups, sid_map, run_mode,
                                         domain, figures)
                    details[_KEYS[scope]] = figures.details()
        except Win32Error as exc:
            return ActionOutcome(False, f"{action}: {exc}", details)
        unmatched = sorted(set().union(*(f.unmatched for f in seen)))
        errors = [message for f in seen for message in f.errors][:MAX_REPORTED_ERRORS]
        error_count = sum(f.error_count for f in seen)
        details["unmatched"] = unmatched[:MAX_REPORTED_SIDS]
        details["errors"] = errors
        changed = sum(f.changed for f in seen)
        scanned = sum(f.scanned for f in seen)
        return ActionOutcome(error_count == 0, f"{action} ({mode}): {changed} of {scanned}"
                             f" changed, {len(unmatched)} source SID(s) not in the table,"
                             f" {error_count} error(s)", details)

    # -- domain membership --------------------------------------------------------------------
    def join(self, domain: str, domain_controller: str, computer_name: str,
             one_time_password: str) -> ActionOutcome:
        try:
            request = membership.JoinRequest(domain, domain_controller)
            if not one_time_password:
                raise membership.JoinRefused("DomainJoin: no one-time password was staged")
            return self._move("DomainJoin", request.domain, computer_name,
                              lambda: membership.join(self.win32, request, one_time_password),
                              f"joined {domain} through {domain_controller}")
        except (membership.JoinRefused, Win32Error) as exc:
            return ActionOutcome(False, f"DomainJoin: {exc}")

    def offline_join(self, blob: bytes) -> ActionOutcome:
        try:
            membership.provision_data(blob)     # refused before anything changes
            return self._move("OfflineDomainJoin", "", "",
                              lambda: membership.request_offline_join(
                                  self.win32, blob, self.settings.system_root),
                              "offline join blob applied; the join completes at the next"
                              " restart")
        except (membership.JoinRefused, Win32Error) as exc:
            return ActionOutcome(False, f"OfflineDomainJoin: {exc}")

    def _move(self, action: str, domain: str, computer_name: str, enter: Callable[[], None],
              done: str) -> ActionOutcome:
        """Back up where the computer is, leave it (account kept), then `enter` the target."""
        win32 = self.win32
        local = facts.computer_name(win32, facts.COMPUTER_NAME_NETBIOS)
        if computer_name and computer_name.upper() != local.upper():
            return ActionOutcome(False, f"{action}: the staged account is {computer_name}$ but"
                                 f" this computer is {local}; rename one of them, then retry")
        current = membership.membership(win32)
        if domain and current.joined and self._dns_domain().lower() == domain.lower():
            return ActionOutcome(True, f"{action}: already joined to {domain}")
        self._back_up(current)
        left = ""
        if current.joined:
            log.info("%s: leaving %s (its computer account kept)", action, current.name)
            membership.unjoin(win32)
            left = current.name
        try:
            enter()
        except Win32Error as exc:
            stranded = (f"; the device left {left} (its account kept) and is in a workgroup"
                        " now: retry the device, or roll it back") if left else ""
            return ActionOutcome(False, f"{action}: {exc}{stranded}", {"left": left})
        return ActionOutcome(True, f"{action}: {done}", {"left": left})

    def rejoin_source(self, one_time_password: str = "",
                      domain_controller: str = "") -> ActionOutcome:
        """Rollback: join the source again. Windows forgets a domain's machine password when
        it leaves, so this takes a one-time password staged on the kept source account."""
        backup = self._backup()
        if backup is None:
            return ActionOutcome(False, "Rollback: no source membership was backed up on this"
                                 " device (it was not moved by Ferry); nothing to restore")
        domain = backup.get("dnsDomain") or backup.get("domain", "")
        if not one_time_password:
            return ActionOutcome(False, f"Rollback: re-joining {domain} on Windows needs a"
                                 " one-time password staged on the kept source computer"
                                 " account; none was given (the gateway stages it for a"
                                 " rollback)")
        try:
            request = membership.JoinRequest(domain, domain_controller)
            outcome = self._move("Rollback", domain, "", lambda: membership.join(
                self.win32, request, one_time_password), f"joined {domain} again")
        except (membership.JoinRefused, Win32Error) as exc:
            return ActionOutcome(False, f"Rollback: {exc}")
        if outcome.ok:
            (self.settings.state_dir / BACKUP_FILE).unlink(missing_ok=True)
        return outcome

    def _dns_domain(self) -> str:
        return facts.computer_name(self.win32, facts.COMPUTER_NAME_DNS_DOMAIN)

    def _back_up(self, current: membership.Membership) -> None:
        """Kept from the first move on: a retry after leaving must not record the workgroup."""
        path = self.settings.state_dir / BACKUP_FILE
        if path.exists() or not current.joined:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {"domain": current.name, "dnsDomain": self._dns_domain(),
                  "computerName": facts.computer_name(self.win32, facts.COMPUTER_NAME_NETBIOS)}
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(record), encoding="utf-8")
        os.replace(temporary, path)

    def _backup(self) -> dict[str, str] | None:
        try:
            data = json.loads((self.settings.state_dir / BACKUP_FILE).read_text("utf-8"))
        except (OSError, ValueError):
            return None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None

    # -- the rest -----------------------------------------------------------------------------
    def entra_join(self, package: bytes) -> ActionOutcome:
        try:
            return entra.entra_join(self.win32, self.run, package, self.settings.state_dir,
                                    self.settings.entra, self.clock, self.sleep)
        except (Win32Error, OSError) as exc:
            return ActionOutcome(False, f"EntraJoin: {exc}")

    def cache_credentials(self, users: Sequence[str], timeout_seconds: float) -> ActionOutcome:
        """No waiting: Windows gives the agent no way to see a given user's cached logon."""
        try:
            return logons.cache_credentials(self.win32, self.run, users,
                                            self.settings.system_root)
        except Win32Error as exc:
            return ActionOutcome(False, f"CacheCredentials: {exc}")

    def reboot(self, delay_seconds: int, notice: str) -> ActionOutcome:
        try:
            scheduled = power.reboot(self.win32, delay_seconds, notice)
        except (power.RebootRefused, Win32Error) as exc:
            return ActionOutcome(False, f"Reboot: {exc}")
        if not scheduled:
            return ActionOutcome(True, "Reboot: a restart was scheduled already")
        return ActionOutcome(True, f"Reboot: restart in {delay_seconds} s, users notified",
                             {"delaySeconds": delay_seconds})

    def resume(self) -> ActionOutcome | None:
        """Nothing: Windows completes an offline join itself at the next restart."""
        return None

    def facts(self) -> dict[str, str]:
        try:
            return facts.device_facts(self.win32)
        except (Win32Error, FerryAgentError) as exc:
            return {"os": "windows", "factsError": str(exc)}


_KEYS = {ReaclScope.FILES: "files", ReaclScope.REGISTRY: "registry",
         ReaclScope.PROFILES: "profiles", ReaclScope.LOCAL_GROUPS: "localGroups"}
