"""The Windows device backend by contract (nothing here runs Windows): each action's Win32
calls as Microsoft documents them: DLL, prototype, flags and order; the privileges enabled
around them and put back; secrets only in call arguments, wiped after, never in a command
line or a log record; and every failure naming the call and its Win32 error.

The stand-in DLLs check each call's argtypes against the prototypes transcribed below from
learn.microsoft.com (not the product's table) and convert each argument as ctypes would on
Windows; their answers model the documented behaviour over a small computer. Descriptors
are real: built and parsed by the shared codec, read and written through real memory."""

from __future__ import annotations

import base64
import ctypes
import json
import logging
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ferry_agent.device.descriptor import (
    Ace,
    Acl,
    SecurityDescriptor,
    build_descriptor,
    parse_descriptor,
)
from ferry_agent.device.outcome import ReaclMode, ReaclScope
from ferry_agent.device.windows import WindowsBackend, WindowsSettings
from ferry_agent.device.windows.backend import BACKUP_FILE
from ferry_agent.device.windows.commands import CommandResult
from ferry_agent.device.windows.win32 import ERRORS, PROTOTYPES, SYSTEM_ERRORS_URL
from ferry_agent.device.windows.win32 import TOKEN_PRIVILEGES as TokenPrivileges
from ferry_agent.sid import parse_sid

# ------------------------------------------------------------------------------ the stand-in
# C types of the documented prototypes, as ctypes shapes (see `shape`).
LUID = ("struct", (("LowPart", ctypes.c_uint32), ("HighPart", ctypes.c_int32)))
TOKEN_PRIVILEGES = ("struct", (("PrivilegeCount", ctypes.c_uint32), ("Privileges", (
    "array", ("struct", (("Luid", LUID), ("Attributes", ctypes.c_uint32)))))))
C: dict[str, Any] = {
    "LPCWSTR": ctypes.c_wchar_p, "LPWSTR": ctypes.c_wchar_p, "DWORD": ctypes.c_uint32,
    "ULONG": ctypes.c_uint32, "LONG": ctypes.c_int32, "LSTATUS": ctypes.c_int32,
    "BOOL": ctypes.c_int32, "BOOLEAN": ctypes.c_ubyte, "enum": ctypes.c_int,
    "HANDLE": ctypes.c_void_p, "HKEY": ctypes.c_void_p, "PSID": ctypes.c_void_p,
    "PACL": ctypes.c_void_p, "PSECURITY_DESCRIPTOR": ctypes.c_void_p, "PVOID": ctypes.c_void_p,
    "LPSECURITY_ATTRIBUTES": ctypes.c_void_p, "PFILETIME": ctypes.c_void_p,
    "PHANDLE": ("*", ctypes.c_void_p), "PHKEY": ("*", ctypes.c_void_p),
    "PSID*": ("*", ctypes.c_void_p), "PACL*": ("*", ctypes.c_void_p),
    "PSECURITY_DESCRIPTOR*": ("*", ctypes.c_void_p), "LPBYTE*": ("*", ctypes.c_void_p),
    "LPWSTR*": ("*", ctypes.c_void_p), "LPDWORD": ("*", ctypes.c_uint32),
    "PULONG": ("*", ctypes.c_uint32), "PDWORD_PTR": ("*", ctypes.c_size_t),
    "BYTE*": ("*", ctypes.c_ubyte), "LPBYTE": ("*", ctypes.c_ubyte),
    "PNETSETUP_JOIN_STATUS": ("*", ctypes.c_int), "PLUID": ("*", LUID),
    "PTOKEN_PRIVILEGES": ("*", TOKEN_PRIVILEGES),
}
# name: (DLL, return type, parameter types), from each function's page.
CONTRACT: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "OpenProcessToken": ("advapi32", "BOOL", ("HANDLE", "DWORD", "PHANDLE")),
    "LookupPrivilegeValueW": ("advapi32", "BOOL", ("LPCWSTR", "LPCWSTR", "PLUID")),
    "AdjustTokenPrivileges": ("advapi32", "BOOL", ("HANDLE", "BOOL", "PTOKEN_PRIVILEGES",
                                                   "DWORD", "PTOKEN_PRIVILEGES", "LPDWORD")),
    "GetCurrentProcess": ("kernel32", "HANDLE", ()),
    "CloseHandle": ("kernel32", "BOOL", ("HANDLE",)),
    "LocalFree": ("kernel32", "HANDLE", ("HANDLE",)),
    "GetNamedSecurityInfoW": ("advapi32", "DWORD", ("LPCWSTR", "enum", "DWORD", "PSID*",
                                                    "PSID*", "PACL*", "PACL*",
                                                    "PSECURITY_DESCRIPTOR*")),
    "SetNamedSecurityInfoW": ("advapi32", "DWORD", ("LPWSTR", "enum", "DWORD", "PSID", "PSID",
                                                    "PACL", "PACL")),
    "GetSecurityDescriptorLength": ("advapi32", "DWORD", ("PSECURITY_DESCRIPTOR",)),
    "RegOpenKeyExW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "DWORD", "DWORD", "PHKEY")),
    "RegCreateKeyExW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "DWORD", "LPWSTR", "DWORD",
                                                "DWORD", "LPSECURITY_ATTRIBUTES", "PHKEY",
                                                "LPDWORD")),
    "RegCloseKey": ("advapi32", "LSTATUS", ("HKEY",)),
    "RegEnumKeyExW": ("advapi32", "LSTATUS", ("HKEY", "DWORD", "LPWSTR", "LPDWORD", "LPDWORD",
                                              "LPWSTR", "LPDWORD", "PFILETIME")),
    "RegGetKeySecurity": ("advapi32", "LSTATUS", ("HKEY", "DWORD", "PSECURITY_DESCRIPTOR",
                                                  "LPDWORD")),
    "RegSetKeySecurity": ("advapi32", "LSTATUS", ("HKEY", "DWORD", "PSECURITY_DESCRIPTOR")),
    "RegLoadKeyW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "LPCWSTR")),
    "RegUnLoadKeyW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR")),
    "RegGetValueW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "LPCWSTR", "DWORD", "LPDWORD",
                                             "PVOID", "LPDWORD")),
    "RegSetValueExW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "DWORD", "DWORD", "BYTE*",
                                               "DWORD")),
    "RegCopyTreeW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "HKEY")),
    "RegRenameKey": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR", "LPCWSTR")),
    "RegDeleteTreeW": ("advapi32", "LSTATUS", ("HKEY", "LPCWSTR")),
    "LookupAccountSidW": ("advapi32", "BOOL", ("LPCWSTR", "PSID", "LPWSTR", "LPDWORD", "LPWSTR",
                                               "LPDWORD", "LPDWORD")),
    "NetLocalGroupGetMembers": ("netapi32", "DWORD", ("LPCWSTR", "LPCWSTR", "DWORD", "LPBYTE*",
                                                      "DWORD", "LPDWORD", "LPDWORD",
                                                      "PDWORD_PTR")),
    "NetLocalGroupAddMembers": ("netapi32", "DWORD", ("LPCWSTR", "LPCWSTR", "DWORD", "LPBYTE",
                                                      "DWORD")),
    "NetLocalGroupDelMembers": ("netapi32", "DWORD", ("LPCWSTR", "LPCWSTR", "DWORD", "LPBYTE",
                                                      "DWORD")),
    "NetApiBufferFree": ("netapi32", "DWORD", ("PVOID",)),
    "NetJoinDomain": ("netapi32", "DWORD", ("LPCWSTR", "LPCWSTR", "LPCWSTR", "LPCWSTR",
                                            "LPCWSTR", "DWORD")),
    "NetUnjoinDomain": ("netapi32", "DWORD", ("LPCWSTR", "LPCWSTR", "LPCWSTR", "DWORD")),
    "NetRequestOfflineDomainJoin": ("netapi32", "DWORD", ("BYTE*", "DWORD", "DWORD",
                                                          "LPCWSTR")),
    "NetGetJoinInformation": ("netapi32", "DWORD", ("LPCWSTR", "LPWSTR*",
                                                    "PNETSETUP_JOIN_STATUS")),
    "GetComputerNameExW": ("kernel32", "BOOL", ("enum", "LPWSTR", "LPDWORD")),
    "GetComputerObjectNameW": ("secur32", "BOOLEAN", ("enum", "LPWSTR", "PULONG")),
    "InitiateSystemShutdownExW": ("advapi32", "BOOL", ("LPWSTR", "LPWSTR", "DWORD", "BOOL",
                                                       "BOOL", "DWORD")),
}
HKLM = 0xFFFFFFFF80000002 if ctypes.sizeof(ctypes.c_void_p) == 8 else 0x80000002
HKU = HKLM + 1
PRIVILEGES = ("SeBackupPrivilege", "SeRestorePrivilege", "SeTakeOwnershipPrivilege",
              "SeShutdownPrivilege", "SeSecurityPrivilege")


