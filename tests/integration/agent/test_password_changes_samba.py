"""DC agent password sync on Samba for real: a PasswordWatcher on the lab's SRC DC (real
`samba-tool user syncpasswords`, the real hook, real GPG) and password changes made over
LDAPS as an administrator or a user would make them.

The lab's DCs run on this machine, so "the agent on the source DC" is this test process with
SRC's smb.conf and the GNUPGHOME holding the key SRC encrypts new passwords to. One watcher
serves the module (its first start passes over every password already stored, which takes
a while on a seeded SRC); tests that stop or break it start it again.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import ldap3
import pytest
from tests.support.polling import eventually, never

from ferry.lab import LabDomain
from ferry_agent.dc import (
    LocalSambaDc,
    PasswordChange,
    PasswordChangesError,
    PasswordWatcher,
)
from ferry_agent.directory import create
from ferry_agent.directory.values import sid_from_bytes

pytestmark = pytest.mark.lab

DEADLINE = 60.0  # a change reaches the watcher in well under a second on a quiet machine


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("agent") / "passwords"


@pytest.fixture(scope="module")
def watcher(lab, state_dir: Path) -> Iterator[PasswordWatcher]:
    if shutil.which("gpg") is None:
        pytest.skip("gpg is not installed (Debian package gnupg)")
    watching = PasswordWatcher(LocalSambaDc(lab.src.smb_conf), state_dir, lab.src.gnupg_home)
    watching.start()
    yield watching
    watching.stop()


@pytest.fixture
def running(watcher: PasswordWatcher) -> PasswordWatcher:
    """The module's watcher, started again if a test before stopped it."""
    if watcher.pid is None:
        watcher.start()
    return watcher


def new_password() -> str:
    return f"Pw-{uuid.uuid4().hex[:10]}-\u00e9\u00df9"  # non-ASCII on purpose


def add_user(domain: LabDomain, ou: str, password: str | None = None) -> tuple[str, str, str]:
    """A user in `ou`: (DN, objectGUID, objectSid), enabled with `password` if one is given."""
    sam = f"pw{uuid.uuid4().hex[:10]}"
    dn = f"CN={sam},{ou}"
    conn = domain.connect()
    create(conn, "user", dn, {"sAMAccountName": [sam]}, password=password,
           must_change_password=False, enabled=password is not None)  # fmt: skip
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID", "objectSid"])
    raw = conn.response[0]["raw_attributes"]
    conn.unbind()
    return dn, str(uuid.UUID(bytes_le=raw["objectGUID"][0])), sid_from_bytes(raw["objectSid"][0])


def set_password(domain: LabDomain, dn: str, password: str) -> None:
    """An administrator's reset over LDAPS: unicodePwd, the quoted password in UTF-16LE."""
    conn = domain.connect()
    value = f'"{password}"'.encode("utf-16-le")
    assert conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [value])]}), conn.result
    conn.unbind()


def change_of(watcher: PasswordWatcher, guid: str, timeout: float = DEADLINE
              ) -> PasswordChange:
    """The next change the watcher yields for `guid` (others are acknowledged and passed)."""
    def check() -> PasswordChange | None:
        change = watcher.next_change(timeout=1.0)
        return change if change is not None and change.guid == guid else None

    return eventually(check, f"a password change of {guid}", timeout=timeout)


def yields(watcher: PasswordWatcher, guid: str) -> bool:
    change = watcher.next_change(timeout=0.5)
    return change is not None and change.guid == guid


def changes_of(watcher: PasswordWatcher, guid: str, window: float = 3.0) -> list[str]:
    """Every password the watcher yields for `guid` within `window` seconds."""
    seen: list[str] = []
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        change = watcher.next_change(timeout=max(deadline - time.monotonic(), 0.0))
        if change is not None and change.guid == guid:
            seen.append(change.password)
    return seen


