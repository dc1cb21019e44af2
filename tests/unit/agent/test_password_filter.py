"""The Windows password filter contract (ferry_agent.dc.password_filter), tested by contract:
frames built as the DLL must build them, read by the agent's side over a real socket pair.
Not run on Windows: neither the DLL nor the named pipe exists here."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from ferry_agent.dc.password_changes import PasswordChange
from ferry_agent.dc.password_filter import (
    MAX_BODY,
    MAX_PASSWORD_CHARS,
    PIPE_NAME,
    Ack,
    AckStatus,
    FilterMessage,
    FilterSession,
    PasswordFilterError,
    decode_ack,
    decode_message,
    encode_ack,
    encode_message,
    pipe_sddl,
    read_frame,
    service_sid,
)
from ferry_agent.errors import FerryAgentError

DOMAIN = "S-1-5-21-1004336348-1177238915-682003330"
PASSWORD = "Fe\u00e4rry-\U0001f512-Secret-9"  # non-ASCII and a surrogate pair in UTF-16
GUID = "6f0f5f3e-3c0e-4a4e-9b84-0c3c1e7c2a11"


def body(message: FilterMessage) -> bytes:
    return encode_message(message)[4:]


def raw(*, version: int = 1, kind: int = 1, sequence: int = 1, rid: int = 1105,
        sam: bytes = "alice".encode("utf-16-le"), password: bytes = b"p\x00w\x00",
        sam_len: int | None = None, password_len: int | None = None, tail: bytes = b"") -> bytes:
    """A body as a faulty or hostile DLL might send it."""
    return (struct.pack("<BBQI", version, kind, sequence, rid)
            + struct.pack("<H", len(sam) if sam_len is None else sam_len) + sam
            + struct.pack("<H", len(password) if password_len is None else password_len)
            + password + tail)


def test_a_message_survives_encode_and_decode() -> None:
    message = FilterMessage(7, 1105, "alice", PASSWORD)
    frame = encode_message(message)
    assert struct.unpack_from("<I", frame)[0] == len(frame) - 4
    decoded = decode_message(frame[4:])
    assert decoded == message
    assert decoded.password == PASSWORD
    assert PASSWORD not in repr(decoded)


def test_the_password_travels_as_utf16le() -> None:
    frame = encode_message(FilterMessage(1, 1105, "alice", PASSWORD))
    assert PASSWORD.encode("utf-16-le") in frame
    assert frame.endswith(PASSWORD.encode("utf-16-le"))


def test_the_longest_password_windows_takes_fits() -> None:
    message = FilterMessage(1, 1105, "a" * 256, "x" * MAX_PASSWORD_CHARS)
    assert len(body(message)) == MAX_BODY
    assert decode_message(body(message)).password == "x" * MAX_PASSWORD_CHARS


@pytest.mark.parametrize(("data", "said"), [
    (raw(version=2), "version 2"),
    (raw(kind=9), "unknown kind 9"),
    (raw(rid=0), "start at 1"),
    (raw(sequence=0), "start at 1"),
    (raw()[:10], "shorter than its header"),
    (raw(sam=b""), "empty"),
    (raw(sam="a\nb".encode("utf-16-le")), "control characters"),
    (raw(sam=b"a\x00b"), "an even number"),
    (raw(password=b"abc"), "an even number"),
    (raw(password_len=600, password=b"x" * 600), "at most 512"),
    (raw(password_len=40), "ends inside the password"),
    (raw(tail=b"\x00\x00"), "2 bytes after the password"),
    (raw(password="\ud800".encode("utf-16-le", "surrogatepass")), "not valid UTF-16LE"),
    (b"\x01" * (MAX_BODY + 1), f"at most {MAX_BODY}"),
])
def test_a_message_that_breaks_the_contract_is_refused(data: bytes, said: str) -> None:
    with pytest.raises(PasswordFilterError, match=said) as caught:
        decode_message(data)
    assert isinstance(caught.value, FerryAgentError)
    assert isinstance(caught.value, ValueError)


def test_a_refusal_never_quotes_the_password() -> None:
    secret = "Do-Not-Print-Me-42"
    bad = raw(password=secret.encode("utf-16-le"), tail=b"\x00\x00")
    with pytest.raises(PasswordFilterError) as caught:
        decode_message(bad)
    assert secret not in str(caught.value)


def test_an_ack_is_ten_bytes_after_its_length_and_echoes_the_sequence() -> None:
    frame = encode_ack(2**40 + 3, AckStatus.RETRY)
    assert len(frame) == 14 and struct.unpack_from("<I", frame)[0] == 10
    assert decode_ack(frame) == Ack(2**40 + 3, AckStatus.RETRY)
    with pytest.raises(PasswordFilterError):
        decode_ack(frame[:-1])
    with pytest.raises(PasswordFilterError):
        decode_ack(frame[:5] + b"\x07" + frame[6:])  # no such status


def test_the_pipe_is_for_system_and_the_agent_service_only() -> None:
    # A documented service SID: NT SERVICE\TrustedInstaller.
    assert service_sid("TrustedInstaller") == (
        "S-1-5-80-956008885-3418522649-1831038044-1853292631-2271478464")
    agent = service_sid()
    sddl = pipe_sddl()
    assert sddl.startswith(f"O:{agent}D:P")  # owned by the agent; protected: nothing inherited
    aces = sddl.split("D:P", 1)[1]
    assert aces == f"(A;;GA;;;{agent})(A;;GRGW;;;SY)"  # no Everyone, no Administrators
    assert PIPE_NAME == r"\\.\pipe\ferry-password-filter"


class FakeDll:
    """The DLL's side of the pipe, as the contract describes it, over a socket pair."""

    def __init__(self) -> None:
        self.agent_end, self.dll_end = socket.socketpair()
        self.stream = self.agent_end.makefile("rwb", buffering=0)

    def send(self, frame: bytes) -> None:
        self.dll_end.sendall(frame)

    def ack(self) -> Ack:
        data = b""
        while len(data) < 14:
            chunk = self.dll_end.recv(14 - len(data))
            assert chunk, "the agent closed the pipe instead of answering"
            data += chunk
        return decode_ack(data)

    def no_ack_yet(self) -> bool:
        self.dll_end.settimeout(0.2)
        try:
            return not self.dll_end.recv(1, socket.MSG_PEEK)
        except TimeoutError:
            return True
        finally:
            self.dll_end.settimeout(None)

    def close(self) -> None:
        self.dll_end.close()


