"""The private channel of DC agent password sync on Samba, without Samba: the real hook script
(password_hook.py, run as syncpasswords runs it: LDIF on stdin, one answer line on stdout)
talking to the agent's real listener over a Unix socket, and the LDIF the agent parses."""

from __future__ import annotations

import base64
import contextlib
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from ferry_agent.dc.hook_channel import HookListener, parse_ldif
from ferry_agent.dc.password_hook import MAX_LDIF
from ferry_agent.dc.samba_gpg import PasswordChangesError

HOOK = Path(__file__).parents[3] / "agent" / "ferry_agent" / "dc" / "password_hook.py"
CIPHERTEXT = b"-----BEGIN PGP MESSAGE-----\n\nhF4Dvo4UVWhsFckSAQdA\n-----END PGP MESSAGE-----\n"


def ldif(**override: str) -> bytes:
    """One account as samba's write_ldif gives it to the hook (long values folded)."""
    encoded = base64.b64encode(CIPHERTEXT).decode()
    folded = "\n ".join(encoded[i:i + 60] for i in range(0, len(encoded), 60))
    fields = {
        "dn": "CN=Zo\u00eb,OU=Scratch,DC=src,DC=test",
        "objectGUID": "37CF4601-2874-400E-8C23-F40DFC0FBD89",
        "objectSid": "S-1-5-21-3884605648-3795421303-782284007-1102",
        "sAMAccountName": "zoe",
        "virtualSambaGPG:": folded,
        **override,
    }
    return "".join(f"{name}: {value}\n" for name, value in fields.items() if value).encode()


def test_the_ldif_of_one_account_parses() -> None:
    change = parse_ldif(ldif())
    assert change.guid == "37cf4601-2874-400e-8c23-f40dfc0fbd89"  # canonical, as anchors are
    assert change.sid == "S-1-5-21-3884605648-3795421303-782284007-1102"
    assert (change.sam, change.dn) == ("zoe", "CN=Zo\u00eb,OU=Scratch,DC=src,DC=test")
    assert not change.deleted
    assert change.ciphertext == CIPHERTEXT
    assert "PGP" not in repr(change)


def test_an_account_without_a_stored_password_has_no_ciphertext() -> None:
    change = parse_ldif(ldif(**{"virtualSambaGPG:": "", "isDeleted": "TRUE"}))
    assert change.ciphertext == b"" and change.deleted


@pytest.mark.parametrize(("data", "said"), [
    (ldif(objectSid=""), "lacks objectsid"),
    (ldif(objectGUID="not-a-guid"), "does not parse"),
    (ldif(objectSid="S-1-5-21-x"), "does not parse"),
    (ldif(**{"virtualSambaGPG:": "%%%"}), "not base64"),
    (ldif() + b"no colon here\n", "not LDIF"),
    (b"\xff\xfe", "not UTF-8"),
])
def test_ldif_that_does_not_parse_is_an_error(data: bytes, said: str) -> None:
    with pytest.raises(PasswordChangesError, match=said):
        parse_ldif(data)


@pytest.fixture
def listener(tmp_path: Path):
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    listening = HookListener(folder / "hook.sock")
    yield listening
    listening.close()


def run_hook(socket: Path, data: bytes) -> subprocess.Popen[bytes]:
    """The hook as syncpasswords runs it; its stdin is fed from a thread, as it may stop
    reading early."""
    hook = subprocess.Popen([sys.executable, "-I", str(HOOK), str(socket)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip

    def feed() -> None:
        assert hook.stdin is not None
        with contextlib.suppress(BrokenPipeError):
            hook.stdin.write(data)
            hook.stdin.close()

    threading.Thread(target=feed, daemon=True).start()
    return hook


def answer_of(hook: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    """What the hook answered syncpasswords, and its exit status."""
    assert hook.stdout is not None
    out = hook.stdout.read()
    return hook.wait(timeout=60), out


def test_the_hook_hands_the_ldif_over_and_waits_for_the_answer(listener: HookListener) -> None:
    assert stat.S_IMODE(listener.path.stat().st_mode) == 0o600
    hook = run_hook(listener.path, ldif())
    connection = listener.accept(timeout=60)
    assert connection is not None
    assert parse_ldif(connection.read()).ciphertext == CIPHERTEXT
    assert hook.poll() is None  # syncpasswords waits until the agent has handled it
    connection.answer(True, "37cf4601-2874-400e-8c23-f40dfc0fbd89")
    assert answer_of(hook) == (0, b"DONE-EXIT: 37cf4601-2874-400e-8c23-f40dfc0fbd89\n")


def test_an_error_answer_makes_syncpasswords_stop(listener: HookListener) -> None:
    hook = run_hook(listener.path, ldif())
    connection = listener.accept(timeout=60)
    assert connection is not None
    connection.read()
    connection.answer(False, "gpg cannot decrypt\nthe stored password")
    failed = b"FERRY-HOOK-FAILED: ERROR gpg cannot decrypt the stored password\n"
    assert answer_of(hook) == (1, failed)


def test_the_agent_gone_makes_syncpasswords_stop(listener: HookListener) -> None:
    hook = run_hook(listener.path, ldif())
    connection = listener.accept(timeout=60)
    assert connection is not None
    connection.close()
    code, out = answer_of(hook)
    assert code == 1 and out.startswith(b"FERRY-HOOK-FAILED: ")


def test_no_agent_listening_makes_syncpasswords_stop(tmp_path: Path) -> None:
    hook = run_hook(tmp_path / "absent.sock", ldif())
    code, out = answer_of(hook)
    assert code == 1 and b"absent.sock" in out


def test_an_oversized_ldif_never_reaches_the_agent(listener: HookListener) -> None:
    hook = run_hook(listener.path, b"x" * (MAX_LDIF + 1))
    code, out = answer_of(hook)
    assert code == 1 and b"larger than" in out
    assert listener.accept(timeout=0.2) is None


def test_a_socket_path_too_long_is_refused_up_front(tmp_path: Path) -> None:
    with pytest.raises(PasswordChangesError, match="shorter state folder"):
        HookListener(tmp_path / ("x" * 120) / "hook.sock")