def test_a_password_set_over_ldaps_arrives_with_its_cleartext(lab, running, src_ou) -> None:
    dn, guid, sid = add_user(lab.src, src_ou)
    password = new_password()
    set_password(lab.src, dn, password)
    change = change_of(running, guid)
    assert (change.guid, change.sid, change.sam) == (guid, sid, dn.split(",")[0][3:])
    assert change.password == password
    assert password not in repr(change)


def test_the_latency_from_change_to_yield(lab, running, src_ou) -> None:
    dn, guid, _ = add_user(lab.src, src_ou)
    samples = []
    for _ in range(5):
        password = new_password()
        started = time.monotonic()
        set_password(lab.src, dn, password)
        assert change_of(running, guid).password == password
        samples.append(time.monotonic() - started)
    # Reported, never asserted (the machine's speed is not what this test is about).
    print(f"\nchange-to-yield latency: median {statistics.median(samples):.3f}s,"
          f" max {max(samples):.3f}s over {len(samples)} changes")


def test_two_changes_in_a_row_arrive_in_order(lab, running, src_ou) -> None:
    dn, guid, _ = add_user(lab.src, src_ou)
    first, second = new_password(), new_password()
    set_password(lab.src, dn, first)
    assert change_of(running, guid).password == first
    set_password(lab.src, dn, second)
    assert change_of(running, guid).password == second
    # Back to back: syncpasswords gives an account's current state, so the first of two
    # quick changes may be folded into the second; never out of order, the last never lost.
    third, fourth = new_password(), new_password()
    set_password(lab.src, dn, third)
    set_password(lab.src, dn, fourth)
    seen = [change_of(running, guid).password]
    if seen[0] == third:
        seen.append(change_of(running, guid).password)
    assert seen in ([third, fourth], [fourth])


def test_a_user_created_with_a_password_arrives(lab, running, src_ou) -> None:
    password = new_password()
    _, guid, sid = add_user(lab.src, src_ou, password)
    change = change_of(running, guid)
    assert (change.sid, change.password) == (sid, password)


def test_changes_that_set_no_password_yield_nothing(lab, running, src_ou) -> None:
    password = new_password()
    dn, guid, _ = add_user(lab.src, src_ou, password)
    assert change_of(running, guid).password == password
    conn = lab.src.connect()
    conn.modify(dn, {"userAccountControl": [(ldap3.MODIFY_REPLACE, [514])]})  # disabled
    conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, ["renamed soon"])]})
    assert changes_of(running, guid) == []  # the stored password is unchanged: not again
    other, other_guid, _ = add_user(lab.src, src_ou)
    conn.delete(dn)  # a deleted account carries no password and stops nothing
    conn.unbind()
    password = new_password()
    set_password(lab.src, other, password)
    assert change_of(running, other_guid).password == password


def test_passwords_stored_before_the_first_start_are_not_handed_over(lab, src_ou,
                                                                     tmp_path) -> None:
    old = new_password()
    _, guid, _ = add_user(lab.src, src_ou, old)
    fresh = PasswordWatcher(LocalSambaDc(lab.src.smb_conf), tmp_path / "fresh",
                            lab.src.gnupg_home)
    with fresh:
        never(lambda: yields(fresh, guid), "a password stored before the first start came")


def test_stop_leaves_no_process_behind(lab, running, state_dir) -> None:
    group = running.pid
    assert group is not None
    running.stop()
    assert running.pid is None
    assert ours(state_dir, lab.src.gnupg_home) == []
    assert live(lambda fields: int(fields[2]) == group) == []  # its process group


def test_syncpasswords_killed_is_restarted_and_nothing_is_lost(lab, running, src_ou) -> None:
    dn, guid, _ = add_user(lab.src, src_ou)
    killed = running.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    password = new_password()
    set_password(lab.src, dn, password)  # while it is down, or as it comes back
    assert change_of(running, guid).password == password
    assert running.pid not in (None, killed)


