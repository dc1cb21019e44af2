"""Domain membership on Windows: where the computer is (NetGetJoinInformation), leaving the
source (NetUnjoinDomain), joining a pre-staged account (NetJoinDomain, unsecure join with its
one-time password) and applying an offline join blob (NetRequestOfflineDomainJoin).

Secrets reach Windows only as call arguments, from buffers overwritten right after the call;
no command line and no file ever holds them. The equivalent of offline_join from a shell,
which needs the blob in a file and is therefore not used, is
    djoin /requestODJ /loadfile <blob file> /windowspath %SystemRoot% /localos
"""

from __future__ import annotations

import base64
import binascii
import ctypes
import re
from dataclasses import dataclass

from ferry_agent.errors import FerryAgentError

from .win32 import HANDLE, Win32, wipe

NETSETUP_JOIN_DOMAIN = 0x00000001
NETSETUP_JOIN_UNSECURE = 0x00000040      # to a pre-created account, no user credential
NETSETUP_MACHINE_PWD_PASSED = 0x00000080  # lpPassword is that account's (one-time) password
NETSETUP_ACCT_DELETE = 0x00000004         # never passed: the gateway disables the source's
PRESTAGED_JOIN = NETSETUP_JOIN_DOMAIN | NETSETUP_JOIN_UNSECURE | NETSETUP_MACHINE_PWD_PASSED
NETSETUP_PROVISION_ONLINE_CALLER = 0x40000000   # lpWindowsPath is the running Windows
NERR_SETUP_NOT_JOINED = 2692
# NETSETUP_JOIN_STATUS
NET_SETUP_UNKNOWN, NET_SETUP_UNJOINED, NET_SETUP_WORKGROUP, NET_SETUP_DOMAIN = 0, 1, 2, 3
# An NDR type-serialization header (version 1, little endian, 8 bytes, filler 0xcccccccc):
# how ODJ_PROVISION_DATA, NetRequestOfflineDomainJoin's input, begins.
NDR_HEADER = b"\x01\x10\x08\x00\xcc\xcc\xcc\xcc"
MAX_BLOB = 1 << 20
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*", re.ASCII)


class JoinRefused(FerryAgentError, ValueError):
    """A join request that cannot go to Windows as it stands (nothing was changed)."""


@dataclass(frozen=True)
class Membership:
    """NetGetJoinInformation's answer: the domain's (NetBIOS) or workgroup's name."""

    name: str
    status: int

    @property
    def joined(self) -> bool:
        return self.status == NET_SETUP_DOMAIN


@dataclass(frozen=True)
class JoinRequest:
    """NetJoinDomain's lpDomain: "domain\\dc" for a preferred DC, else the domain alone (Windows
    locates a DC); DNS or NetBIOS names."""

    domain: str
    domain_controller: str = ""

    def __post_init__(self) -> None:
        for name in ("domain", "domain_controller"):
            value = getattr(self, name)
            if name == "domain_controller" and value == "":
                continue
            if not isinstance(value, str) or not _HOST.fullmatch(value):
                raise JoinRefused(f"NetJoinDomain: {name} must be a DNS or NetBIOS name, not"
                                  f" {value!r}")

    @property
    def lp_domain(self) -> str:
        if not self.domain_controller:
            return self.domain
        return f"{self.domain}\\{self.domain_controller}"


def membership(win32: Win32) -> Membership:
    name, status = HANDLE(), ctypes.c_int()
    win32.status("NetGetJoinInformation", None, ctypes.byref(name), ctypes.byref(status))
    try:
        return Membership(ctypes.wstring_at(name.value) if name.value else "", status.value)
    finally:
        if name.value:
            win32.fn("NetApiBufferFree")(name)


def unjoin(win32: Win32) -> None:
    """Leave the domain, keeping its computer account (no NETSETUP_ACCT_DELETE: disabling it,
    when the migration says so, is the source directory agent's work, and a kept account is
    what a rollback re-joins). Not joined already is no error."""
    win32.status("NetUnjoinDomain", None, None, None, 0, ok=(0, NERR_SETUP_NOT_JOINED))


def join(win32: Win32, request: JoinRequest, one_time_password: str) -> None:
    """NetJoinDomain(NULL, "domain\\dc", NULL, NULL, password, unsecure pre-staged join)."""
    if not one_time_password:
        raise JoinRefused("NetJoinDomain: no one-time password was staged for the account")
    secret = ctypes.create_unicode_buffer(one_time_password)
    try:
        win32.status("NetJoinDomain", None, request.lp_domain, None, None, secret,
                     PRESTAGED_JOIN, subject=request.domain)
    finally:
        wipe(secret)


def request_offline_join(win32: Win32, blob: bytes, windows_path: str) -> None:
    """NetRequestOfflineDomainJoin(data, size, NETSETUP_PROVISION_ONLINE_CALLER, windows)."""
    data = provision_data(blob)
    buffer = (ctypes.c_ubyte * len(data)).from_buffer_copy(data)
    try:
        win32.status("NetRequestOfflineDomainJoin", buffer, len(data),
                     NETSETUP_PROVISION_ONLINE_CALLER, windows_path, subject=windows_path)
    finally:
        wipe(buffer)


def provision_data(blob: bytes) -> bytes:
    """The binary ODJ_PROVISION_DATA from what was staged: that binary itself, or a djoin
    savefile (UTF-16LE base64, as djoin.exe and Samba's net offlinejoin write it). The blob
    holds a machine password in clear, so no message quotes any of it."""
    if not blob or len(blob) > MAX_BLOB:
        raise JoinRefused(f"offline join: the staged blob is {len(blob)} bytes (expected 1 to"
                          f" {MAX_BLOB}); stage it again")
    if blob.startswith(NDR_HEADER):
        return bytes(blob)
    try:
        text = blob.decode("utf-16-le" if blob[:2] == b"\xff\xfe" else "ascii")
        data = base64.b64decode(text.lstrip("\ufeff").rstrip("\x00\r\n "), validate=True)
    except (UnicodeDecodeError, binascii.Error):
        data = b""
    if not data.startswith(NDR_HEADER):
        raise JoinRefused("offline join: the staged blob is neither ODJ_PROVISION_DATA nor a"
                          " djoin savefile holding it; provision it again (djoin /provision or"
                          " net offlinejoin provision)")
    return data
