"""The Win32 calls the Windows backend makes, by contract: each function's documented C
prototype as ctypes types, the DLLs bound only when called, and every failure as a
Win32Error naming the call and the error. Nothing here loads a DLL on import.

Fixed-width types, not ctypes.wintypes: on Linux (where the contract tests run) c_ulong is
64 bits, and a DWORD or a TOKEN_PRIVILEGES laid out with it would not be Windows' layout.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ferry_agent.errors import FerryAgentError

DWORD = ctypes.c_uint32
LONG = ctypes.c_int32
BOOL = ctypes.c_int32
BOOLEAN = ctypes.c_ubyte
HANDLE = ctypes.c_void_p      # HANDLE, HKEY, PSID, PACL, PSECURITY_DESCRIPTOR, PVOID
LPCWSTR = ctypes.c_wchar_p    # also LPWSTR in parameters Windows does not write to
PDWORD = ctypes.POINTER(DWORD)
PHANDLE = ctypes.POINTER(HANDLE)  # also the LPBYTE* / PSECURITY_DESCRIPTOR* Windows allocates
PBYTE = ctypes.POINTER(ctypes.c_ubyte)


class LUID(ctypes.Structure):
    _fields_ = [("LowPart", DWORD), ("HighPart", LONG)]


class LUID_AND_ATTRIBUTES(ctypes.Structure):  # Windows names, as in winnt.h
    _fields_ = [("Luid", LUID), ("Attributes", DWORD)]


class TOKEN_PRIVILEGES(ctypes.Structure):
    """With room for the few privileges one action enables at once."""

    _fields_ = [("PrivilegeCount", DWORD), ("Privileges", LUID_AND_ATTRIBUTES * 4)]


PTOKEN_PRIVILEGES = ctypes.POINTER(TOKEN_PRIVILEGES)
PLUID = ctypes.POINTER(LUID)

# Each function: its DLL, return type and parameter types, as learn.microsoft.com documents
# them (winreg.h, aclapi.h, lmjoin.h, lmaccess.h, securitybaseapi.h, sysinfoapi.h, secext.h).
PROTOTYPES: dict[str, tuple[str, Any, tuple[Any, ...]]] = {
    # privileges
    "OpenProcessToken": ("advapi32", BOOL, (HANDLE, DWORD, PHANDLE)),
    "LookupPrivilegeValueW": ("advapi32", BOOL, (LPCWSTR, LPCWSTR, PLUID)),
    "AdjustTokenPrivileges": ("advapi32", BOOL, (HANDLE, BOOL, PTOKEN_PRIVILEGES, DWORD,
                                                 PTOKEN_PRIVILEGES, PDWORD)),
    "GetCurrentProcess": ("kernel32", HANDLE, ()),
    "CloseHandle": ("kernel32", BOOL, (HANDLE,)),
    "LocalFree": ("kernel32", HANDLE, (HANDLE,)),
    # file security (SE_OBJECT_TYPE is an enum: int)
    "GetNamedSecurityInfoW": ("advapi32", DWORD, (LPCWSTR, ctypes.c_int, DWORD, PHANDLE,
                                                  PHANDLE, PHANDLE, PHANDLE, PHANDLE)),
    "SetNamedSecurityInfoW": ("advapi32", DWORD, (LPCWSTR, ctypes.c_int, DWORD, HANDLE, HANDLE,
                                                  HANDLE, HANDLE)),
    "GetSecurityDescriptorLength": ("advapi32", DWORD, (HANDLE,)),
    # registry (HKEY handles are pointer-sized; LSTATUS is a LONG)
    "RegOpenKeyExW": ("advapi32", LONG, (HANDLE, LPCWSTR, DWORD, DWORD, PHANDLE)),
    "RegCreateKeyExW": ("advapi32", LONG, (HANDLE, LPCWSTR, DWORD, LPCWSTR, DWORD, DWORD,
                                           HANDLE, PHANDLE, PDWORD)),
    "RegCloseKey": ("advapi32", LONG, (HANDLE,)),
    "RegEnumKeyExW": ("advapi32", LONG, (HANDLE, DWORD, LPCWSTR, PDWORD, PDWORD, LPCWSTR,
                                         PDWORD, HANDLE)),
    "RegGetKeySecurity": ("advapi32", LONG, (HANDLE, DWORD, HANDLE, PDWORD)),
    "RegSetKeySecurity": ("advapi32", LONG, (HANDLE, DWORD, HANDLE)),
    "RegLoadKeyW": ("advapi32", LONG, (HANDLE, LPCWSTR, LPCWSTR)),
    "RegUnLoadKeyW": ("advapi32", LONG, (HANDLE, LPCWSTR)),
    "RegGetValueW": ("advapi32", LONG, (HANDLE, LPCWSTR, LPCWSTR, DWORD, PDWORD, HANDLE,
                                        PDWORD)),
    "RegSetValueExW": ("advapi32", LONG, (HANDLE, LPCWSTR, DWORD, DWORD, PBYTE, DWORD)),
    "RegCopyTreeW": ("advapi32", LONG, (HANDLE, LPCWSTR, HANDLE)),
    "RegRenameKey": ("advapi32", LONG, (HANDLE, LPCWSTR, LPCWSTR)),
    "RegDeleteTreeW": ("advapi32", LONG, (HANDLE, LPCWSTR)),
    # local groups (servername NULL: this computer)
    "LookupAccountSidW": ("advapi32", BOOL, (LPCWSTR, HANDLE, LPCWSTR, PDWORD, LPCWSTR, PDWORD,
                                             PDWORD)),
    "NetLocalGroupGetMembers": ("netapi32", DWORD, (LPCWSTR, LPCWSTR, DWORD, PHANDLE, DWORD,
                                                    PDWORD, PDWORD, ctypes.POINTER(
                                                        ctypes.c_size_t))),
    "NetLocalGroupAddMembers": ("netapi32", DWORD, (LPCWSTR, LPCWSTR, DWORD, PBYTE, DWORD)),
    "NetLocalGroupDelMembers": ("netapi32", DWORD, (LPCWSTR, LPCWSTR, DWORD, PBYTE, DWORD)),
    "NetApiBufferFree": ("netapi32", DWORD, (HANDLE,)),
    # domain membership
    "NetJoinDomain": ("netapi32", DWORD, (LPCWSTR, LPCWSTR, LPCWSTR, LPCWSTR, LPCWSTR, DWORD)),
    "NetUnjoinDomain": ("netapi32", DWORD, (LPCWSTR, LPCWSTR, LPCWSTR, DWORD)),
    "NetRequestOfflineDomainJoin": ("netapi32", DWORD, (PBYTE, DWORD, DWORD, LPCWSTR)),
    "NetGetJoinInformation": ("netapi32", DWORD, (LPCWSTR, PHANDLE, ctypes.POINTER(
        ctypes.c_int))),
    # facts and reboot
    "GetComputerNameExW": ("kernel32", BOOL, (ctypes.c_int, LPCWSTR, PDWORD)),
    "GetComputerObjectNameW": ("secur32", BOOLEAN, (ctypes.c_int, LPCWSTR,
                                                    ctypes.POINTER(ctypes.c_uint32))),
    "InitiateSystemShutdownExW": ("advapi32", BOOL, (LPCWSTR, LPCWSTR, DWORD, BOOL, BOOL,
                                                     DWORD)),
}

# winerror.h / lmerr.h: the codes these calls document, each with what the admin can do.
ERRORS: dict[int, tuple[str, str]] = {
    2: ("ERROR_FILE_NOT_FOUND", "the file or key does not exist"),
    3: ("ERROR_PATH_NOT_FOUND", "the path does not exist"),
    5: ("ERROR_ACCESS_DENIED", "run the device agent as LocalSystem (or an administrator)"),
    32: ("ERROR_SHARING_VIOLATION", "another process holds the file open (a logged-on user's"
         " hive?): have the user log off, then retry"),
    50: ("ERROR_NOT_SUPPORTED", "this Windows edition does not support the operation"),
    87: ("ERROR_INVALID_PARAMETER", "a parameter is wrong: report it as a Ferry bug"),
    122: ("ERROR_INSUFFICIENT_BUFFER", "the buffer was too small"),
    234: ("ERROR_MORE_DATA", "more data is available"),
    740: ("ERROR_ELEVATION_REQUIRED", "run the device agent elevated, as LocalSystem"),
    1115: ("ERROR_SHUTDOWN_IN_PROGRESS", "a shutdown is already under way"),
    1190: ("ERROR_SHUTDOWN_IS_SCHEDULED", "a shutdown is already scheduled"),
    1300: ("ERROR_NOT_ALL_ASSIGNED", "the agent's account does not hold the privilege: run it as"
           " LocalSystem"),
    1313: ("ERROR_NO_SUCH_PRIVILEGE", "the privilege name is unknown to this Windows"),
    1314: ("ERROR_PRIVILEGE_NOT_HELD", "the agent's account does not hold the privilege: run it"
           " as LocalSystem"),
    1326: ("ERROR_LOGON_FAILURE", "the one-time password does not match the staged computer"
           " account: stage it again (retry the device)"),
    1332: ("ERROR_NONE_MAPPED", "the SID names no account this computer can resolve"),
    1355: ("ERROR_NO_SUCH_DOMAIN", "no DC of the domain answered: check DNS and the network"
           " path to the domain controller"),
    1376: ("ERROR_NO_SUCH_ALIAS", "the local group does not exist"),
    1377: ("ERROR_MEMBER_NOT_IN_ALIAS", "not a member of the local group"),
    1378: ("ERROR_MEMBER_IN_ALIAS", "already a member of the local group"),
    1387: ("ERROR_NO_SUCH_MEMBER", "the SID cannot be resolved from this computer (is the"
           " domain reachable, a trust in place?)"),
    1722: ("RPC_S_SERVER_UNAVAILABLE", "the domain controller cannot be reached over RPC"),
    1787: ("ERROR_NO_TRUST_SAM_ACCOUNT", "the domain has no computer account for this name:"
           " stage it again (retry the device)"),
    2138: ("NERR_WkstaNotStarted", "start the Workstation service (LanmanWorkstation)"),
    2691: ("NERR_SetupAlreadyJoined", "the computer is joined to a domain already"),
    2692: ("NERR_SetupNotJoined", "the computer is not joined to a domain"),
    2693: ("NERR_SetupDomainController", "a domain controller cannot be moved by Ferry"),
}
log = logging.getLogger("ferry_agent.device.windows")
SYSTEM_ERRORS_URL = "https://learn.microsoft.com/windows/win32/debug/system-error-codes"


class Win32Error(FerryAgentError):
    """A Win32 call answered an error: `call` and `code` name it, the message says what to do."""

    def __init__(self, call: str, code: int, subject: str = ""):
        self.call, self.code = call, code
        name, hint = ERRORS.get(code, ("", f"see {SYSTEM_ERRORS_URL}"))
        named = f" ({name})" if name else ""
        about = f" on {subject}" if subject else ""
        super().__init__(f"{call}{about}: Win32 error {code}{named}: {hint}")


@dataclass
class Win32:
    """The DLLs the backend calls and how it reads GetLastError. `load` binds the real ones
    (on Windows only); contract tests pass stand-ins that check every call."""

    advapi32: Any
    kernel32: Any
    netapi32: Any
    secur32: Any
    last_error: Callable[[], int]

    @classmethod
    def load(cls) -> Win32:
        def dll(name: str) -> Any:
            # use_last_error: ctypes saves GetLastError right after each call, before its own
            # work can change it.
            return ctypes.WinDLL(name, use_last_error=True)  # type: ignore[attr-defined]

        return cls(dll("advapi32"), dll("kernel32"), dll("netapi32"), dll("secur32"),
                   ctypes.get_last_error)  # type: ignore[attr-defined]

    def fn(self, name: str) -> Any:
        """`name` from its DLL with its documented prototype set (64-bit handles survive)."""
        library, restype, argtypes = PROTOTYPES[name]
        function = getattr(getattr(self, library), name)
        function.restype, function.argtypes = restype, argtypes
        return function

    def status(self, name: str, *args: Any, subject: str = "", ok: tuple[int, ...] = (0,)
               ) -> int:
        """Call a function that returns its error (NET_API_STATUS, LSTATUS, DWORD)."""
        code = int(self.fn(name)(*args))
        log.debug("%s %s: %d", name, subject, code)   # names and answers, never arguments
        if code not in ok:
            raise Win32Error(name, code, subject)
        return code

    def true(self, name: str, *args: Any, subject: str = "") -> None:
        """Call a function that returns BOOL and sets the last error when it answers FALSE."""
        answer = self.fn(name)(*args)
        log.debug("%s %s: %s", name, subject, bool(answer))
        if not answer:
            raise Win32Error(name, self.last_error(), subject)


def wipe(buffer: ctypes.Array[Any]) -> None:
    """Overwrite a secret's in-memory copy once Windows has it (the str stays Python's)."""
    ctypes.memset(buffer, 0, ctypes.sizeof(buffer))