def shape(ctype: Any) -> Any:
    """A ctypes type as comparable data: pointers, structures (by field) and arrays."""
    if ctype is None:
        return None
    if isinstance(ctype, tuple):
        if ctype[0] == "*":
            return ("*", shape(ctype[1]))
        if ctype[0] == "struct":
            return ("struct", tuple((n, shape(t)) for n, t in ctype[1]))
        if ctype[0] == "array":
            return ("array", shape(ctype[1]))
    if issubclass(ctype, ctypes._Pointer) and ctype not in (ctypes.c_wchar_p, ctypes.c_void_p):
        return ("*", shape(ctype._type_))
    if issubclass(ctype, ctypes.Structure):
        return ("struct", tuple((n, shape(t)) for n, t in ctype._fields_))
    if issubclass(ctype, ctypes.Array):
        return ("array", shape(ctype._type_))
    return ctype


def documented(name: str) -> tuple[str, Any, tuple[Any, ...]]:
    dll, restype, argtypes = CONTRACT[name]
    return dll, shape(C[restype]), tuple(shape(C[t]) for t in argtypes)


def target(arg: Any) -> Any:
    """What an out-parameter points to: byref()'s object or a pointer's contents."""
    return arg._obj if type(arg).__name__ == "CArgObject" else arg.contents


def address(arg: Any) -> int:
    if arg is None:
        return 0
    if isinstance(arg, int):
        return ctypes.c_void_p(arg).value or 0
    if isinstance(arg, ctypes.c_void_p):
        return arg.value or 0
    return ctypes.addressof(arg)


def read_sid(at: int) -> str:
    count = ctypes.string_at(at + 1, 1)[0]
    data = ctypes.string_at(at, 8 + 4 * count)
    authority = int.from_bytes(data[2:8], "big")
    return "S-1-" + "-".join(map(str, (authority, *struct.unpack_from(f"<{count}I", data, 8))))


@dataclass
class Key:
    name: str
    sd: bytes = b""
    values: dict[str, tuple[str, int, bytes]] = field(default_factory=dict)
    subkeys: dict[str, Key] = field(default_factory=dict)

    def child(self, path: str) -> Key | None:
        node: Key | None = self
        for part in filter(None, path.split("\\")):
            node = node.subkeys.get(part.upper()) if node else None
        return node

    def add(self, name: str, sd: bytes = b"") -> Key:
        return self.subkeys.setdefault(name.upper(), Key(name, sd))

    def copy(self, name: str) -> Key:
        return Key(name, self.sd, dict(self.values),
                   {k: v.copy(v.name) for k, v in self.subkeys.items()})

    def set_string(self, name: str, text: str, kind: int = 1) -> None:
        self.values[name.upper()] = (name, kind, (text + "\0").encode("utf-16-le"))


@dataclass
class Call:
    name: str
    args: tuple[Any, ...]
    enabled: frozenset[str]      # the token's enabled privileges at the time of the call
    seen: dict[str, Any] = field(default_factory=dict)   # inputs read at call time


