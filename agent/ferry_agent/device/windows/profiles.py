"""User profiles moved to the target SID: HKLM\\...\\ProfileList\\<source SID> copied to a
key for the target SID (its Sid value rewritten), the source kept as <source SID>.bak for a
rollback, and ProfileGuid\\<the profile's Guid>\\SidString pointed at the target SID (Windows
finds a domain profile by its GUID through it); then the profile folder and its hives
(NTUSER.DAT, UsrClass.dat) translated. A rollback points SidString back at the source.

A run killed between the copy and the rename leaves both keys with the same
ProfileImagePath: the next run recognises its own copy and finishes the rename. A target key
with a different folder is the target user's own profile (they logged on before the remap):
it is left alone and reported.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ferry_agent.errors import FerryAgentError
from ferry_agent.sid import parse_sid

from ..descriptor import SidMap
from ..figures import ReaclFigures
from ..outcome import ReaclMode
from .security import HKEY_LOCAL_MACHINE, HKEY_USERS, loaded_hive, reacl_keys, reacl_tree, subkeys
from .win32 import DWORD, HANDLE, Win32, Win32Error

PROFILE_LIST = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileList"
PROFILE_GUID = "SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\ProfileGuid"
REG_SZ = 1
ERROR_FILE_NOT_FOUND = 2
KEY_READ = 0x20019
KEY_ALL_ACCESS = 0xF003F
REG_BINARY = 3
RRF_RT_REG_SZ = 0x00000002   # REG_EXPAND_SZ is expanded and returned as REG_SZ
ERROR_MORE_DATA = 234
BACKUP_SUFFIX = ".bak"
# Where Windows keeps a profile's hives, relative to ProfileImagePath.
HIVES = ("NTUSER.DAT", "AppData\\Local\\Microsoft\\Windows\\UsrClass.dat")


class ProfileConflict(FerryAgentError):
    """The target SID has a profile of its own on this computer: nothing is overwritten."""


@dataclass
class ProfileFigures:
    """Profiles found, remapped now, remapped before, and left (with why)."""

    found: int = 0
    remapped: int = 0
    already: int = 0
    restored: int = 0

    def details(self, content: ReaclFigures) -> dict[str, object]:
        return {"found": self.found, "remapped": self.remapped, "already": self.already,
                "restored": self.restored, **content.details()}


def reacl_profiles(win32: Win32, table: SidMap, mode: ReaclMode, source_domain: str,
                   figures: ProfileFigures, content: ReaclFigures) -> None:
    """Each table source SID with a profile here: remapped (add, replace), then its folder and
    hives translated in `mode` (remove too, on profiles an earlier run remapped)."""
    with _profile_list(win32) as listing:
        names = {name.upper(): name for name in subkeys(win32, listing, PROFILE_LIST)}
        for source, target in table.table().items():
            key = names.get(source.upper()) or names.get((source + BACKUP_SUFFIX).upper())
            if key is None:
                continue
            figures.found += 1
            try:
                if mode is not ReaclMode.REMOVE:
                    _remap(win32, listing, names, source, target, figures)
                    if target.upper() in names:
                        point_guid(win32, listing, names[target.upper()], target)
                folder = image_path(win32, listing, names.get(target.upper()) or key)
            except (Win32Error, ProfileConflict) as exc:
                content.error(f"profile of {source}: left as it is: {exc}")
                continue
            translate_profile(win32, folder, source, table, mode, source_domain, content)


def _remap(win32: Win32, listing: HANDLE, names: dict[str, str], source: str, target: str,
           figures: ProfileFigures) -> None:
    has_source = source.upper() in names
    has_target = target.upper() in names
    if not has_source:
        figures.already += 1      # only <source>.bak is left: remapped by an earlier run
        return
    if has_target and image_path(win32, listing, names[target.upper()]) != image_path(
            win32, listing, names[source.upper()]):
        raise ProfileConflict(f"ProfileList\\{target} exists with another folder: the target"
                              " user has a profile of their own here; merge it by hand or"
                              " delete it, then retry")
    if not has_target:
        copy = HANDLE()
        disposition = DWORD()
        win32.status("RegCreateKeyExW", listing, target, 0, None, 0, KEY_ALL_ACCESS, None,
                     ctypes.byref(copy), ctypes.byref(disposition), subject=target)
        original = HANDLE()
        try:
            win32.status("RegOpenKeyExW", listing, names[source.upper()], 0, KEY_READ,
                         ctypes.byref(original), subject=source)
            try:
                win32.status("RegCopyTreeW", original, None, copy, subject=f"{source} to {target}")
            finally:
                win32.fn("RegCloseKey")(original)
            sid = parse_sid(target).to_bytes()
            data = (ctypes.c_ubyte * len(sid)).from_buffer_copy(sid)
            win32.status("RegSetValueExW", copy, "Sid", 0, REG_BINARY, data, len(sid),
                         subject=f"ProfileList\\{target}\\Sid")
        finally:
            win32.fn("RegCloseKey")(copy)
        names[target.upper()] = target
    win32.status("RegRenameKey", listing, names.pop(source.upper()), source + BACKUP_SUFFIX,
                 subject=source)
    names[(source + BACKUP_SUFFIX).upper()] = source + BACKUP_SUFFIX
    figures.remapped += 1


def restore_profiles(win32: Win32, table: SidMap, figures: ProfileFigures,
                     content: ReaclFigures, translate_back: bool) -> None:
    """Rollback: each remapped profile's folder and hives translated back (replace mode
    only: `translate_back`), then the target's key deleted and <source>.bak renamed back."""
    inverted = table.inverted()
    with _profile_list(win32) as listing:
        names = {name.upper(): name for name in subkeys(win32, listing, PROFILE_LIST)}
        for source, target in table.table().items():
            backup = names.get((source + BACKUP_SUFFIX).upper())
            if backup is None:
                continue
            figures.found += 1
            current = names.get(target.upper())
            try:
                if translate_back:
                    folder = image_path(win32, listing, current or backup)
                    translate_profile(win32, folder, source, inverted, ReaclMode.REPLACE, "",
                                      content)
                if current is not None:
                    win32.status("RegDeleteTreeW", listing, current, subject=current)
                win32.status("RegRenameKey", listing, backup, source, subject=backup)
                point_guid(win32, listing, source, source)
            except Win32Error as exc:
                content.error(f"profile of {source}: not restored: {exc}")
                continue
            figures.restored += 1


