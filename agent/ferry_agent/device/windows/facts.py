"""What a Windows device reports with each runbook poll: its names, its domain and its
computer object's DN. Everything but the DN is read locally (GetComputerNameExW,
NetGetJoinInformation), so facts come even with no DC in reach; DsGetDcNameW is not used for
that reason. The DN (GetComputerObjectNameW) needs a DC and is left out when none answers.
"""

from __future__ import annotations

import ctypes

from .membership import membership
from .win32 import DWORD, Win32, Win32Error

# COMPUTER_NAME_FORMAT
COMPUTER_NAME_NETBIOS, COMPUTER_NAME_DNS_HOSTNAME, COMPUTER_NAME_DNS_DOMAIN = 0, 1, 2
NAME_FULLY_QUALIFIED_DN = 1   # EXTENDED_NAME_FORMAT
ERROR_MORE_DATA = 234
ERROR_INSUFFICIENT_BUFFER = 122


def computer_name(win32: Win32, kind: int) -> str:
    """GetComputerNameExW(kind): nSize is in characters and grows to what Windows needs."""
    size = DWORD(256)
    while True:
        buffer = ctypes.create_unicode_buffer(size.value)
        if win32.fn("GetComputerNameExW")(kind, buffer, ctypes.byref(size)):
            return buffer.value
        code = win32.last_error()
        if code != ERROR_MORE_DATA:
            raise Win32Error("GetComputerNameExW", code, f"name format {kind}")


def computer_dn(win32: Win32) -> str:
    """The computer object's DN from a DC of its domain (GetComputerObjectNameW)."""
    size = ctypes.c_uint32(1024)
    while True:
        buffer = ctypes.create_unicode_buffer(size.value)
        if win32.fn("GetComputerObjectNameW")(NAME_FULLY_QUALIFIED_DN, buffer,
                                                ctypes.byref(size)):
            return buffer.value
        code = win32.last_error()
        if code not in (ERROR_MORE_DATA, ERROR_INSUFFICIENT_BUFFER):
            raise Win32Error("GetComputerObjectNameW", code, "NameFullyQualifiedDN")


def device_facts(win32: Win32) -> dict[str, str]:
    member = membership(win32)
    facts = {"os": "windows", "computerName": computer_name(win32, COMPUTER_NAME_NETBIOS),
             "dnsHostName": computer_name(win32, COMPUTER_NAME_DNS_HOSTNAME),
             "domain": computer_name(win32, COMPUTER_NAME_DNS_DOMAIN) if member.joined else "",
             "netbiosDomain": member.name if member.joined else "",
             "workgroup": "" if member.joined else member.name}
    if member.joined:
        try:
            facts["computerDn"] = computer_dn(win32)
        except Win32Error as exc:
            facts["computerDnError"] = str(exc)
    return facts
