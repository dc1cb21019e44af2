"""The agent's end of the private channel from password_hook.py: a Unix socket in the agent's
0700 state folder (the socket itself 0600, and a peer of another user is refused), one
connection per change, holding the still-encrypted LDIF, answered once it is handled.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
import re
import select
import socket
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ..sid import SidError, parse_sid
from .password_hook import MAX_LDIF
from .samba_gpg import PasswordChangesError

MAX_SOCKET_PATH = 107  # what a sockaddr_un holds
READ_TIMEOUT = 30.0  # for the hook to send its LDIF once connected
_LINE = re.compile(r"([A-Za-z][A-Za-z0-9;=-]*)(::?)[ ]?(.*)", re.ASCII)
_WANTED = {"dn", "objectguid", "objectsid", "samaccountname", "virtualsambagpg", "isdeleted"}


@dataclass(frozen=True)
class HookedChange:
    """One account as syncpasswords saw it; `ciphertext` is Primary:SambaGPG (b"" if none)."""

    guid: str
    sid: str
    sam: str
    dn: str
    deleted: bool
    ciphertext: bytes = field(repr=False)

    @property
    def account(self) -> str:
        """How errors name the account (never with its password)."""
        return f'"{self.dn}" ({self.sam})' if self.dn else self.sam or self.guid


def parse_ldif(data: bytes) -> HookedChange:
    """syncpasswords' LDIF of one account (samba's write_ldif: folded lines, `::` base64)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise PasswordChangesError("hook", "the hook sent LDIF that is not UTF-8") from None
    values: dict[str, bytes] = {}
    for line in re.sub(r"\r?\n ", "", text).splitlines():
        if not line or line.startswith("#"):
            continue
        match = _LINE.fullmatch(line)
        if match is None:
            raise PasswordChangesError("hook", "the hook sent a line that is not LDIF:"
                                       f" {line[:80]!r}")
        name, kind, value = match.group(1).lower(), match.group(2), match.group(3)
        if name not in _WANTED:
            continue
        try:
            values[name] = base64.b64decode(value, validate=True) if kind == "::" \
                else value.encode("utf-8")
        except binascii.Error:
            raise PasswordChangesError("hook", f"the hook sent {match.group(1)} that is not"
                                       " base64") from None
    dn = values.get("dn", b"").decode("utf-8", "replace")
    try:
        guid = str(uuid.UUID(values["objectguid"].decode("ascii")))
        sid = str(parse_sid(values["objectsid"].decode("ascii")))
    except KeyError as missing:
        raise PasswordChangesError("hook", f'"{dn}": the change lacks {missing.args[0]}; the'
                                   " syncpasswords cache was made with other --attributes: remove"
                                   " the agent's password state folder to make it anew") from None
    except (ValueError, UnicodeDecodeError, SidError) as exc:
        raise PasswordChangesError("hook", f'"{dn}": objectGUID or objectSid does not parse:'
                                   f" {exc}") from None
    return HookedChange(
        guid=guid, sid=sid, sam=values.get("samaccountname", b"").decode("utf-8", "replace"),
        dn=dn, deleted=values.get("isdeleted", b"").upper() == b"TRUE",
        ciphertext=values.get("virtualsambagpg", b""),
    )


class HookConnection:
    """One hook waiting for the agent's answer."""

    def __init__(self, sock: socket.socket):
        self._sock = sock

    def read(self) -> bytes:
        """The framed LDIF; an error if it is too large, short, or slow to come."""
        header = self._exactly(4)
        (length,) = struct.unpack(">I", header)
        if length > MAX_LDIF:
            raise PasswordChangesError("hook", f"the hook announced {length} bytes, more than"
                                       f" {MAX_LDIF}")
        return self._exactly(length)

    def answer(self, ok: bool, text: str) -> None:
        """Tell the hook (and through it syncpasswords) how it went; the hook then ends."""
        line = ("OK " if ok else "ERROR ") + " ".join(text.split())[:1000] + "\n"
        with contextlib.suppress(OSError):  # the hook may be gone (syncpasswords killed)
            self._sock.sendall(line.encode("utf-8"))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()

    def _exactly(self, count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            try:
                chunk = self._sock.recv(min(count - len(data), 65536))
            except OSError as exc:  # socket.timeout included
                raise PasswordChangesError("hook", f"reading from the hook: {exc}") from None
            if not chunk:
                raise PasswordChangesError("hook", "the hook ended before sending its change")
            data += chunk
        return bytes(data)


class HookListener:
    """The socket password_hook.py connects to, at `path` inside a 0700 folder."""

    def __init__(self, path: Path):
        if len(str(path).encode()) > MAX_SOCKET_PATH:
            raise PasswordChangesError("config", f"{path}: longer than a Unix socket path may be"
                                       f" ({MAX_SOCKET_PATH} bytes); pick a shorter state folder")
        self.path = path
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an agent that was killed
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o177)  # the socket is 0600 from the start, not after a chmod
        try:
            self._sock.bind(str(path))
        finally:
            os.umask(old)
        self._sock.listen(4)

    def accept(self, timeout: float) -> HookConnection | None:
        """The next hook to connect within `timeout` seconds, or None."""
        ready, _, _ = select.select([self._sock], [], [], max(timeout, 0.0))
        if not ready:
            return None
        sock, _ = self._sock.accept()
        if _peer_uid(sock) != os.geteuid():
            sock.close()  # only this agent's user (syncpasswords runs as it) may hand changes
            return None
        sock.settimeout(READ_TIMEOUT)
        return HookConnection(sock)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid
