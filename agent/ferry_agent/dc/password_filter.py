"""Password changes on Windows DCs, by contract: what Ferry's password filter DLL hands the
agent and how, and the agent's side of it. Defined and tested here (unit tests, in-process);
the DLL itself and the named pipe have not been run on Windows.

The DLL (ferry_pwfilter.dll in %SystemRoot%\\System32, on every writable DC: LSA calls a
filter only on the DC where a change is made, after it is committed; read-only DCs forward
changes) is an LSA notification package, registered by adding `ferry_pwfilter` to the
REG_MULTI_SZ HKLM\\SYSTEM\\CurrentControlSet\\Control\\Lsa\\Notification Packages and
rebooting. Its exports:
- InitializeChangeNotify: TRUE.
- PasswordFilter: TRUE, always (Ferry enforces no password policy and never refuses one).
- PasswordChangeNotify(UserName, RelativeId, NewPassword): copies the change into a bounded
  in-memory queue (MAX_QUEUE, VirtualLock'ed, SecureZeroMemory'd once acknowledged, never
  written to disk) and returns STATUS_SUCCESS at once: LSA waits for it, so it never touches
  the pipe itself. One worker thread sends the queue in order, one message at a time, each
  after the previous one's ack; a full queue drops the oldest change and writes an Event Log
  entry naming its RID (a reboot loses the queue the same way).

The channel is a local named pipe, PIPE_NAME, that the agent's service creates
(FILE_FLAG_FIRST_PIPE_INSTANCE, PIPE_TYPE_MESSAGE, PIPE_REJECT_REMOTE_CLIENTS) with the DACL
`pipe_sddl`: SYSTEM (lsass, the DLL's process) may read and write, the agent's service SID
owns it, nobody else may open it. Before it sends anything the DLL checks the pipe's server
(GetNamedPipeServerProcessId, then that process's token holds the agent's service SID
`service_sid(SERVICE_NAME)`), so a process that created the pipe first receives nothing.

Messages, little-endian, one per change, each a frame: u32 length of the body, then the body
    u8 version (1) | u8 kind (1: change) | u64 sequence (counts up from 1 per DLL load) |
    u32 RID | u16 byte length, sAMAccountName UTF-16LE | u16 byte length, password UTF-16LE
answered by the agent with one ack frame (u32 length 10, then u8 version | u8 status | u64
the sequence acknowledged): TAKEN (handled: the DLL wipes it and sends the next), REFUSED
(malformed: resending cannot help; the DLL logs its RID and drops it) or RETRY (the agent
cannot take it now: the DLL keeps it and sends it again after a pause). The agent
acknowledges a change only once it is handled, as on Samba, so a change is lost only with
the DLL's queue; a resend may repeat one (setting the same password again does no harm).

The agent turns a message into the same PasswordChange as on Samba: the SID is the domain's
SID plus the RID, the anchor (objectGUID) comes from a lookup of that SID among normal user
accounts (`USER_FILTER`, what syncpasswords watches on Samba: no computers, no trusts, no
krbtgt); any other account is acknowledged and dropped.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from ..errors import FerryAgentError
from ..sid import SidError, parse_sid
from .password_changes import PasswordChange

PIPE_NAME = r"\\.\pipe\ferry-password-filter"
SERVICE_NAME = "ferry-agent"
DLL_NAME = "ferry_pwfilter"
NOTIFICATION_PACKAGES_KEY = r"HKLM\SYSTEM\CurrentControlSet\Control\Lsa"
NOTIFICATION_PACKAGES_VALUE = "Notification Packages"
VERSION = 1
KIND_CHANGE = 1
MAX_SAM_CHARS = 256        # sAMAccountName's rangeUpper in the AD schema
MAX_PASSWORD_CHARS = 256   # the longest password Windows takes
MAX_QUEUE = 10_000         # changes the DLL holds while the agent does not take them
_HEAD = struct.Struct("<BBQI")
_ACK = struct.Struct("<BBQ")
MAX_BODY = _HEAD.size + 2 + 2 * MAX_SAM_CHARS + 2 + 2 * MAX_PASSWORD_CHARS
USER_FILTER = "(&(objectSid={sid})(sAMAccountType=805306368)(!(sAMAccountName=krbtgt*)))"


class PasswordFilterError(FerryAgentError, ValueError):
    """A filter message that breaks the contract; says what, never the password."""


class AckStatus(IntEnum):
    TAKEN = 0
    REFUSED = 1
    RETRY = 2


@dataclass(frozen=True)
class FilterMessage:
    """One PasswordChangeNotify call as the DLL sends it."""

    sequence: int
    rid: int
    sam: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class Ack:
    sequence: int
    status: AckStatus


def service_sid(service: str = SERVICE_NAME) -> str:
    """A Windows service's SID (NT SERVICE\\<name>): S-1-5-80- and the SHA-1 of its upper-case
    name in UTF-16LE as five little-endian 32-bit numbers."""
    digest = hashlib.sha1(service.upper().encode("utf-16-le")).digest()
    return "S-1-5-80-" + "-".join(str(part) for part in struct.unpack("<5I", digest))


def pipe_sddl(service: str = SERVICE_NAME) -> str:
    """The pipe's security descriptor: owned by the agent's service, SYSTEM may read and
    write, no one else is let in (protected DACL: nothing inherited)."""
    sid = service_sid(service)
    return f"O:{sid}D:P(A;;GA;;;{sid})(A;;GRGW;;;SY)"


def encode_message(message: FilterMessage) -> bytes:
    """The frame the DLL writes (here for tests and as the reference for the DLL's code)."""
    sam = message.sam.encode("utf-16-le")
    password = message.password.encode("utf-16-le")
    body = (_HEAD.pack(VERSION, KIND_CHANGE, message.sequence, message.rid)
            + struct.pack("<H", len(sam)) + sam + struct.pack("<H", len(password)) + password)
    return struct.pack("<I", len(body)) + body


def decode_message(body: bytes) -> FilterMessage:
    """A frame's body to a FilterMessage; PasswordFilterError if it breaks the contract."""
    if len(body) > MAX_BODY:
        raise PasswordFilterError(f"password filter message of {len(body)} bytes (at most"
                                  f" {MAX_BODY})")
    if len(body) < _HEAD.size:
        raise PasswordFilterError("password filter message shorter than its header")
    version, kind, sequence, rid = _HEAD.unpack_from(body)
    if version != VERSION:
        raise PasswordFilterError(f"password filter message version {version}; this agent"
                                  f" reads version {VERSION} (update the agent or the DLL)")
    if kind != KIND_CHANGE:
        raise PasswordFilterError(f"password filter message of unknown kind {kind}")
    if rid == 0 or sequence == 0:
        raise PasswordFilterError(f"password filter message {sequence}: RID and sequence"
                                  " start at 1")
    offset = _HEAD.size
    sam, offset = _utf16(body, offset, MAX_SAM_CHARS, f"message {sequence} (RID {rid})",
                         "sAMAccountName")
    password, offset = _utf16(body, offset, MAX_PASSWORD_CHARS,
                              f"message {sequence} (RID {rid}, {sam})", "password")
    if offset != len(body):
        raise PasswordFilterError(f"password filter message {sequence} (RID {rid}):"
                                  f" {len(body) - offset} bytes after the password")
    if not sam or any(ord(char) < 32 for char in sam):
        raise PasswordFilterError(f"password filter message {sequence} (RID {rid}): the"
                                  " sAMAccountName is empty or holds control characters")
    return FilterMessage(sequence, rid, sam, password)


def _utf16(body: bytes, offset: int, max_chars: int, what: str, name: str) -> tuple[str, int]:
    if offset + 2 > len(body):
        raise PasswordFilterError(f"password filter {what}: ends before the {name}")
    (length,) = struct.unpack_from("<H", body, offset)
    offset += 2
    if length % 2 or length > 2 * max_chars:
        raise PasswordFilterError(f"password filter {what}: {name} of {length} bytes (an even"
                                  f" number, at most {2 * max_chars})")
    if offset + length > len(body):
        raise PasswordFilterError(f"password filter {what}: ends inside the {name}")
    try:
        text = body[offset:offset + length].decode("utf-16-le")
    except UnicodeDecodeError:
        raise PasswordFilterError(f"password filter {what}: the {name} is not valid"
                                  " UTF-16LE") from None
    return text, offset + length


def encode_ack(sequence: int, status: AckStatus) -> bytes:
    return struct.pack("<I", _ACK.size) + _ACK.pack(VERSION, int(status), sequence)


def decode_ack(frame: bytes) -> Ack:
    """The DLL's reading of an ack frame (length included)."""
    if len(frame) != 4 + _ACK.size or struct.unpack_from("<I", frame)[0] != _ACK.size:
        raise PasswordFilterError(f"password filter ack of {len(frame)} bytes (expected"
                                  f" {4 + _ACK.size})")
    version, status, sequence = _ACK.unpack_from(frame, 4)
    if version != VERSION or status not in {s.value for s in AckStatus}:
        raise PasswordFilterError(f"password filter ack version {version}, status {status}")
    return Ack(sequence, AckStatus(status))


class Stream(Protocol):
    """The agent's end of one pipe connection (a file opened on it; a socket in tests)."""

    def read(self, size: int) -> bytes: ...

    def write(self, data: bytes) -> int | None: ...

    def flush(self) -> None: ...


def read_frame(stream: Stream) -> bytes | None:
    """One frame's body; None at the end of the stream (the DLL closed the pipe). The
    announced length is checked before anything more is read."""
    header = _read_exactly(stream, 4, at_start=True)
    if header is None:
        return None
    (length,) = struct.unpack("<I", header)
    if length > MAX_BODY:
        raise PasswordFilterError(f"password filter announced a message of {length} bytes"
                                  f" (at most {MAX_BODY}); closing the pipe")
    body = _read_exactly(stream, length, at_start=False)
    assert body is not None
    return body


def _read_exactly(stream: Stream, count: int, *, at_start: bool) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = stream.read(count - len(data))
        if not chunk:
            if at_start and not data:
                return None
            raise PasswordFilterError("the password filter's pipe closed inside a message")
        data += chunk
    return data


class FilterSession:
    """The agent reading one pipe connection: changes one at a time, each acknowledged TAKEN
    when the next is asked for, like PasswordWatcher.next_change on Samba."""

    def __init__(self, stream: Stream, domain_sid: str, anchor_of: Callable[[str], str | None]):
        """`anchor_of(sid)`: the objectGUID of the normal user account with that objectSid
        (an LDAP search with USER_FILTER), or None for any other account."""
        try:
            domain = parse_sid(domain_sid + "-1000")
        except SidError as exc:
            raise PasswordFilterError(f"password filter: the domain SID {exc}") from None
        if not domain.is_domain_account:
            raise PasswordFilterError(f"password filter: {domain_sid} is not a domain's SID"
                                      " (S-1-5-21-X-Y-Z)")
        self._stream = stream
        self._domain_sid = domain.domain
        self._anchor_of = anchor_of
        self._pending: int | None = None

    def next_change(self, timeout: float | None = None) -> PasswordChange | None:
        """Acknowledge the previous change, then the next one; None once the DLL closed the
        pipe. `timeout` is accepted as the Samba watcher takes it (password_relay's change
        source) and not used: a pipe read has no deadline, and stopping the service closes
        the pipe. A malformed message is REFUSED and skipped; a change of an account that is not
        a normal user's is TAKEN and skipped; an announced length over MAX_BODY ends the
        session with PasswordFilterError (the stream can no longer be framed)."""
        self._acknowledge(AckStatus.TAKEN)
        while True:
            body = read_frame(self._stream)
            if body is None:
                return None
            try:
                message = decode_message(body)
            except PasswordFilterError:
                sequence = _HEAD.unpack_from(body)[2] if len(body) >= _HEAD.size else 0
                self._answer(sequence, AckStatus.REFUSED)
                continue
            sid = f"{self._domain_sid}-{message.rid}"
            guid = self._anchor_of(sid)
            if guid is None:
                self._answer(message.sequence, AckStatus.TAKEN)
                continue
            self._pending = message.sequence
            return PasswordChange(guid, sid, message.sam, message.password)

    def acknowledge(self) -> None:
        """The change returned last is handled: the DLL may forget it."""
        self._acknowledge(AckStatus.TAKEN)

    def retry_later(self) -> None:
        """The change just returned cannot be handled now: the DLL sends it again."""
        self._acknowledge(AckStatus.RETRY)

    def _acknowledge(self, status: AckStatus) -> None:
        if self._pending is not None:
            sequence, self._pending = self._pending, None
            self._answer(sequence, status)

    def _answer(self, sequence: int, status: AckStatus) -> None:
        self._stream.write(encode_ack(sequence, status))
        self._stream.flush()
