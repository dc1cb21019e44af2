"""Local groups' members translated: NetLocalGroupGetMembers, NetLocalGroupAddMembers and
NetLocalGroupDelMembers at level 0 (LOCALGROUP_MEMBERS_INFO_0: one PSID per member).

Groups are named by well-known SID (their names are localized: Administrators is
Administrateurs on a French Windows) and looked up with LookupAccountSidW. Members are added
and removed one at a time, because a batch that meets one member already present adds none.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from functools import partial

from ferry_agent.sid import Sid, parse_sid, sid_from_bytes

from ..descriptor import SidMap
from ..figures import ReaclFigures
from ..group_members import translate_members
from ..outcome import ReaclMode
from .win32 import DWORD, HANDLE, PBYTE, Win32, Win32Error

# Administrators, Users, Remote Desktop Users: where domain accounts get local rights.
DEFAULT_GROUPS = ("S-1-5-32-544", "S-1-5-32-545", "S-1-5-32-555")
MAX_PREFERRED_LENGTH = 0xFFFFFFFF
ERROR_MORE_DATA = 234
ERROR_MEMBER_NOT_IN_ALIAS = 1377
ERROR_MEMBER_IN_ALIAS = 1378
MAX_NAME = 257   # UNLEN/GNLEN and the terminating NUL


class LOCALGROUP_MEMBERS_INFO_0(ctypes.Structure):  # Windows' name, as in lmaccess.h
    _fields_ = [("lgrmi0_sid", HANDLE)]


def translate_groups(win32: Win32, groups: Sequence[str], table: SidMap, mode: ReaclMode,
                     source_domain: str, figures: ReaclFigures) -> None:
    """Each group: add the target of every matched member (add, replace), remove the source
    member (replace, remove). A group that cannot be read is an error; the others go on."""
    domain = str(parse_sid(source_domain)) if source_domain else ""
    for group_sid in groups:
        try:
            name = group_name(win32, group_sid)
            current = members(win32, name)
        except Win32Error as exc:
            figures.error(f"local group {group_sid}: left as it is: {exc}")
            continue
        translate_members(
            f"local group {name}", current, table, mode, domain, figures,
            add=partial(change_member, win32, "NetLocalGroupAddMembers", name),
            remove=partial(change_member, win32, "NetLocalGroupDelMembers", name))


def group_name(win32: Win32, sid: str) -> str:
    """The local name of the group `sid` (LookupAccountSidW on this computer)."""
    binary = _sid_buffer(parse_sid(sid).to_bytes())
    name, domain = ctypes.create_unicode_buffer(MAX_NAME), ctypes.create_unicode_buffer(MAX_NAME)
    name_size, domain_size, use = DWORD(MAX_NAME), DWORD(MAX_NAME), DWORD()
    win32.true("LookupAccountSidW", None, binary, name, ctypes.byref(name_size), domain,
               ctypes.byref(domain_size), ctypes.byref(use), subject=sid)
    return name.value


def members(win32: Win32, group: str) -> list[Sid]:
    """The group's members by SID; every buffer freed, ERROR_MORE_DATA read to the end."""
    found: list[Sid] = []
    resume = ctypes.c_size_t(0)
    while True:
        buffer, read, total = HANDLE(), DWORD(), DWORD()
        code = win32.status("NetLocalGroupGetMembers", None, group, 0, ctypes.byref(buffer),
                            MAX_PREFERRED_LENGTH, ctypes.byref(read), ctypes.byref(total),
                            ctypes.byref(resume), subject=group, ok=(0, ERROR_MORE_DATA))
        try:
            entries = ctypes.cast(buffer, ctypes.POINTER(LOCALGROUP_MEMBERS_INFO_0))
            for index in range(read.value):
                address = entries[index].lgrmi0_sid
                count = ctypes.string_at(address, 8)[1]
                found.append(sid_from_bytes(ctypes.string_at(address, 8 + 4 * count))[0])
        finally:
            if buffer.value:
                win32.fn("NetApiBufferFree")(buffer)
        if code == 0:
            return found


def change_member(win32: Win32, call: str, group: str, member: Sid) -> None:
    """Add or delete one member; already there (add) or already gone (delete) is no error."""
    binary = _sid_buffer(member.to_bytes())
    entry = (LOCALGROUP_MEMBERS_INFO_0 * 1)()
    entry[0].lgrmi0_sid = ctypes.addressof(binary)
    done = ERROR_MEMBER_IN_ALIAS if call == "NetLocalGroupAddMembers" else ERROR_MEMBER_NOT_IN_ALIAS
    win32.status(call, None, group, 0, ctypes.cast(entry, PBYTE), 1,
                 subject=f"{group} ({member})", ok=(0, done))


def _sid_buffer(data: bytes) -> ctypes.Array[ctypes.c_char]:
    return ctypes.create_string_buffer(data, len(data))
