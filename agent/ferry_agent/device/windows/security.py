"""ReACL on Windows: file and folder security through Get/SetNamedSecurityInfoW, registry key
security through RegGetKeySecurity/RegSetKeySecurity, unloaded hives through RegLoadKeyW.
The descriptor bytes are translated by the shared codec (ferry_agent.device.descriptor), the
same one the Linux backend uses on security.NTACL and hive sk cells.

SetNamedSecurityInfoW propagates inheritable ACEs to existing children itself, so a folder is
written before its children (a child's inherited ACEs arrive translated; only its explicit
ones are then left to change). RegSetKeySecurity does not propagate: every key is written.
The caller holds SeRestore, SeTakeOwnership and SeBackup (privileges.REACL_PRIVILEGES).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..descriptor import DescriptorError, SidMap, build_descriptor, parse_descriptor, translate
from ..figures import ReaclFigures
from ..outcome import ReaclMode
from .win32 import DWORD, HANDLE, Win32, Win32Error

SE_FILE_OBJECT = 1
OWNER_SECURITY_INFORMATION = 0x00000001
GROUP_SECURITY_INFORMATION = 0x00000002
DACL_SECURITY_INFORMATION = 0x00000004
PROTECTED_DACL_SECURITY_INFORMATION = 0x80000000
UNPROTECTED_DACL_SECURITY_INFORMATION = 0x20000000
READ_SECURITY = OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION
SE_DACL_PROTECTED = 0x1000
FILE_ATTRIBUTE_REPARSE_POINT = 0x400

# Predefined keys are sign-extended LONGs: ((HKEY)(ULONG_PTR)((LONG)0x80000002)).
HKEY_LOCAL_MACHINE = 0x80000002 - (1 << 32)
HKEY_USERS = 0x80000003 - (1 << 32)
ROOTS = {"HKLM": HKEY_LOCAL_MACHINE, "HKEY_LOCAL_MACHINE": HKEY_LOCAL_MACHINE,
         "HKU": HKEY_USERS, "HKEY_USERS": HKEY_USERS}
READ_CONTROL, WRITE_DAC, WRITE_OWNER = 0x00020000, 0x00040000, 0x00080000
KEY_ENUMERATE_SUB_KEYS = 0x0008
KEY_REACL_ACCESS = READ_CONTROL | WRITE_DAC | WRITE_OWNER | KEY_ENUMERATE_SUB_KEYS
ERROR_INSUFFICIENT_BUFFER = 122
ERROR_NO_MORE_ITEMS = 259
MAX_KEY_NAME = 256   # 255 characters and the terminating NUL


def reacl_tree(win32: Win32, root: Path, table: SidMap, mode: ReaclMode, source_domain: str,
               figures: ReaclFigures) -> None:
    """Every folder and file under `root` (itself included), parents before children;
    reparse points (junctions, symbolic links) are neither followed nor touched."""
    pending = [root]
    while pending:
        folder = pending.pop()
        reacl_path(win32, folder, table, mode, source_domain, figures)
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as exc:
            figures.error(f"{folder}: cannot list: {exc.strerror}")
            continue
        children = []
        for entry in entries:
            if _reparse_point(entry):
                continue
            if entry.is_dir(follow_symlinks=False):
                children.append(Path(entry.path))
            else:
                reacl_path(win32, Path(entry.path), table, mode, source_domain, figures)
        pending.extend(reversed(children))


def _reparse_point(entry: os.DirEntry[str]) -> bool:
    if entry.is_symlink():
        return True
    attributes = getattr(entry.stat(follow_symlinks=False), "st_file_attributes", 0)
    return bool(attributes & FILE_ATTRIBUTE_REPARSE_POINT)


def reacl_path(win32: Win32, path: Path, table: SidMap, mode: ReaclMode, source_domain: str,
               figures: ReaclFigures) -> None:
    """One file or folder: read its owner, group and DACL, translate, write back if changed."""
    figures.scanned += 1
    name = str(path)
    try:
        data = read_file_security(win32, name)
        result = translate(parse_descriptor(data), table, mode, source_domain)
        figures.matched |= result.matched
        figures.unmatched |= result.unmatched
        if not result.changes:
            return
        write_file_security(win32, name, build_descriptor(result.descriptor))
    except (Win32Error, DescriptorError) as exc:
        figures.error(f"{name}: security left as it is: {exc}")
        return
    figures.changed += 1


def read_file_security(win32: Win32, name: str) -> bytes:
    """The self-relative descriptor GetNamedSecurityInfoW returns (freed with LocalFree)."""
    descriptor = HANDLE()
    win32.status("GetNamedSecurityInfoW", name, SE_FILE_OBJECT, READ_SECURITY, None, None, None,
                 None, ctypes.byref(descriptor), subject=name)
    try:
        length = win32.fn("GetSecurityDescriptorLength")(descriptor)
        return ctypes.string_at(descriptor.value or 0, length)
    finally:
        win32.fn("LocalFree")(descriptor)


def write_file_security(win32: Win32, name: str, data: bytes) -> None:
    """SetNamedSecurityInfoW with pointers into `data` (owner, group, DACL), keeping the DACL's
    protection from inheritance as the descriptor says."""
    buffer = ctypes.create_string_buffer(data, len(data))
    control, owner_at, group_at, _, dacl_at = struct.unpack_from("<HIIII", data, 2)
    base = ctypes.addressof(buffer)
    info = 0
    if owner_at:
        info |= OWNER_SECURITY_INFORMATION
    if group_at:
        info |= GROUP_SECURITY_INFORMATION
    if dacl_at:   # never DACL_SECURITY_INFORMATION with NULL: that grants everyone everything
        info |= DACL_SECURITY_INFORMATION | (
            PROTECTED_DACL_SECURITY_INFORMATION if control & SE_DACL_PROTECTED
            else UNPROTECTED_DACL_SECURITY_INFORMATION)
    win32.status("SetNamedSecurityInfoW", name, SE_FILE_OBJECT, info,
                 base + owner_at if owner_at else None, base + group_at if group_at else None,
                 base + dacl_at if dacl_at else None, None, subject=name)


def split_key(text: str) -> tuple[int, str]:
    """`HKLM\\SOFTWARE\\Contoso` to (predefined key, subkey path)."""
    root, _, rest = text.partition("\\")
    if root.upper() not in ROOTS:
        raise ValueError(f"{text!r}: a registry key starts with HKLM\\ or HKU\\")
    return ROOTS[root.upper()], rest.strip("\\")


def reacl_keys(win32: Win32, root: int, path: str, table: SidMap, mode: ReaclMode,
               source_domain: str, figures: ReaclFigures) -> None:
    """The key `root\\path` and every key below it."""
    pending = [path]
    while pending:
        current = pending.pop()
        where = current or "(hive root)"
        key = HANDLE()
        try:
            win32.status("RegOpenKeyExW", root, current, 0, KEY_REACL_ACCESS,
                         ctypes.byref(key), subject=where)
        except Win32Error as exc:
            figures.error(f"{where}: security left as it is: {exc}")
            continue
        names: list[str] = []
        try:
            figures.scanned += 1
            try:
                _reacl_key(win32, key, where, table, mode, source_domain, figures)
            except (Win32Error, DescriptorError) as exc:
                figures.error(f"{where}: security left as it is: {exc}")
            try:
                names = subkeys(win32, key, where)
            except Win32Error as exc:
                figures.error(f"{where}: subkeys not listed: {exc}")
        finally:
            win32.fn("RegCloseKey")(key)
        pending.extend(f"{current}\\{name}" if current else name for name in reversed(names))


def _reacl_key(win32: Win32, key: HANDLE, where: str, table: SidMap, mode: ReaclMode,
               source_domain: str, figures: ReaclFigures) -> None:
    size = DWORD(4096)
    buffer = ctypes.create_string_buffer(size.value)
    code = win32.status("RegGetKeySecurity", key, READ_SECURITY, buffer, ctypes.byref(size),
                        subject=where, ok=(0, ERROR_INSUFFICIENT_BUFFER))
    if code == ERROR_INSUFFICIENT_BUFFER:   # size now holds what the descriptor needs
        buffer = ctypes.create_string_buffer(size.value)
        win32.status("RegGetKeySecurity", key, READ_SECURITY, buffer, ctypes.byref(size),
                     subject=where)
    result = translate(parse_descriptor(buffer.raw[:size.value]), table, mode, source_domain)
    figures.matched |= result.matched
    figures.unmatched |= result.unmatched
    if not result.changes:
        return
    data = build_descriptor(result.descriptor)
    # The descriptor's own control bits carry SE_DACL_PROTECTED to RegSetKeySecurity.
    win32.status("RegSetKeySecurity", key, READ_SECURITY,
                 ctypes.create_string_buffer(data, len(data)), subject=where)
    figures.changed += 1


def subkeys(win32: Win32, key: HANDLE, where: str) -> list[str]:
    """The names of `key`'s subkeys (RegEnumKeyExW until ERROR_NO_MORE_ITEMS)."""
    names: list[str] = []
    name = ctypes.create_unicode_buffer(MAX_KEY_NAME)
    while True:
        length = DWORD(MAX_KEY_NAME)
        code = win32.status("RegEnumKeyExW", key, len(names), name, ctypes.byref(length), None,
                            None, None, None, subject=where, ok=(0, ERROR_NO_MORE_ITEMS))
        if code == ERROR_NO_MORE_ITEMS:
            return names
        names.append(name.value)


@contextmanager
def loaded_hive(win32: Win32, hive: Path, sid: str) -> Iterator[str]:
    """An unloaded user hive (NTUSER.DAT, UsrClass.dat) mounted as HKU\\ferry-<SID> for the
    span of the block, then unloaded; needs SeBackup and SeRestore."""
    name = f"ferry-{sid}"
    win32.status("RegLoadKeyW", HKEY_USERS, name, str(hive), subject=str(hive))
    try:
        yield name
    finally:
        win32.status("RegUnLoadKeyW", HKEY_USERS, name, subject=f"HKU\\{name}")
