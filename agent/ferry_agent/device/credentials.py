"""Cached logons before a cutover: winbind's offline logon, and waiting until each listed
target user has logged on once (so they can log on while no target DC is reachable).

winbindd keeps a user's cached logon in winbindd_cache.tdb under the key CRED/<SID> once a
logon succeeded online with `winbind offline logon = yes`; only the keys are read here
(`tdbtool keys`), never the hashes. Users are named by sAMAccountName and found by SID with
`wbinfo -n`. When winbindd runs in a mount namespace of its own (its own /run/samba), wbinfo
runs in it too (nsenter), or it would ask another winbindd.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry_agent.device.domain import set_global, smb_parameter
from ferry_agent.device.outcome import ActionOutcome
from ferry_agent.errors import FerryAgentError

POLL_SECONDS = 2.0
_SID = re.compile(r"^(S-1-5-21-\d+-\d+-\d+-\d+)\s")
_CRED = re.compile(r"CRED/(S-1-5-21-[0-9-]+)")
_USER = re.compile(r"[^\"/\\\[\]:;|=,+*?<>@\s]{1,64}")


class CredentialsError(FerryAgentError):
    """Cached logons cannot be set up or read on this device."""


@dataclass(frozen=True)
class Winbind:
    """The workstation's winbindd: its smb.conf and pid file (None: not running here)."""

    smb_conf: Path
    pid_file: Path | None

    def pid(self) -> int | None:
        if self.pid_file is None:
            return None
        try:
            pid = int(self.pid_file.read_text(encoding="ascii").strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def command(self, *words: str) -> list[str]:
        """`words` run where winbindd's socket is: in its mount namespace if it has its own."""
        pid = self.pid()
        if pid is not None and _own_namespace(pid):
            return ["nsenter", "-m", "-t", str(pid), *words]
        return list(words)

    def cache_file(self) -> Path:
        # Samba 4.x keeps it in the state directory (it must survive a cache wipe).
        return Path(smb_parameter(self.smb_conf, "state directory")) / "winbindd_cache.tdb"


def cache_credentials(winbind: Winbind, users: Sequence[str], timeout_seconds: float,
                      notify: Callable[[str], None],
                      now: Callable[[], float] = time.monotonic,
                      wait: Callable[[float], None] = time.sleep) -> ActionOutcome:
    """Turn offline logons on, ask the users to log on once, and wait (up to the timeout)
    until each has a cached logon."""
    bad = [u for u in users if not _USER.fullmatch(u)]
    if bad:
        return ActionOutcome(False, f"users: {bad[0]!r} is not a sAMAccountName")
    if not users:
        return ActionOutcome(True, "no users to cache", {"cached": [], "missing": []})
    if winbind.pid() is None:
        return ActionOutcome(False, "winbindd is not running (winbind_pid_file"
                                    f" {winbind.pid_file}); start it, then retry")
    _enable_offline_logon(winbind)
    sids = {user: _sid_of(winbind, user) for user in users}
    unknown = sorted(u for u, sid in sids.items() if not sid)
    if unknown:
        return ActionOutcome(False, f"not found in the domain: {', '.join(unknown)}",
                             {"cached": [], "missing": unknown})
    notify("Before this computer moves to its new domain, please log on to it once as: "
           + ", ".join(users))
    deadline = now() + timeout_seconds
    while True:
        cached = _cached_sids(winbind)
        missing = sorted(u for u, sid in sids.items() if sid not in cached)
        if not missing or now() >= deadline:
            break
        wait(min(POLL_SECONDS, max(0.0, deadline - now())))
    done = sorted(u for u in users if u not in missing)
    details = {"cached": done, "missing": missing}
    if missing:
        return ActionOutcome(False, f"no cached logon after {timeout_seconds:.0f} s for:"
                                    f" {', '.join(missing)}", details)
    return ActionOutcome(True, f"cached logons for {', '.join(done)}", details)


def cached_users(winbind: Winbind, users: Sequence[str]) -> list[str]:
    """Which of `users` have a cached logon now."""
    cached = _cached_sids(winbind)
    return [u for u in users if _sid_of(winbind, u) in cached]


def _enable_offline_logon(winbind: Winbind) -> None:
    if smb_parameter(winbind.smb_conf, "winbind offline logon").lower() in ("yes", "true"):
        return
    set_global(winbind.smb_conf, {"winbind offline logon": "yes"})
    subprocess.run(winbind.command("smbcontrol", "-s", str(winbind.smb_conf), "winbindd",
                                   "reload-config"),
                   capture_output=True, check=False, timeout=30)


def _sid_of(winbind: Winbind, user: str) -> str:
    done = subprocess.run(winbind.command("wbinfo", "-n", user), capture_output=True,
                          text=True, check=False, timeout=30)
    found = _SID.match(done.stdout.strip()) if done.returncode == 0 else None
    return found.group(1) if found else ""


def _cached_sids(winbind: Winbind) -> set[str]:
    cache = winbind.cache_file()
    if not cache.is_file():
        return set()
    done = subprocess.run(["tdbtool", str(cache), "keys"], capture_output=True, text=True,
                          check=False, timeout=30)
    if done.returncode != 0:
        raise CredentialsError(f"{cache}: tdbtool cannot read it ({done.stderr.strip()})")
    return set(_CRED.findall(done.stdout))


def _own_namespace(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False