class Windows:
    """The computer the DLL stand-ins act on; `fail` makes a call answer an error code."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.fail: dict[str, int] = {}
        self.last_error = 0
        self.held = set(PRIVILEGES)
        self.enabled: set[str] = set()
        self.files: dict[str, bytes] = {}
        self.hive_files: dict[str, Key] = {}
        self.hklm, self.hku = Key("HKLM"), Key("HKU")
        self.handles: dict[int, Key] = {}
        self.allocations: dict[int, Any] = {}
        self.groups: dict[str, tuple[str, list[str]]] = {}
        self.join = {"name": "SRC", "status": 3, "dns": "src.example"}
        self.names = {0: "WS1", 1: "ws1", 2: "src.example"}
        self.dn = "CN=WS1,OU=Workstations,DC=src,DC=example"
        self.shutdowns: list[tuple[Any, ...]] = []
        self._next = 0x1000
        self.dlls = {name: Dll(self, name) for name in ("advapi32", "kernel32", "netapi32",
                                                        "secur32")}

    def win32(self) -> Any:
        from ferry_agent.device.windows.win32 import Win32

        return Win32(self.dlls["advapi32"], self.dlls["kernel32"], self.dlls["netapi32"],
                     self.dlls["secur32"], lambda: self.last_error)

    def names_called(self) -> list[str]:
        return [call.name for call in self.calls]

    def called(self, name: str) -> list[Call]:
        return [call for call in self.calls if call.name == name]

    def handle(self, key: Key) -> int:
        self._next += 4
        self.handles[self._next] = key
        return self._next

    def allocate(self, buffer: Any) -> int:
        at = ctypes.addressof(buffer)
        self.allocations[at] = buffer
        return at

    def key(self, arg: Any) -> Key:
        at = address(arg)
        if at == HKLM:
            return self.hklm
        if at == HKU:
            return self.hku
        return self.handles[at]


class Dll:
    def __init__(self, windows: Windows, name: str):
        self.windows, self.name = windows, name

    def __getattr__(self, name: str) -> Function:
        if name.startswith("_"):
            raise AttributeError(name)
        assert name in CONTRACT, f"{name}: not a function these tests know the contract of"
        assert CONTRACT[name][0] == self.name, f"{name} is in {CONTRACT[name][0]}.dll"
        return Function(self.windows, name)


class Function:
    """One function: its argtypes must be the documented ones before it is called, and each
    argument must convert to its type as ctypes would convert it on Windows."""

    argtypes: tuple[Any, ...] | None = None
    restype: Any = None

    def __init__(self, windows: Windows, name: str):
        self.windows, self.name = windows, name

    def __call__(self, *args: Any) -> Any:
        _, restype, argtypes = documented(self.name)
        assert self.argtypes is not None, f"{self.name}: called without argtypes"
        assert tuple(shape(t) for t in self.argtypes) == argtypes, f"{self.name}: argtypes"
        assert shape(self.restype) == restype, f"{self.name}: restype"
        assert len(args) == len(argtypes), f"{self.name}: {len(args)} arguments"
        for index, (arg, ctype) in enumerate(zip(args, self.argtypes, strict=True)):
            ctype.from_param(arg)    # raises as a real call would on a wrong type
            if ctype is ctypes.c_uint32 and isinstance(arg, int):
                assert 0 <= arg < 1 << 32, f"{self.name}: argument {index} is no DWORD"
        windows = self.windows
        call = Call(self.name, args, frozenset(windows.enabled))
        windows.calls.append(call)
        if self.name in windows.fail:
            code = windows.fail[self.name]
            if CONTRACT[self.name][1] in ("BOOL", "BOOLEAN"):
                windows.last_error = code
                return 0
            return code
        return getattr(Behaviour, self.name)(windows, call, *args)


def _compose(control: int, owner: bytes, group: bytes, dacl: bytes) -> bytes:
    at = 20
    offsets = []
    for part in (owner, group, dacl):
        offsets.append(at if part else 0)
        at += len(part)
    return (struct.pack("<BBHIIII", 1, 0, control | 0x8000, offsets[0], offsets[1], 0,
                        offsets[2]) + owner + group + dacl)


class Behaviour:
    """What each function does, as documented (only what the backend relies on)."""

    @staticmethod
    def GetCurrentProcess(w: Windows, call: Call) -> int:
        return -1 & ((1 << 64) - 1)   # the pseudo-handle (HANDLE)-1

    @staticmethod
    def OpenProcessToken(w: Windows, call: Call, process: Any, access: int, out: Any) -> int:
        assert access == 0x0020 | 0x0008, "TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY"
        target(out).value = w.handle(Key("token"))
        return 1

    @staticmethod
    def CloseHandle(w: Windows, call: Call, handle: Any) -> int:
        return int(w.handles.pop(address(handle), None) is not None)

    @staticmethod
    def LookupPrivilegeValueW(w: Windows, call: Call, system: Any, name: str, out: Any) -> int:
        assert system is None
        if name not in PRIVILEGES:
            w.last_error = 1313
            return 0
        target(out).LowPart = PRIVILEGES.index(name) + 2
        return 1

    @staticmethod
    def AdjustTokenPrivileges(w: Windows, call: Call, token: Any, disable_all: Any, new: Any,
                              size: int, previous: Any, needed: Any) -> int:
        assert address(token) in w.handles and not disable_all
        state = target(new)
        changed = []
        missing = False
        for index in range(state.PrivilegeCount):
            entry = state.Privileges[index]
            name = PRIVILEGES[entry.Luid.LowPart - 2]
            if name not in w.held:
                missing = True
                continue
            was = name in w.enabled
            now = bool(entry.Attributes & 0x2)
            if was != now:
                changed.append((entry.Luid.LowPart, 0x2 if was else 0))
                (w.enabled.add if now else w.enabled.discard)(name)
        call.seen["changed"] = changed
        if previous is not None:
            back = target(previous)
            back.PrivilegeCount = len(changed)
            for index, (luid, attributes) in enumerate(changed):
                back.Privileges[index].Luid.LowPart = luid
                back.Privileges[index].Attributes = attributes
        w.last_error = 1300 if missing else 0
        return 1

    @staticmethod
    def GetNamedSecurityInfoW(w: Windows, call: Call, name: str, kind: int, info: int,
                              owner: Any, group: Any, dacl: Any, sacl: Any, out: Any) -> int:
        assert kind == 1 and info == 0x7, "SE_FILE_OBJECT, OWNER|GROUP|DACL"
        if name not in w.files:
            return 2
        target(out).value = w.allocate(ctypes.create_string_buffer(w.files[name],
                                                                   len(w.files[name])))
        return 0

    @staticmethod
    def GetSecurityDescriptorLength(w: Windows, call: Call, sd: Any) -> int:
        return len(w.allocations[address(sd)])

    @staticmethod
    def LocalFree(w: Windows, call: Call, memory: Any) -> int:
        del w.allocations[address(memory)]
        return 0

    @staticmethod
    def SetNamedSecurityInfoW(w: Windows, call: Call, name: str, kind: int, info: int,
                              owner: Any, group: Any, dacl: Any, sacl: Any) -> int:
        assert kind == 1 and sacl is None
        assert not info & 0x8, "no SACL_SECURITY_INFORMATION (it needs SeSecurityPrivilege)"
        assert bool(info & 0x80000000) != bool(info & 0x20000000) or not info & 0x4, \
            "a DACL goes with PROTECTED_ or UNPROTECTED_DACL_SECURITY_INFORMATION"
        assert not (info & 0x4) or dacl is not None, "a NULL DACL would grant everyone all"
        old = w.files.get(name, b"")
        call.seen.update(info=info, owner=read_sid(owner) if owner else None,
                         group=read_sid(group) if group else None,
                         size=os.path.getsize(name) if os.path.isfile(name) else None)
        dacl_bytes = b""
        if dacl is not None:
            size = struct.unpack("<H", ctypes.string_at(dacl + 2, 2))[0]
            dacl_bytes = ctypes.string_at(dacl, size)
        control = (0x1000 if info & 0x80000000 else 0) | (0x4 if dacl_bytes else 0)
        owner_bytes = parse_sid(read_sid(owner)).to_bytes() if owner else _part(old, 4)
        group_bytes = parse_sid(read_sid(group)).to_bytes() if group else _part(old, 8)
        w.files[name] = _compose(control, owner_bytes, group_bytes, dacl_bytes)
        return 0

    @staticmethod
    def RegOpenKeyExW(w: Windows, call: Call, parent: Any, path: str, options: int,
                      access: int, out: Any) -> int:
        assert options == 0, "ulOptions: zero (or REG_OPTION_OPEN_LINK)"
        found = w.key(parent).child(path or "")
        if found is None:
            return 2
        call.seen["key"] = found.name
        target(out).value = w.handle(found)
        return 0

    @staticmethod
    def RegCreateKeyExW(w: Windows, call: Call, parent: Any, path: str, reserved: int,
                        kind: Any, options: int, access: int, security: Any, out: Any,
                        disposition: Any) -> int:
        assert reserved == 0 and options == 0
        node = w.key(parent)
        existed = node.child(path) is not None
        created = node.add(path)
        target(out).value = w.handle(created)
        target(disposition).value = 2 if existed else 1
        return 0

    @staticmethod
    def RegCloseKey(w: Windows, call: Call, key: Any) -> int:
        return 0 if w.handles.pop(address(key), None) is not None else 6

    @staticmethod
    def RegEnumKeyExW(w: Windows, call: Call, key: Any, index: int, name: Any, size: Any,
                      *unused: Any) -> int:
        assert all(u is None for u in unused), "lpReserved must be NULL"
        children = list(w.key(key).subkeys.values())
        if index >= len(children):
            return 259
        if target(size).value <= len(children[index].name):
            return 234
        name.value = children[index].name
        target(size).value = len(children[index].name)
        return 0

    @staticmethod
    def RegGetKeySecurity(w: Windows, call: Call, key: Any, info: int, buffer: Any,
                          size: Any) -> int:
        assert info == 0x7
        sd = w.key(key).sd
        if target(size).value < len(sd):
            target(size).value = len(sd)
            return 122
        ctypes.memmove(buffer, sd, len(sd))
        target(size).value = len(sd)
        return 0

    @staticmethod
    def RegSetKeySecurity(w: Windows, call: Call, key: Any, info: int, buffer: Any) -> int:
        assert info == 0x7
        w.key(key).sd = bytes(buffer)
        return 0

    @staticmethod
    def RegLoadKeyW(w: Windows, call: Call, root: Any, name: str, file: str) -> int:
        assert address(root) in (HKLM, HKU)
        if not {"SeBackupPrivilege", "SeRestorePrivilege"} <= w.enabled:
            return 1314
        hive = w.hive_files.get(file)
        if hive is None:
            return 2
        if name.upper() in w.hku.subkeys:
            return 32
        w.hku.subkeys[name.upper()] = hive
        hive.name = name
        return 0

    @staticmethod
    def RegUnLoadKeyW(w: Windows, call: Call, root: Any, name: str) -> int:
        hive = w.hku.subkeys.get(name.upper())
        if hive is None:
            return 87
        assert not [k for k in w.handles.values() if _inside(k, hive)], \
            "RegUnLoadKey with keys of the hive still open fails"
        del w.hku.subkeys[name.upper()]
        return 0

    @staticmethod
    def RegGetValueW(w: Windows, call: Call, key: Any, path: Any, value: str, flags: int,
                     kind: Any, data: Any, size: Any) -> int:
        assert flags == 0x2, "RRF_RT_REG_SZ (REG_EXPAND_SZ comes expanded)"
        node = w.key(key).child(path or "")
        if node is None or value.upper() not in node.values:
            return 2
        _, value_kind, raw = node.values[value.upper()]
        if value_kind not in (1, 2):
            return 1630   # ERROR_UNSUPPORTED_TYPE
        if target(size).value < len(raw):
            target(size).value = len(raw)
            return 234
        ctypes.memmove(data, raw, len(raw))
        target(size).value = len(raw)
        return 0

    @staticmethod
    def RegSetValueExW(w: Windows, call: Call, key: Any, name: str, reserved: int, kind: int,
                       data: Any, size: int) -> int:
        assert reserved == 0
        w.key(key).values[name.upper()] = (name, kind, bytes(data)[:size])
        return 0

    @staticmethod
    def RegCopyTreeW(w: Windows, call: Call, source: Any, path: Any, dest: Any) -> int:
        node, into = w.key(source).child(path or ""), w.key(dest)
        assert node is not None
        into.values.update(node.values)
        into.subkeys.update({k: v.copy(v.name) for k, v in node.subkeys.items()})
        return 0

    @staticmethod
    def RegRenameKey(w: Windows, call: Call, key: Any, old: str, new: str) -> int:
        parent = w.key(key)
        if new.upper() in parent.subkeys:
            return 183
        node = parent.subkeys.pop(old.upper())
        node.name = new
        parent.subkeys[new.upper()] = node
        return 0

    @staticmethod
    def RegDeleteTreeW(w: Windows, call: Call, key: Any, path: str) -> int:
        return 0 if w.key(key).subkeys.pop(path.upper(), None) is not None else 2

    @staticmethod
    def LookupAccountSidW(w: Windows, call: Call, system: Any, sid: Any, name: Any,
                          name_size: Any, domain: Any, domain_size: Any, use: Any) -> int:
        text = read_sid(address(sid))
        if text not in w.groups:
            w.last_error = 1332
            return 0
        name.value, domain.value = w.groups[text][0], "BUILTIN"
        target(use).value = 4   # SidTypeAlias
        return 1

    @staticmethod
    def NetLocalGroupGetMembers(w: Windows, call: Call, server: Any, group: str, level: int,
                                out: Any, prefmax: int, read: Any, total: Any,
                                resume: Any) -> int:
        assert server is None and level == 0
        found = [members for name, members in w.groups.values() if name == group]
        if not found:
            return 1376
        sids = [ctypes.create_string_buffer(parse_sid(s).to_bytes()) for s in found[0]]
        array = (ctypes.c_void_p * max(1, len(sids)))(*[ctypes.addressof(s) for s in sids])
        w.allocations[ctypes.addressof(array)] = (array, sids)
        target(out).value = ctypes.addressof(array)
        target(read).value = target(total).value = len(sids)
        return 0

    @staticmethod
    def NetApiBufferFree(w: Windows, call: Call, buffer: Any) -> int:
        del w.allocations[address(buffer)]
        return 0

    @staticmethod
    def _member(w: Windows, call: Call, server: Any, group: str, level: int, buf: Any,
                count: int) -> tuple[list[str], str]:
        assert server is None and level == 0 and count == 1
        at = ctypes.cast(buf, ctypes.c_void_p).value or 0
        sid = read_sid(ctypes.c_void_p.from_address(at).value or 0)
        call.seen["member"] = sid
        (members,) = [m for name, m in w.groups.values() if name == group]
        return members, sid

    @staticmethod
    def NetLocalGroupAddMembers(w: Windows, call: Call, *args: Any) -> int:
        members, sid = Behaviour._member(w, call, *args)
        if sid in members:
            return 1378
        members.append(sid)
        return 0

    @staticmethod
    def NetLocalGroupDelMembers(w: Windows, call: Call, *args: Any) -> int:
        members, sid = Behaviour._member(w, call, *args)
        if sid not in members:
            return 1377
        members.remove(sid)
        return 0

    @staticmethod
    def NetGetJoinInformation(w: Windows, call: Call, server: Any, out: Any,
                              status: Any) -> int:
        assert server is None
        target(out).value = w.allocate(ctypes.create_unicode_buffer(str(w.join["name"])))
        target(status).value = w.join["status"]
        return 0

    @staticmethod
    def NetUnjoinDomain(w: Windows, call: Call, server: Any, account: Any, password: Any,
                        options: int) -> int:
        call.seen["options"] = options
        if w.join["status"] != 3:
            return 2692
        w.join.update(name="WORKGROUP", status=2)
        w.names[2] = ""
        return 0

    @staticmethod
    def NetJoinDomain(w: Windows, call: Call, server: Any, domain: str, ou: Any, account: Any,
                      password: Any, options: int) -> int:
        call.seen.update(password=ctypes.wstring_at(ctypes.addressof(password)),
                         options=options)
        if w.join["status"] == 3 and not options & 0x20:
            return 2691
        name, _, _dc = domain.partition("\\")
        w.join.update(name=name.split(".")[0].upper(), status=3)
        w.names[2] = name
        return 0

    @staticmethod
    def NetRequestOfflineDomainJoin(w: Windows, call: Call, data: Any, size: int,
                                    options: int, path: str) -> int:
        call.seen["data"] = bytes(data)[:size]
        return 0

    @staticmethod
    def GetComputerNameExW(w: Windows, call: Call, kind: int, buffer: Any, size: Any) -> int:
        name = w.names[kind]
        if target(size).value < len(name) + 1:
            target(size).value = len(name) + 1
            w.last_error = 234
            return 0
        buffer.value = name
        target(size).value = len(name)
        return 1

    @staticmethod
    def GetComputerObjectNameW(w: Windows, call: Call, kind: int, buffer: Any,
                               size: Any) -> int:
        assert kind == 1, "NameFullyQualifiedDN"
        buffer.value = w.dn
        target(size).value = len(w.dn) + 1
        return 1

    @staticmethod
    def InitiateSystemShutdownExW(w: Windows, call: Call, machine: Any, message: Any,
                                  timeout: int, force: Any, reboot: Any, reason: int) -> int:
        if "SeShutdownPrivilege" not in w.enabled:
            w.last_error = 1314
            return 0
        if w.shutdowns:
            w.last_error = 1190
            return 0
        w.shutdowns.append((machine, message, timeout, force, reboot, reason))
        return 1


def _part(sd: bytes, at: int) -> bytes:
    offset = struct.unpack_from("<I", sd, at)[0] if sd else 0
    if not offset:
        return b""
    return sd[offset:offset + 8 + 4 * sd[offset + 1]]


def _inside(key: Key, hive: Key) -> bool:
    return key is hive or any(_inside(key, child) for child in hive.subkeys.values())


# ------------------------------------------------------------------------------ the tests
SRC = "S-1-5-21-1-2-3"
TGT = "S-1-5-21-7-8-9"
ALICE_SRC, ALICE_TGT = f"{SRC}-1104", f"{TGT}-2104"
STAFF_SRC, STAFF_TGT = f"{SRC}-1200", f"{TGT}-2200"
BOB_SRC = f"{SRC}-1105"                  # a source user the table has no entry for
SYSTEM, ADMINS = "S-1-5-18", "S-1-5-32-544"
TABLE = {ALICE_SRC: ALICE_TGT, STAFF_SRC: STAFF_TGT}
PASSWORD = "Xq7!one-time-Pa55w0rd"


def descriptor(owner: str, *aces: tuple[str, int], protected: bool = False) -> bytes:
    """A self-relative descriptor as Windows returns it: owner, group, DACL of allow ACEs."""
    dacl = Acl(2, tuple(Ace(0, flags, 0x1F01FF, parse_sid(sid)) for sid, flags in aces))
    return build_descriptor(SecurityDescriptor(
        control=0x4 | (0x1000 if protected else 0), owner=parse_sid(owner),
        group=parse_sid(SYSTEM), dacl=dacl))


def sids_of(data: bytes) -> tuple[str | None, list[str]]:
    sd = parse_descriptor(data)
    assert sd.dacl is not None
    return (str(sd.owner) if sd.owner else None, [str(ace.sid) for ace in sd.dacl.aces])


@pytest.fixture
def windows() -> Windows:
    return Windows()


def backend(windows: Windows, tmp_path: Path, **settings: Any) -> tuple[WindowsBackend,
                                                                        list[list[str]]]:
    ran: list[list[str]] = []
    answers = settings.pop("answers", {})

    def run(argv: Sequence[str], timeout: float) -> CommandResult:
        ran.append(list(argv))
        for program, answer in answers.items():
            if argv[0].lower().endswith(program):
                return answer(argv) if callable(answer) else answer
        return CommandResult(0, "", "")

    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return WindowsBackend(WindowsSettings(state_dir=state, system_root="C:\\Windows",
                                          **settings), windows.win32(), run), ran


def test_the_prototypes_are_microsofts() -> None:
    """Every function the backend binds has the documented DLL, return and parameter types."""
    assert set(PROTOTYPES) <= set(CONTRACT)
    for name, (dll, restype, argtypes) in PROTOTYPES.items():
        assert (dll, shape(restype), tuple(shape(t) for t in argtypes)) == documented(name), \
            name
    # Windows' layout: LUID_AND_ATTRIBUTES is 12 bytes, Privileges right after the count.
    assert ctypes.sizeof(TokenPrivileges().Privileges[0]) == 12
    assert TokenPrivileges.Privileges.offset == 4


def test_files_reacl_owner_and_dacl_under_privileges_restored_after(
        windows: Windows, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "team").mkdir(parents=True)
    (root / "team" / "plan.txt").write_text("plan")
    (root / "link").symlink_to(root / "team")
    windows.files[str(root)] = descriptor(ADMINS, (STAFF_SRC, 0x3), (SYSTEM, 0x3))
    windows.files[str(root / "team")] = descriptor(ALICE_SRC, (ALICE_SRC, 0x0),
                                                   (BOB_SRC, 0x0), protected=True)
    windows.files[str(root / "team" / "plan.txt")] = descriptor(SYSTEM, (SYSTEM, 0x0))
    device, _ = backend(windows, tmp_path, file_roots=(root,))

    outcome = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.FILES])

    assert outcome.ok, outcome.message
    assert outcome.details["files"]["scanned"] == 3
    assert outcome.details["files"]["changed"] == 2
    assert outcome.details["unmatched"] == [BOB_SRC]
    assert sids_of(windows.files[str(root)]) == (ADMINS, [STAFF_TGT, SYSTEM])
    assert sids_of(windows.files[str(root / "team")]) == (ALICE_TGT, [ALICE_TGT, BOB_SRC])
    sets = windows.called("SetNamedSecurityInfoW")
    # Parents first (Windows propagates their inheritable ACEs to the children it then finds).
    assert [c.args[0] for c in sets] == [str(root), str(root / "team")]
    assert sets[0].seen["info"] == 0x7 | 0x20000000       # UNPROTECTED_DACL: inherits still
    assert sets[1].seen["info"] == 0x7 | 0x80000000       # PROTECTED_DACL kept protected
    assert str(root / "link") not in [c.args[0] for c in windows.calls if c.args]
    wanted = {"SeRestorePrivilege", "SeTakeOwnershipPrivilege", "SeBackupPrivilege"}
    assert all(c.enabled >= wanted for c in windows.calls
               if c.name in ("GetNamedSecurityInfoW", "SetNamedSecurityInfoW"))
    assert windows.enabled == set()                       # put back as they were
    assert windows.allocations == {} and windows.handles == {}   # LocalFree, CloseHandle
    names = windows.names_called()
    assert names[:3] == ["GetCurrentProcess", "OpenProcessToken", "LookupPrivilegeValueW"]
    assert names[-2:] == ["AdjustTokenPrivileges", "CloseHandle"]

    again = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.FILES])
    assert again.ok and again.details["files"]["changed"] == 0


def test_a_privilege_the_token_lacks_stops_reacl_before_any_object(
        windows: Windows, tmp_path: Path) -> None:
    windows.held.discard("SeTakeOwnershipPrivilege")
    windows.files[str(tmp_path)] = descriptor(ALICE_SRC, (ALICE_SRC, 0))
    device, _ = backend(windows, tmp_path, file_roots=(tmp_path,))

    outcome = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.FILES])

    assert not outcome.ok
    assert "AdjustTokenPrivileges" in outcome.message
    assert "Win32 error 1300 (ERROR_NOT_ALL_ASSIGNED)" in outcome.message
    assert "LocalSystem" in outcome.message
    assert not windows.called("GetNamedSecurityInfoW")
    assert windows.enabled == set()


def test_registry_keys_every_one_written_with_its_whole_descriptor(
        windows: Windows, tmp_path: Path) -> None:
    contoso = windows.hklm.add("SOFTWARE").add("Contoso", descriptor(ADMINS, (STAFF_SRC, 0x2)))
    # Over 4 KiB: RegGetKeySecurity answers ERROR_INSUFFICIENT_BUFFER with the size it needs.
    big = [(f"{SRC}-{5000 + n}", 0) for n in range(150)]
    contoso.add("App", descriptor(ALICE_SRC, (ALICE_SRC, 0x10), *big))
    device, _ = backend(windows, tmp_path, registry_keys=("HKLM\\SOFTWARE\\Contoso",))

    outcome = device.reacl(TABLE, SRC, ReaclMode.ADD, [ReaclScope.REGISTRY])

    assert outcome.ok, outcome.message
    assert outcome.details["registry"]["scanned"] == 2
    assert outcome.details["registry"]["changed"] == 2
    assert sids_of(contoso.sd) == (ADMINS, [STAFF_SRC, STAFF_TGT])
    owner, aces = sids_of(contoso.subkeys["APP"].sd)
    assert owner == ALICE_TGT and aces[:2] == [ALICE_SRC, ALICE_TGT]
    opened = windows.called("RegOpenKeyExW")
    assert address(opened[0].args[0]) == HKLM and opened[0].args[1] == "SOFTWARE\\Contoso"
    assert opened[0].args[3] == 0x00020000 | 0x00040000 | 0x00080000 | 0x0008
    sizes = [c for c in windows.called("RegGetKeySecurity")]
    assert len(sizes) == 3          # the big one read twice
    assert len(outcome.details["unmatched"]) == 100       # capped as the outcome says
    assert windows.handles == {}


def profile_computer(windows: Windows, tmp_path: Path) -> tuple[Path, Key, Key]:
    folder = tmp_path / "Users" / "alice"
    (folder / "Documents").mkdir(parents=True)
    (folder / "NTUSER.DAT").write_bytes(b"regf")
    for path in (folder, folder / "Documents", folder / "NTUSER.DAT"):
        windows.files[str(path)] = descriptor(ALICE_SRC, (ALICE_SRC, 0), (SYSTEM, 0))
    listing = (windows.hklm.add("SOFTWARE").add("Microsoft").add("Windows NT")
               .add("CurrentVersion").add("ProfileList"))
    entry = listing.add(ALICE_SRC)
    entry.set_string("ProfileImagePath", str(folder), kind=2)
    entry.values["SID"] = ("Sid", 3, parse_sid(ALICE_SRC).to_bytes())
    entry.values["STATE"] = ("State", 4, b"\0\0\0\0")
    hive = Key("hive", descriptor(ALICE_SRC, (ALICE_SRC, 0)))
    hive.add("Software", descriptor(ALICE_SRC, (ALICE_SRC, 0)))
    windows.hive_files[str(folder / "NTUSER.DAT")] = hive
    return folder, listing, hive


def test_a_profile_is_remapped_its_folder_and_hive_translated_then_rolled_back(
        windows: Windows, tmp_path: Path) -> None:
    folder, listing, hive = profile_computer(windows, tmp_path)
    device, _ = backend(windows, tmp_path)

    outcome = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES])

    assert outcome.ok, outcome.message
    assert outcome.details["profiles"]["remapped"] == 1
    assert set(listing.subkeys) == {ALICE_TGT, f"{ALICE_SRC}.BAK"}
    copy = listing.subkeys[ALICE_TGT]
    assert copy.values["SID"] == ("Sid", 3, parse_sid(ALICE_TGT).to_bytes())   # REG_BINARY
    assert copy.values["STATE"] == ("State", 4, b"\0\0\0\0")                    # copied
    assert sids_of(windows.files[str(folder / "Documents")])[0] == ALICE_TGT
    assert sids_of(hive.sd)[0] == ALICE_TGT
    assert sids_of(hive.subkeys["SOFTWARE"].sd)[0] == ALICE_TGT
    (load,) = windows.called("RegLoadKeyW")
    assert address(load.args[0]) == HKU and load.args[1] == f"ferry-{ALICE_SRC}"
    assert load.args[2] == str(folder / "NTUSER.DAT")
    assert {"SeBackupPrivilege", "SeRestorePrivilege"} <= load.enabled
    names = windows.names_called()
    assert names.index("RegCopyTreeW") < names.index("RegSetValueExW") < names.index(
        "RegRenameKey") < names.index("RegLoadKeyW") < names.index("RegUnLoadKeyW")
    assert f"FERRY-{ALICE_SRC}" not in windows.hku.subkeys       # unloaded after
    assert windows.handles == {} and windows.enabled == set()

    again = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES])
    assert again.ok and again.details["profiles"]["already"] == 1

    back = device.undo_reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES])
    assert back.ok, back.message
    assert set(listing.subkeys) == {ALICE_SRC}
    assert listing.subkeys[ALICE_SRC].values["SID"][2] == parse_sid(ALICE_SRC).to_bytes()
    assert sids_of(windows.files[str(folder / "Documents")])[0] == ALICE_SRC
    assert sids_of(hive.sd)[0] == ALICE_SRC


def test_a_domain_profile_s_guid_names_the_target_sid_and_the_source_again_after_rollback(
        windows: Windows, tmp_path: Path) -> None:
    _, listing, _ = profile_computer(windows, tmp_path)
    guid = "{0B2C1D4E-5F60-4A7B-8C9D-0E1F2A3B4C5D}"
    listing.subkeys[ALICE_SRC].set_string("Guid", guid)
    by_guid = (windows.hklm.add("SOFTWARE").add("Microsoft").add("Windows NT")
               .add("CurrentVersion").add("ProfileGuid").add(guid))
    by_guid.set_string("SidString", ALICE_SRC)
    device, _ = backend(windows, tmp_path)

    assert device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES]).ok
    assert by_guid.values["SIDSTRING"] == ("SidString", 1,
                                           (ALICE_TGT + "\0").encode("utf-16-le"))
    assert device.undo_reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES]).ok
    assert by_guid.values["SIDSTRING"] == ("SidString", 1,
                                           (ALICE_SRC + "\0").encode("utf-16-le"))
    assert windows.handles == {}


def test_a_local_profile_without_a_guid_is_remapped_without_one(windows: Windows,
                                                                tmp_path: Path) -> None:
    _, listing, _ = profile_computer(windows, tmp_path)
    device, _ = backend(windows, tmp_path)
    assert device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES]).ok
    assert "GUID" not in listing.subkeys[ALICE_TGT].values
    assert not [c for c in windows.called("RegOpenKeyExW") if "ProfileGuid" in str(c.args[1])]


def test_undoing_an_add_restores_profile_list_and_leaves_the_acls(windows: Windows,
                                                                  tmp_path: Path) -> None:
    folder, listing, _ = profile_computer(windows, tmp_path)
    device, _ = backend(windows, tmp_path, file_roots=(folder,))
    scopes = [ReaclScope.FILES, ReaclScope.PROFILES]
    assert device.reacl(TABLE, SRC, ReaclMode.ADD, scopes).ok
    added = windows.files[str(folder / "Documents")]
    assert sids_of(added)[1][:2] == [ALICE_SRC, ALICE_TGT]

    back = device.undo_reacl(TABLE, SRC, ReaclMode.ADD, scopes)

    assert back.ok, back.message
    assert back.details["files"] == {"skipped": "nothing to undo after add"}
    assert back.details["profiles"]["restored"] == 1
    assert set(listing.subkeys) == {ALICE_SRC}
    assert windows.files[str(folder / "Documents")] == added   # the source ACEs were kept


def test_a_copy_left_by_a_killed_run_is_finished_another_profile_is_not_overwritten(
        windows: Windows, tmp_path: Path) -> None:
    _, listing, _ = profile_computer(windows, tmp_path)
    listing.subkeys[ALICE_TGT] = listing.subkeys[ALICE_SRC].copy(ALICE_TGT)   # killed here
    device, _ = backend(windows, tmp_path)

    outcome = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES])
    assert outcome.ok and set(listing.subkeys) == {ALICE_TGT, f"{ALICE_SRC}.BAK"}

    listing.subkeys[f"{ALICE_SRC}.BAK"].name = ALICE_SRC
    listing.subkeys[ALICE_SRC] = listing.subkeys.pop(f"{ALICE_SRC}.BAK")
    listing.subkeys[ALICE_TGT].set_string("ProfileImagePath", "C:\\Users\\alice.TGT")
    clash = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES])
    assert not clash.ok
    assert "has a profile of their own" in " ".join(clash.details["errors"])
    assert ALICE_SRC in listing.subkeys        # nothing renamed


def test_local_group_members_translated_one_at_a_time(windows: Windows,
                                                      tmp_path: Path) -> None:
    windows.groups[ADMINS] = ("Administrateurs", [f"{SRC}-500", STAFF_SRC, BOB_SRC])
    windows.groups["S-1-5-32-545"] = ("Utilisateurs", [ALICE_SRC, ALICE_TGT])
    device, _ = backend(windows, tmp_path, local_groups=(ADMINS, "S-1-5-32-545"))

    outcome = device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.LOCAL_GROUPS])

    assert outcome.ok, outcome.message
    assert windows.groups[ADMINS][1] == [f"{SRC}-500", BOB_SRC, STAFF_TGT]
    assert windows.groups["S-1-5-32-545"][1] == [ALICE_TGT]
    assert set(outcome.details["unmatched"]) == {f"{SRC}-500", BOB_SRC}
    # A membership translated is one change, as on Linux (STAFF's and ALICE's).
    assert outcome.details["localGroups"]["changed"] == 2
    changes = [(c.name, c.args[1], c.seen["member"]) for c in windows.calls
               if c.name.startswith("NetLocalGroup") and c.name != "NetLocalGroupGetMembers"]
    assert changes == [("NetLocalGroupAddMembers", "Administrateurs", STAFF_TGT),
                       ("NetLocalGroupDelMembers", "Administrateurs", STAFF_SRC),
                       ("NetLocalGroupDelMembers", "Utilisateurs", ALICE_SRC)]
    assert read_sid(address(windows.called("LookupAccountSidW")[0].args[1])) == ADMINS
    assert windows.allocations == {}            # NetApiBufferFree for every buffer


def test_join_leaves_keeping_the_account_then_joins_the_prestaged_one(
        windows: Windows, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    device, ran = backend(windows, tmp_path)

    outcome = device.join("tgt.example", "dc1.tgt.example", "ws1", PASSWORD)

    assert outcome.ok, outcome.message
    assert [n for n in windows.names_called() if n.startswith("Net") and "Buffer" not in n] \
        == ["NetGetJoinInformation", "NetUnjoinDomain", "NetJoinDomain"]
    assert windows.called("NetUnjoinDomain")[0].seen["options"] == 0   # no NETSETUP_ACCT_DELETE
    assert windows.called("NetUnjoinDomain")[0].args[:3] == (None, None, None)
    (join,) = windows.called("NetJoinDomain")
    assert join.args[:4] == (None, "tgt.example\\dc1.tgt.example", None, None)
    # NETSETUP_JOIN_DOMAIN | NETSETUP_JOIN_UNSECURE | NETSETUP_MACHINE_PWD_PASSED
    assert join.args[5] == 0x1 | 0x40 | 0x80
    assert join.seen["password"] == PASSWORD
    assert ctypes.wstring_at(ctypes.addressof(join.args[4])) == ""   # wiped after the call
    backup = json.loads((tmp_path / "state" / BACKUP_FILE).read_text())
    assert backup == {"domain": "SRC", "dnsDomain": "src.example", "computerName": "WS1"}
    assert ran == []
    assert caplog.records and not any(PASSWORD in r.getMessage() for r in caplog.records)
    assert PASSWORD not in outcome.message + json.dumps(outcome.details)

    assert device.join("tgt.example", "dc1.tgt.example", "WS1", PASSWORD).message.endswith(
        "already joined to tgt.example")


def test_join_refuses_another_computers_account_before_leaving(
        windows: Windows, tmp_path: Path) -> None:
    device, _ = backend(windows, tmp_path)
    outcome = device.join("tgt.example", "dc1.tgt.example", "WS2", PASSWORD)
    assert not outcome.ok and "WS2$" in outcome.message and "WS1" in outcome.message
    assert not windows.called("NetUnjoinDomain")
    windows.calls.clear()
    bad = device.join("tgt.example", "dc1 ; calc", "WS1", PASSWORD)
    assert not bad.ok and "domain_controller" in bad.message and windows.calls == []


def test_a_failed_join_after_leaving_says_where_the_device_is(windows: Windows,
                                                              tmp_path: Path) -> None:
    windows.fail["NetJoinDomain"] = 1326
    device, _ = backend(windows, tmp_path)
    outcome = device.join("tgt.example", "dc1.tgt.example", "WS1", PASSWORD)
    assert not outcome.ok
    assert outcome.message.startswith("DomainJoin: NetJoinDomain on tgt.example: Win32 error"
                                      " 1326 (ERROR_LOGON_FAILURE)")
    assert "left SRC (its account kept) and is in a workgroup" in outcome.message
    del windows.fail["NetJoinDomain"]
    retried = device.join("tgt.example", "dc1.tgt.example", "WS1", PASSWORD)
    assert retried.ok
    # The backup still names the source, not the workgroup the failed try left it in.
    assert json.loads((tmp_path / "state" / BACKUP_FILE).read_text())["domain"] == "SRC"


def test_rollback_rejoins_the_source_from_the_backup(windows: Windows, tmp_path: Path) -> None:
    device, _ = backend(windows, tmp_path)
    assert device.join("tgt.example", "dc1.tgt.example", "WS1", PASSWORD).ok

    refused = device.rejoin_source()
    assert not refused.ok and "one-time password" in refused.message

    outcome = device.rejoin_source("Src-0ne-time!")
    assert outcome.ok, outcome.message
    last = windows.called("NetJoinDomain")[-1]
    assert last.args[1] == "src.example" and last.args[5] == 0xC1
    assert windows.join["name"] == "SRC"
    assert not (tmp_path / "state" / BACKUP_FILE).exists()


def djoin_savefile(binary: bytes) -> bytes:
    """As djoin /provision /savefile and Samba's net offlinejoin write it."""
    return b"\xff\xfe" + (base64.b64encode(binary).decode() + "\0").encode("utf-16-le")