def translate_profile(win32: Win32, folder: Path, sid: str, table: SidMap, mode: ReaclMode,
                      source_domain: str, content: ReaclFigures) -> None:
    """The profile folder's files, then each hive it holds, loaded under HKU\\ferry-<SID>."""
    if not folder.is_dir():
        content.error(f"{folder}: the profile folder is missing; its security is left")
        return
    reacl_tree(win32, folder, table, mode, source_domain, content)
    for hive in HIVES:
        path = folder / Path(*hive.split("\\"))
        if not path.is_file():
            continue
        try:
            with loaded_hive(win32, path, sid) as mounted:
                reacl_keys(win32, HKEY_USERS, mounted, table, mode, source_domain, content)
        except Win32Error as exc:
            content.error(f"{path}: hive security left as it is: {exc}")


def image_path(win32: Win32, listing: HANDLE, key: str) -> Path:
    """The profile's folder (ProfileImagePath, environment strings expanded by Windows)."""
    text = _string(win32, listing, key, "ProfileImagePath")
    if text is None:
        raise Win32Error("RegGetValueW", ERROR_FILE_NOT_FOUND, f"ProfileList\\{key}")
    return Path(text)


def point_guid(win32: Win32, listing: HANDLE, key: str, sid: str) -> None:
    """ProfileGuid\\<Guid of ProfileList\\key>\\SidString set to `sid`; a profile without a
    Guid (a local account's) or without its ProfileGuid key has nothing to point."""
    guid = _string(win32, listing, key, "Guid")
    if not guid:
        return
    handle = HANDLE()
    where = f"{PROFILE_GUID}\\{guid}"
    code = win32.status("RegOpenKeyExW", HKEY_LOCAL_MACHINE, where, 0, KEY_ALL_ACCESS,
                        ctypes.byref(handle), subject=where, ok=(0, ERROR_FILE_NOT_FOUND))
    if code == ERROR_FILE_NOT_FOUND:
        return
    try:
        text = (sid + "\0").encode("utf-16-le")
        data = (ctypes.c_ubyte * len(text)).from_buffer_copy(text)
        win32.status("RegSetValueExW", handle, "SidString", 0, REG_SZ, data, len(text),
                     subject=f"{where}\\SidString")
    finally:
        win32.fn("RegCloseKey")(handle)


def _string(win32: Win32, listing: HANDLE, key: str, name: str) -> str | None:
    """A string value of ProfileList\\key (REG_EXPAND_SZ expanded); None when it is missing."""
    size = DWORD(520)
    while True:
        buffer = ctypes.create_string_buffer(size.value)
        code = win32.status("RegGetValueW", listing, key, name, RRF_RT_REG_SZ,
                            None, buffer, ctypes.byref(size), subject=f"ProfileList\\{key}",
                            ok=(0, ERROR_MORE_DATA, ERROR_FILE_NOT_FOUND))
        if code == ERROR_FILE_NOT_FOUND:
            return None
        if code == 0:
            return buffer.raw[:size.value].decode("utf-16-le").rstrip("\0")


@contextmanager
def _profile_list(win32: Win32) -> Iterator[HANDLE]:
    """HKLM\\...\\ProfileList opened for the block, closed after."""
    key = HANDLE()
    win32.status("RegOpenKeyExW", HKEY_LOCAL_MACHINE, PROFILE_LIST, 0, KEY_ALL_ACCESS,
                 ctypes.byref(key), subject=f"HKLM\\{PROFILE_LIST}")
    try:
        yield key
    finally:
        win32.fn("RegCloseKey")(key)