@pytest.fixture
def dll() -> Iterator[FakeDll]:
    fake = FakeDll()
    yield fake
    fake.close()
    fake.agent_end.close()


def users(*known: int) -> dict[str, str]:
    return {f"{DOMAIN}-{rid}": f"00000000-0000-4000-8000-{rid:012d}" for rid in known}


def test_a_change_becomes_the_same_password_change_as_on_samba(dll: FakeDll) -> None:
    session = FilterSession(dll.stream, DOMAIN, users(1105).get)
    dll.send(encode_message(FilterMessage(1, 1105, "alice", PASSWORD)))
    change = session.next_change()
    assert change == PasswordChange("00000000-0000-4000-8000-000000001105", f"{DOMAIN}-1105",
                                    "alice", PASSWORD)
    assert change is not None and change.password == PASSWORD
    assert PASSWORD not in repr(change)


def test_a_change_is_acknowledged_only_when_the_next_is_asked_for(dll: FakeDll) -> None:
    session = FilterSession(dll.stream, DOMAIN, users(1105, 1106).get)
    dll.send(encode_message(FilterMessage(1, 1105, "alice", "first-Passw0rd")))
    dll.send(encode_message(FilterMessage(2, 1106, "bob", "second-Passw0rd")))
    first = session.next_change()
    assert first is not None and first.sam == "alice"
    assert dll.no_ack_yet()  # not handled yet: a crash now leaves it with the DLL
    second = session.next_change()
    assert dll.ack() == Ack(1, AckStatus.TAKEN)
    assert second is not None and second.sam == "bob"
    session.retry_later()
    assert dll.ack() == Ack(2, AckStatus.RETRY)


def test_malformed_messages_are_refused_and_the_next_one_still_arrives(dll: FakeDll) -> None:
    session = FilterSession(dll.stream, DOMAIN, users(1105).get)
    bad = raw(sequence=5, tail=b"junk")
    dll.send(struct.pack("<I", len(bad)) + bad)
    dll.send(encode_message(FilterMessage(6, 1105, "alice", PASSWORD)))
    change = session.next_change()
    assert dll.ack() == Ack(5, AckStatus.REFUSED)
    assert change is not None and change.password == PASSWORD