def test_offline_join_gives_windows_the_binary_blob_and_wipes_it(
        windows: Windows, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    binary = b"\x01\x10\x08\x00\xcc\xcc\xcc\xcc" + b"machine-password-in-clear" * 8
    device, ran = backend(windows, tmp_path)

    outcome = device.offline_join(djoin_savefile(binary))

    assert outcome.ok, outcome.message
    (call,) = windows.called("NetRequestOfflineDomainJoin")
    assert call.seen["data"] == binary and call.args[1] == len(binary)
    assert call.args[2] == 0x40000000                  # NETSETUP_PROVISION_ONLINE_CALLER
    assert call.args[3] == "C:\\Windows"
    assert bytes(call.args[0]) == bytes(len(binary))   # wiped after the call
    assert windows.names_called().index("NetUnjoinDomain") < windows.names_called().index(
        "NetRequestOfflineDomainJoin")
    assert ran == []
    assert not any("machine-password" in r.getMessage() for r in caplog.records)

    windows.calls.clear()
    refused = device.offline_join(b"not a blob, machine-password-in-clear")
    assert not refused.ok and "neither ODJ_PROVISION_DATA" in refused.message
    assert "machine-password" not in refused.message and windows.calls == []


def test_entra_join_installs_a_package_only_system_reads_then_removes_it(
        windows: Windows, tmp_path: Path) -> None:
    package = b"PK\x03\x04 bulk-token-eyJhbGciOi secret"
    seen: dict[str, Any] = {}
    polls = iter(["AzureAdJoined : NO", "AzureAdJoined : NO",
                  "+---+\n| Device State |\n+---+\n             AzureAdJoined : YES\n"
                  "                TenantName : Contoso\n"])

    def install(argv: Sequence[str]) -> CommandResult:
        path = argv[-1].split("-PackagePath '")[1].split("'")[0]
        seen.update(path=path, content=Path(path).read_bytes())
        return CommandResult(0, "", "")

    ticks = iter(range(0, 10_000, 15))
    device, ran = backend(windows, tmp_path, answers={
        "powershell.exe": install,
        "dsregcmd.exe": lambda argv: CommandResult(0, next(polls), "")})
    device.clock = lambda: float(next(ticks))
    device.sleep = lambda seconds: None

    outcome = device.entra_join(package)

    assert outcome.ok, outcome.message
    assert outcome.details["tenantName"] == "Contoso"
    assert ran[1][0] == "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"
    assert ran[1][-1] == (f"Install-ProvisioningPackage -PackagePath '{seen['path']}'"
                          " -ForceInstall -QuietInstall")
    assert seen["content"] == package and not Path(seen["path"]).exists()
    (restrict,) = windows.called("SetNamedSecurityInfoW")
    assert restrict.args[0] == seen["path"] and restrict.seen["size"] == 0   # before the bytes
    assert restrict.seen["info"] == 0x7 | 0x80000000 and restrict.seen["owner"] == SYSTEM
    assert sids_of(windows.files[seen["path"]]) == (SYSTEM, [SYSTEM])
    assert not any(b"bulk-token" in " ".join(argv).encode() for argv in ran)


def test_cached_logons_policy_checked_users_notified_result_unverified(
        windows: Windows, tmp_path: Path) -> None:
    winlogon = (windows.hklm.add("SOFTWARE").add("Microsoft").add("Windows NT")
                .add("CurrentVersion").add("Winlogon"))
    device, ran = backend(windows, tmp_path)

    unset = device.cache_credentials(["alice"], 60)
    assert unset.ok and unset.details["cachedLogonsCount"] == 10
    assert "not verified" in unset.message and unset.details["unverified"] == ["alice"]
    assert ran[0][:3] == ["C:\\Windows\\System32\\msg.exe", "*", "/TIME:3600"]

    winlogon.set_string("CachedLogonsCount", "0")
    off = device.cache_credentials(["alice"], 60)
    assert not off.ok and "CachedLogonsCount is 0" in off.message
    assert "Number of previous logons to cache" in off.message


def test_reboot_with_shutdown_privilege_and_a_planned_reason(windows: Windows,
                                                             tmp_path: Path) -> None:
    device, _ = backend(windows, tmp_path)
    outcome = device.reboot(300, "Ferry restarts this computer in 5 minutes")
    assert outcome.ok, outcome.message
    assert windows.shutdowns == [(None, "Ferry restarts this computer in 5 minutes", 300, False,
                                  True, 0x00020000 | 0x00000004 | 0x80000000)]
    (call,) = windows.called("InitiateSystemShutdownExW")
    assert "SeShutdownPrivilege" in call.enabled and windows.enabled == set()
    assert device.reboot(300, "again").message == "Reboot: a restart was scheduled already"
    windows.calls.clear()
    assert not device.reboot(-1, "").ok and windows.calls == []
    assert not device.reboot(10, "x" * 513).ok and windows.calls == []


def test_facts_local_names_and_the_computer_dn(windows: Windows, tmp_path: Path) -> None:
    device, _ = backend(windows, tmp_path)
    assert device.facts() == {"os": "windows", "computerName": "WS1", "dnsHostName": "ws1",
                              "domain": "src.example", "netbiosDomain": "SRC", "workgroup": "",
                              "computerDn": "CN=WS1,OU=Workstations,DC=src,DC=example"}
    windows.fail["GetComputerObjectNameW"] = 1355
    facts = device.facts()
    assert "computerDn" not in facts
    assert facts["computerDnError"].startswith("GetComputerObjectNameW on NameFullyQualifiedDN:"
                                               " Win32 error 1355 (ERROR_NO_SUCH_DOMAIN)")


def _files(device: WindowsBackend) -> Any:
    return device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.FILES])


