"""Privileges enabled in the agent's token for the span of one action, then put back as they
were (AdjustTokenPrivileges with the PreviousState it returned, as Microsoft documents)."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from .win32 import DWORD, HANDLE, TOKEN_PRIVILEGES, Win32, Win32Error

TOKEN_ADJUST_PRIVILEGES = 0x0020
TOKEN_QUERY = 0x0008
SE_PRIVILEGE_ENABLED = 0x00000002
ERROR_NOT_ALL_ASSIGNED = 1300

SE_BACKUP = "SeBackupPrivilege"            # read any file and key, load hives
SE_RESTORE = "SeRestorePrivilege"          # write any owner and DACL, load hives
SE_TAKE_OWNERSHIP = "SeTakeOwnershipPrivilege"
SE_SHUTDOWN = "SeShutdownPrivilege"
REACL_PRIVILEGES = (SE_RESTORE, SE_TAKE_OWNERSHIP, SE_BACKUP)


@contextmanager
def enabled(win32: Win32, names: Sequence[str]) -> Iterator[None]:
    """Enable `names` in the process token; a privilege the token lacks (the agent does not
    run as LocalSystem) is a Win32Error before anything is touched."""
    if not 0 < len(names) <= len(TOKEN_PRIVILEGES().Privileges):
        raise ValueError(f"between 1 and 4 privileges at once, not {len(names)}")
    token = HANDLE()
    win32.true("OpenProcessToken", win32.fn("GetCurrentProcess")(),
               TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY, ctypes.byref(token))
    try:
        wanted = TOKEN_PRIVILEGES(PrivilegeCount=len(names))
        for index, name in enumerate(names):
            win32.true("LookupPrivilegeValueW", None, name,
                       ctypes.byref(wanted.Privileges[index].Luid), subject=name)
            wanted.Privileges[index].Attributes = SE_PRIVILEGE_ENABLED
        previous, size = TOKEN_PRIVILEGES(), DWORD()
        adjust = win32.fn("AdjustTokenPrivileges")
        if not adjust(token, False, ctypes.byref(wanted), ctypes.sizeof(previous),
                      ctypes.byref(previous), ctypes.byref(size)):
            raise Win32Error("AdjustTokenPrivileges", win32.last_error(), ", ".join(names))
        try:
            # Success can still mean "not all": the token lacks one of them (documented).
            if win32.last_error() == ERROR_NOT_ALL_ASSIGNED:
                raise Win32Error("AdjustTokenPrivileges", ERROR_NOT_ALL_ASSIGNED,
                                 ", ".join(names))
            yield
        finally:
            win32.true("AdjustTokenPrivileges", token, False, ctypes.byref(previous), 0, None,
                       None, subject="restoring " + ", ".join(names))
    finally:
        win32.fn("CloseHandle")(token)