def test_a_change_made_while_the_agent_was_stopped_arrives_once_it_runs(lab, running, src_ou,
                                                                        state_dir) -> None:
    handled, handled_guid, _ = add_user(lab.src, src_ou)
    missed, missed_guid, _ = add_user(lab.src, src_ou)
    before = new_password()
    set_password(lab.src, handled, before)
    assert change_of(running, handled_guid).password == before
    running.acknowledge()  # handled
    # Killed at once, syncpasswords has not recorded it in its cache: it will give it again.
    os.kill(running.pid or 0, signal.SIGKILL)
    running.stop()
    during = new_password()
    set_password(lab.src, missed, during)
    # A new agent process: nothing of the old one's memory, only the state folder.
    with PasswordWatcher(LocalSambaDc(lab.src.smb_conf), state_dir, lab.src.gnupg_home) as again:
        assert change_of(again, missed_guid).password == during
        # The acknowledged change does not come again: the watcher remembers it was handed over.
        assert changes_of(again, handled_guid) == []


def test_the_password_is_in_no_file_but_samba_s_encrypted_store(lab, running, src_ou,
                                                                state_dir) -> None:
    password = new_password()
    dn, guid, _ = add_user(lab.src, src_ou)
    set_password(lab.src, dn, password)
    assert change_of(running, guid).password == password
    needles = [password.encode("utf-8"), password.encode("utf-16-le")]
    # Samba's own files (sam.ldb holds the GPG message, never the cleartext), the lab's,
    # and the watcher's state folder (cache, wrapper, socket).
    found = [str(path) for folder in (state_dir, lab.root)
             for path in folder.rglob("*") if path.is_file() and not path.is_symlink()
             and any(needle in path.read_bytes() for needle in needles)]
    assert found == []
    for pid in [running.pid, *ours(state_dir, lab.src.gnupg_home)]:
        for name in ("cmdline", "environ"):
            with contextlib.suppress(OSError):  # it may have ended meanwhile
                assert not any(needle in Path(f"/proc/{pid}/{name}").read_bytes()
                               for needle in needles)


def test_smb_conf_without_the_gpg_key_ids_is_a_clear_error(lab, tmp_path) -> None:
    conf = tmp_path / "smb.conf"
    lines = lab.src.smb_conf.read_text().splitlines()
    conf.write_text("\n".join(line for line in lines if "gpg key ids" not in line) + "\n")
    watching = PasswordWatcher(LocalSambaDc(conf), tmp_path / "state", lab.src.gnupg_home)
    with pytest.raises(PasswordChangesError) as caught:
        watching.start()
    message = str(caught.value)
    assert str(conf) in message and "password hash gpg key ids = <fingerprint>" in message
    assert not (tmp_path / "state").exists()  # nothing was started or made


def test_gnupghome_without_the_private_key_is_a_clear_error(lab, tmp_path) -> None:
    empty = tmp_path / "gnupg"
    empty.mkdir(mode=0o700)
    watching = PasswordWatcher(LocalSambaDc(lab.src.smb_conf), tmp_path / "state", empty)
    with pytest.raises(PasswordChangesError) as caught:
        watching.start()
    fingerprint = lab.src.smb_conf.read_text().split("gpg key ids = ")[1].split()[0]
    assert str(empty) in str(caught.value) and fingerprint in str(caught.value)
    assert "gpg --import" in str(caught.value)
    assert not (tmp_path / "state").exists()


def ours(state_dir: Path, gnupg_home: Path) -> list[int]:
    """Live processes of this watcher: syncpasswords (its cache is in the state folder),
    the hook and its wrapper, and a gpg-agent for the GNUPGHOME."""
    marks = [str(state_dir).encode(), str(gnupg_home).encode()]
    return live(lambda fields: False, marks)


def live(match: Callable[[list[str]], bool], marks: Sequence[bytes] = ()) -> list[int]:
    """Processes (not zombies) whose /proc stat fields after the name match, or whose command
    line holds one of `marks`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError, IndexError):  # it may end while /proc is read
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if fields[0] in ("Z", "X"):
                continue
            if match(fields) or any(mark in (entry / "cmdline").read_bytes() for mark in marks):
                found.append(int(entry.name))
    return found