def _registry(device: WindowsBackend) -> Any:
    return device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.REGISTRY])


def _profiles(device: WindowsBackend) -> Any:
    return device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.PROFILES])


def _groups(device: WindowsBackend) -> Any:
    return device.reacl(TABLE, SRC, ReaclMode.REPLACE, [ReaclScope.LOCAL_GROUPS])


FAILURES = [
    ("OpenProcessToken", 5, _files), ("LookupPrivilegeValueW", 1313, _files),
    ("AdjustTokenPrivileges", 1314, _files), ("GetNamedSecurityInfoW", 5, _files),
    ("SetNamedSecurityInfoW", 5, _files), ("GetNamedSecurityInfoW", 99999, _files),
    ("RegOpenKeyExW", 2, _registry), ("RegGetKeySecurity", 5, _registry),
    ("RegSetKeySecurity", 5, _registry), ("RegEnumKeyExW", 1018, _registry),
    ("RegLoadKeyW", 32, _profiles), ("RegCopyTreeW", 5, _profiles),
    ("RegRenameKey", 5, _profiles), ("RegCreateKeyExW", 5, _profiles),
    ("RegSetValueExW", 5, _profiles), ("RegGetValueW", 2, _profiles),
    ("LookupAccountSidW", 1332, _groups), ("NetLocalGroupGetMembers", 1376, _groups),
    ("NetLocalGroupAddMembers", 1387, _groups), ("NetLocalGroupDelMembers", 5, _groups),
    ("NetGetJoinInformation", 2138, lambda d: d.join("tgt.example", "dc1", "WS1", PASSWORD)),
    ("NetUnjoinDomain", 5, lambda d: d.join("tgt.example", "dc1", "WS1", PASSWORD)),
    ("NetJoinDomain", 1355, lambda d: d.join("tgt.example", "dc1", "WS1", PASSWORD)),
    ("NetJoinDomain", 1787, lambda d: d.join("tgt.example", "dc1", "WS1", PASSWORD)),
    ("GetComputerNameExW", 5, lambda d: d.join("tgt.example", "dc1", "WS1", PASSWORD)),
    ("NetRequestOfflineDomainJoin", 87,
     lambda d: d.offline_join(b"\x01\x10\x08\x00\xcc\xcc\xcc\xcc" + bytes(40))),
    ("RegGetValueW", 5, lambda d: d.cache_credentials(["alice"], 60)),
    ("InitiateSystemShutdownExW", 1115, lambda d: d.reboot(60, "restart")),
]


