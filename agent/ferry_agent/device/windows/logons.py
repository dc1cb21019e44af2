"""Cached logons on Windows, and what the agent can and cannot do about them.

Windows caches a domain logon (MSCache) itself, at the user's interactive logon while a DC
of their domain answers, if policy allows any: Winlogon's CachedLogonsCount ("Interactive
logon: number of previous logons to cache", 10 by default, 0 disables it). The agent cannot
cache on a user's behalf (that takes their password). Nor does it check whether a given user
is cached: the entries live in HKLM\\SECURITY\\Cache encrypted with the LSA secret NL$KM, and
reading them is credential-dumping; Ferry will not. So it checks the policy, asks the
logged-on users to log on once with their target account, and says that per user the
result is unverified.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

from ..outcome import ActionOutcome
from .commands import Runner, system_program
from .security import HKEY_LOCAL_MACHINE
from .win32 import DWORD, Win32

WINLOGON = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Winlogon"
RRF_RT_REG_SZ = 0x00000002
ERROR_FILE_NOT_FOUND = 2
WINDOWS_DEFAULT_CACHED_LOGONS = 10
NOTICE_SECONDS = 3600


def cached_logons_count(win32: Win32) -> int:
    """CachedLogonsCount (a REG_SZ holding a number); unset is Windows' default of 10."""
    size = DWORD(64)
    buffer = ctypes.create_string_buffer(size.value)
    code = win32.status("RegGetValueW", HKEY_LOCAL_MACHINE, WINLOGON, "CachedLogonsCount",
                        RRF_RT_REG_SZ, None, buffer, ctypes.byref(size),
                        subject=f"HKLM\\{WINLOGON}\\CachedLogonsCount",
                        ok=(0, ERROR_FILE_NOT_FOUND))
    if code == ERROR_FILE_NOT_FOUND:
        return WINDOWS_DEFAULT_CACHED_LOGONS
    text = buffer.raw[:size.value].decode("utf-16-le").rstrip("\0").strip()
    return int(text) if text.isdigit() else 0


def notice_command(text: str, system_root: str | None = None) -> list[str]:
    """msg.exe to every session on this computer, shown for an hour."""
    return [system_program("msg.exe", system_root=system_root), "*",
            f"/TIME:{NOTICE_SECONDS}", text]


def cache_credentials(win32: Win32, run: Runner, users: Sequence[str],
                      system_root: str | None = None) -> ActionOutcome:
    count = cached_logons_count(win32)
    details: dict[str, object] = {"cachedLogonsCount": count, "cached": [],
                                  "unverified": list(users)}
    if count == 0:
        return ActionOutcome(False, "CacheCredentials: CachedLogonsCount is 0 in"
                             f" HKLM\\{WINLOGON}, so Windows caches no domain logon; set the"
                             " policy 'Interactive logon: Number of previous logons to cache'"
                             " to 1 or more (10 is Windows' default), then retry", details)
    notice = ("Your computer is moving to a new domain. Please sign out, then sign in once"
              " with your new account while you are on the company network.")
    shown = run(notice_command(notice, system_root), 30)
    details["notified"] = shown.returncode == 0
    if shown.returncode != 0:
        details["noticeError"] = (shown.stderr or shown.stdout).strip()[:300]
    return ActionOutcome(True, f"CacheCredentials: Windows caches up to {count} logons;"
                         f" {len(users)} user(s) asked to sign in once with their target"
                         " account. Whether each is cached is not verified: Windows keeps the"
                         " cache encrypted in HKLM\\SECURITY\\Cache and Ferry does not read it",
                         details)
