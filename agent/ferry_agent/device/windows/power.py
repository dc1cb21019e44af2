"""Reboot with a notice: InitiateSystemShutdownExW, not `shutdown /r /t N /c notice`. The call
needs no program and no command line (the notice is free text: nothing to quote), its answer
is a Win32 error Ferry can name, and the planned-reconfiguration reason goes to the event log.
"""

from __future__ import annotations

from ferry_agent.errors import FerryAgentError

from .privileges import SE_SHUTDOWN, enabled
from .win32 import Win32, Win32Error

SHTDN_REASON_MAJOR_OPERATINGSYSTEM = 0x00020000
SHTDN_REASON_MINOR_RECONFIG = 0x00000004
SHTDN_REASON_FLAG_PLANNED = 0x80000000
REBOOT_REASON = (SHTDN_REASON_MAJOR_OPERATINGSYSTEM | SHTDN_REASON_MINOR_RECONFIG
                 | SHTDN_REASON_FLAG_PLANNED)
MAX_SHUTDOWN_TIMEOUT = 10 * 365 * 24 * 3600   # winreg.h's limit, in seconds
MAX_NOTICE = 512                              # what the shutdown dialog's comment holds
ERROR_SHUTDOWN_IS_SCHEDULED = 1190


class RebootRefused(FerryAgentError, ValueError):
    """A delay or notice InitiateSystemShutdownExW would not take (nothing was scheduled)."""


def reboot(win32: Win32, delay_seconds: int, notice: str) -> bool:
    """Schedule the restart; False when one is scheduled already (a repeat after a crash).
    Open applications are not forced closed: a user with unsaved work is asked."""
    if not 0 <= delay_seconds <= MAX_SHUTDOWN_TIMEOUT:
        raise RebootRefused(f"Reboot: rebootDelaySeconds {delay_seconds} is outside 0 to"
                            f" {MAX_SHUTDOWN_TIMEOUT}")
    if len(notice) > MAX_NOTICE or "\0" in notice:
        raise RebootRefused(f"Reboot: the notice is {len(notice)} characters; Windows shows up"
                            f" to {MAX_NOTICE}, without NUL")
    with enabled(win32, [SE_SHUTDOWN]):
        fn = win32.fn("InitiateSystemShutdownExW")
        if fn(None, notice or None, delay_seconds, False, True, REBOOT_REASON):
            return True
        code = win32.last_error()
        if code == ERROR_SHUTDOWN_IS_SCHEDULED:
            return False
        raise Win32Error("InitiateSystemShutdownExW", code, f"a restart in {delay_seconds} s")