@pytest.mark.parametrize(("call", "code", "action"), FAILURES,
                         ids=[f"{c}-{n}" for c, n, _ in FAILURES])
def test_every_failure_names_the_call_and_the_win32_error(
        windows: Windows, tmp_path: Path, call: str, code: int, action: Any) -> None:
    profile_computer(windows, tmp_path)
    windows.files[str(tmp_path / "data")] = descriptor(ALICE_SRC, (ALICE_SRC, 0))
    (tmp_path / "data").mkdir()
    windows.hklm.add("SOFTWARE").add("Contoso", descriptor(ALICE_SRC, (ALICE_SRC, 0))).add(
        "App", descriptor(ALICE_SRC, (ALICE_SRC, 0)))
    windows.groups[ADMINS] = ("Administrators", [ALICE_SRC])
    windows.fail[call] = code
    device, _ = backend(windows, tmp_path, file_roots=(tmp_path / "data",),
                        registry_keys=("HKLM\\SOFTWARE\\Contoso",), local_groups=(ADMINS,))

    outcome = action(device)

    assert windows.called(call), f"{call} was not reached"
    assert not outcome.ok
    said = outcome.message + " " + " ".join(outcome.details.get("errors", []))
    assert f"{call}" in said and f"Win32 error {code}" in said, said
    name, hint = ERRORS.get(code, ("", SYSTEM_ERRORS_URL))
    assert f"({name})" in said if name else SYSTEM_ERRORS_URL in said
    assert hint in said
    assert windows.enabled == set()          # privileges put back on the failure path too