def test_an_account_that_is_no_normal_user_is_taken_and_dropped(dll: FakeDll) -> None:
    session = FilterSession(dll.stream, DOMAIN, users(1105).get)
    dll.send(encode_message(FilterMessage(1, 1000, "WS01$", "machine-secret")))
    dll.send(encode_message(FilterMessage(2, 1105, "alice", PASSWORD)))
    change = session.next_change()
    assert dll.ack() == Ack(1, AckStatus.TAKEN)
    assert change is not None and change.sam == "alice"


def test_an_oversized_frame_ends_the_session_before_it_is_read(dll: FakeDll) -> None:
    session = FilterSession(dll.stream, DOMAIN, users(1105).get)
    dll.send(struct.pack("<I", 64 * 1024 * 1024))  # 64 MiB announced, nothing sent
    with pytest.raises(PasswordFilterError, match="announced a message of 67108864 bytes"):
        session.next_change()


def test_the_end_of_the_pipe_ends_the_session(dll: FakeDll) -> None:
    session = FilterSession(dll.stream, DOMAIN, users().get)
    dll.close()
    assert session.next_change() is None


def test_a_pipe_closed_inside_a_message_is_an_error(dll: FakeDll) -> None:
    frame = encode_message(FilterMessage(1, 1105, "alice", PASSWORD))
    dll.send(frame[:-3])
    dll.close()
    with pytest.raises(PasswordFilterError, match="closed inside a message"):
        read_frame(dll.stream)


def test_a_slow_dll_is_read_whole(dll: FakeDll) -> None:
    frame = encode_message(FilterMessage(3, 1105, "alice", PASSWORD))

    def trickle() -> None:
        for byte in frame:
            dll.dll_end.sendall(bytes([byte]))

    sender = threading.Thread(target=trickle)
    sender.start()
    assert decode_message(read_frame(dll.stream) or b"").password == PASSWORD
    sender.join()


@pytest.mark.parametrize("domain", ["S-1-5-32", "not a sid", "S-1-5-21-1-2"])
def test_the_domain_sid_is_checked_first(dll: FakeDll, domain: str) -> None:
    with pytest.raises(PasswordFilterError, match="domain"):
        FilterSession(dll.stream, domain, users().get)


class Gateway:
    """The gateway's two password routes as PasswordSender meets them: one pair wanting the
    changes, its target agent's key, and `outcomes` answered in turn."""

    def __init__(self, outcomes: list[str]) -> None:
        from ferry_agent.sealed import Recipient, ephemeral_key, key_id

        self.key = ephemeral_key()
        self.recipient = Recipient(key_id(self.key.public_key()), self.key.public_key())
        self.outcomes = outcomes
        self.posted: list[dict[str, object]] = []

    def post(self, path: str, body: dict[str, object], **_: object) -> tuple[int, object]:
        if path == "/v1/agent/password-routes":
            return 200, {"routes": [{"pair": "wf/src->tgt", "target": "tgt",
                                     "keys": [self.recipient.pem()]}]}
        self.posted.append(body)
        outcome = self.outcomes.pop(0)
        return 200, {"results": [{"pair": "wf/src->tgt", "outcome": outcome}]}


def test_a_windows_dc_agent_sends_each_change_sealed_and_acks_it_once_set(dll: FakeDll) -> None:
    from ferry_agent.password_relay import PasswordSender
    from ferry_agent.sealed import open_sealed

    session = FilterSession(dll.stream, DOMAIN, users(1105).get)
    gateway = Gateway(["failed", "set"])   # the target was away once: sent again
    stop = threading.Event()
    sender = PasswordSender(gateway, session, stop)  # type: ignore[arg-type]
    dll.send(encode_message(FilterMessage(7, 1105, "alice", PASSWORD)))
    worker = threading.Thread(target=sender.run)
    worker.start()
    try:
        assert dll.ack() == Ack(7, AckStatus.TAKEN)   # only after the gateway said "set"
    finally:
        stop.set()
        dll.close()   # the service stopping closes the pipe: the session ends
        worker.join(timeout=30)
    assert len(gateway.posted) == 2
    guid = users(1105)[f"{DOMAIN}-1105"]
    for body in gateway.posted:
        assert body["source"] == guid and PASSWORD not in repr(body)
        sealed = body["sealed"]["wf/src->tgt"]  # type: ignore[index]
        assert open_sealed(sealed, gateway.key, guid) == PASSWORD.encode()
