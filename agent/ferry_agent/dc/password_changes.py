"""Password changes on the Samba DC the agent runs on, with their new cleartext, as they happen
(DCAgent password sync: Ferry then sets the password on the joined target user).

Samba keeps a new password's cleartext only GPG-encrypted (supplementalCredentials
Primary:SambaGPG, when smb.conf names `password hash gpg key ids`). `samba-tool user
syncpasswords` watches the directory for password changes (DirSync plus change notification
over the DC's privileged ldapi socket) and runs a script per changed account; the watcher runs
it with password_hook.py as that script, which passes the account's LDIF, the password still
encrypted, over a Unix socket in the watcher's 0700 state folder (hook_channel.py). The
watcher decrypts it with `gpg` into memory (samba_gpg.py); no cleartext is ever in a file, a
command line or an environment.

What syncpasswords' cache (an ldb in the state folder) guarantees, from its source (Samba
4.17 netcmd/user.py, cmd_user_syncpasswords):
- It keeps the DirSync cookie, moved on after each batch of results, and per account the
  cookie of the batch in which the script last answered "DONE-EXIT" for it. The hook answers
  only once the caller has taken the change and asked for the next (`next_change`), so a
  change is never lost: one not handled by then (agent or syncpasswords killed, an error) is
  given again when syncpasswords runs next, from the stored cookie, changes made while
  nothing ran included.
- It may give a change twice: the accounts of a batch in flight when syncpasswords stopped
  (the batch cookie is stored only once the whole batch is through) come again if the
  directory changed meanwhile. The watcher drops a repeat of a stored password it already
  handed over and saw acknowledged: it keeps, per account, the SHA-256 of that ciphertext in
  the state folder (a digest of a GPG message, nothing about the password), written before
  syncpasswords is told, so a repeat after any restart or crash is dropped too.
- It gives the current state, not every change: an account changed twice before
  syncpasswords reads it arrives once, with the newest password (what the target needs).
- It also runs the script for changes that are no password change (an account disabled or
  renamed); those carry the stored ciphertext unchanged and are dropped as repeats (the
  first such change of an account whose password was stored before the watcher's first
  start hands that password over once: it is the account's current one).
On the first start the cache is made (`--cache-ldb-initialize`) and the passwords already
stored are passed over (one `--no-wait` run whose hook answers without handing anything on),
so only changes from then on arrive.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import logging
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from ..processes import group_alive, process_alive
from .hook_channel import HookConnection, HookedChange, HookListener, parse_ldif
from .local_samba import LocalSambaDc, samba_python
from .samba_gpg import (
    PasswordChangesError,
    check_secret_key,
    decrypt,
    gpg_key_ids,
    stop_gpg_agent,
)

log = logging.getLogger("ferry_agent")

HOOK = Path(__file__).with_name("password_hook.py")
ATTRIBUTES = "objectGUID,objectSid,sAMAccountName,virtualSambaGPG"
CACHE = "syncpasswords-cache.ldb"
SOCKET = "hook.sock"
WRAPPER = "password-hook"
STATE = "password-sync.json"
HEALTHY_RUN = 60.0  # a syncpasswords that ran this long before it ended was no crash loop
MAX_RESTART_DELAY = 30.0
HANDED = "handed-over.sqlite"
SAMBA_TOOL_TIMEOUT = 3600.0  # cache initialization and the pass over stored passwords


@dataclass(frozen=True)
class PasswordChange:
    """A new password of one account: anchor (objectGUID), objectSid, sAMAccountName."""

    guid: str
    sid: str
    sam: str
    password: str = field(repr=False)


class PasswordWatcher:
    """syncpasswords on the local DC, run, restarted after a crash and stopped; the changes
    it finds, one at a time (`next_change`, `changes`)."""

    def __init__(self, dc: LocalSambaDc, state_dir: Path, gnupg_home: Path, *,
                 restart_delay: float = 1.0, max_restarts: int = 5, stop_timeout: float = 15.0):
        """`state_dir`: the watcher's own folder (made 0700); `gnupg_home`: GNUPGHOME with
        the private key of the DC's `password hash gpg key ids`."""
        self.dc = dc
        self.state_dir = Path(state_dir).absolute()
        self.gnupg_home = Path(gnupg_home).absolute()
        self.restart_delay = restart_delay
        self.max_restarts = max_restarts
        self.stop_timeout = stop_timeout
        self._lock = threading.RLock()
        self._listener: HookListener | None = None
        self._process: subprocess.Popen[str] | None = None
        self._output: _Output | None = None
        self._started_at = 0.0
        self._restart_at = 0.0
        self._failures = 0
        self._failed: PasswordChangesError | None = None
        self._pending: tuple[HookConnection, HookedChange] | None = None
        self._handed: _Handed | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Check the DC's GPG setting and key, make the cache on the first start, then run
        syncpasswords; changes made from here on (and any not handled before) arrive."""
        smb_conf = self.dc.smb_conf
        if not smb_conf.is_file():
            raise PasswordChangesError("config", f"{smb_conf}: no such smb.conf; name the DC's"
                                       " smb.conf (samba -b | grep CONFIGFILE shows the default)")
        check_secret_key(self.gnupg_home, gpg_key_ids(smb_conf), smb_conf)
        self._prepare_state_dir()
        with self._lock:
            self._stopping = False
            self._failed = None
            _end_leftover(self.state_dir / CACHE)
            self._listener = HookListener(self.state_dir / SOCKET)
            self._handed = _Handed(self.state_dir / HANDED)
            try:
                if not self._initialized():
                    self._initialize()
                self._write_wrapper(passing=False)
                self._launch()
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """End syncpasswords and its hooks (SIGTERM to its process group, SIGKILL what is
        left after `stop_timeout`) and the gpg-agent decrypting started. A change taken but
        not yet followed by another `next_change` comes again on the next start."""
        self._stopping = True
        with self._lock:
            if self._pending is not None:
                self._pending[0].close()
                self._pending = None
            if self._process is not None:
                _end_group(self._process, self.stop_timeout)
                self._process = None
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            if self._handed is not None:
                self._handed.close()
                self._handed = None
            stop_gpg_agent(self.gnupg_home)

    def __enter__(self) -> PasswordWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        """syncpasswords' process id while it runs (its process group too)."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    # ------------------------------------------------------------------ changes
    def changes(self) -> Iterator[PasswordChange]:
        """Every change until `stop`; each is acknowledged when the loop asks for the next."""
        while not self._stopping:
            change = self.next_change(timeout=None)
            if change is not None:
                yield change

    def next_change(self, timeout: float | None = None) -> PasswordChange | None:
        """Acknowledge the change returned before (syncpasswords moves past it), then wait up
        to `timeout` seconds (None: until `stop`) for the next; None if none came."""
        self.acknowledge()
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._stopping:
            self._supervise()
            left = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
            listener = self._listener
            if listener is None or left < 0:
                return None
            try:
                connection = listener.accept(left)
            except (OSError, ValueError):  # closed by stop() from another thread
                if self._stopping:
                    return None
                raise
            if connection is not None:
                change = self._receive(connection)
                if change is not None:
                    return change
        return None

    def _receive(self, connection: HookConnection) -> PasswordChange | None:
        try:
            hooked = parse_ldif(connection.read())
        except PasswordChangesError as exc:
            connection.answer(False, str(exc))
            raise
        digest = hashlib.sha256(hooked.ciphertext).digest()
        if hooked.deleted or not hooked.ciphertext:
            # Deleted, or no password stored since `password hash gpg key ids` was set.
            connection.answer(True, f"{hooked.guid} nothing to hand over")
            return None
        if self._handed is not None and self._handed.get(hooked.guid) == digest:
            connection.answer(True, f"{hooked.guid} unchanged")
            return None
        try:
            password = decrypt(self.gnupg_home, hooked.ciphertext, hooked.account)
        except PasswordChangesError as exc:
            connection.answer(False, str(exc))
            raise
        self._pending = (connection, hooked)
        return PasswordChange(hooked.guid, hooked.sid, hooked.sam, password)

    def acknowledge(self) -> None:
        """The change returned last is handled: syncpasswords may move past it (`next_change`
        does this first; call it before `stop` so a handled change does not come again)."""
        with self._lock:
            if self._pending is None:
                return
            connection, hooked = self._pending
            self._pending = None
            if self._handed is not None:  # first: a crash after it drops the repeat
                self._handed.put(hooked.guid, hashlib.sha256(hooked.ciphertext).digest())
            connection.answer(True, hooked.guid)
            self._failures = 0

    # ------------------------------------------------------------------ syncpasswords
    def _supervise(self) -> None:
        """Restart syncpasswords after it ended on its own, backing off; an error once it
        ended `max_restarts` times in a row without running a while."""
        with self._lock:
            if self._failed is not None:
                raise self._failed
            process = self._process
            if process is None:
                if not self._stopping and time.monotonic() >= self._restart_at:
                    self._launch()
                return
            code = process.poll()
            if code is None:
                return
            _end_group(process, self.stop_timeout)  # hooks it left behind
            self._process = None
            tail = self._output.tail() if self._output else ""
            ran = time.monotonic() - self._started_at
            self._failures = 1 if ran >= HEALTHY_RUN else self._failures + 1
            if self._failures > self.max_restarts:
                self._failed = PasswordChangesError(
                    "syncpasswords", f"samba-tool user syncpasswords for {self.dc.smb_conf}"
                    f" ended {self._failures} times in a row (last: exit {code}): {tail}")
                raise self._failed
            delay = min(self.restart_delay * 2 ** (self._failures - 1), MAX_RESTART_DELAY)
            self._restart_at = time.monotonic() + delay
            log.warning("samba-tool user syncpasswords ended (exit %s); restarting in %.0fs:"
                        " %s", code, delay, tail)

    def _launch(self) -> None:
        self._process = subprocess.Popen(
            self._command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
            start_new_session=True,  # its own process group: it and its hooks end as one
        )
        self._output = _Output(self._process.stdout)
        self._started_at = time.monotonic()

    def _command(self, *options: str) -> list[str]:
        tool = shutil.which("samba-tool")
        if tool is None:
            raise PasswordChangesError("config", "samba-tool not found; install Samba's AD DC"
                                       " tools (Debian: samba)")
        # -I: Samba's Python, isolated from this process's PYTHON* variables; -u: its output
        # as it is written, so the lines that say why it ended are not lost in a buffer.
        return [self.dc.python or samba_python(), "-I", "-u", tool, "user", "syncpasswords",
                "-s", str(self.dc.smb_conf), f"--cache-ldb={self.state_dir / CACHE}",
                *options]

    def _initialized(self) -> bool:
        try:
            state = json.loads((self.state_dir / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if state.get("smbConf") != str(self.dc.smb_conf.absolute()):
            raise PasswordChangesError("config", f"{self.state_dir} holds the password sync"
                                       f" state of {state.get('smbConf')}, not of"
                                       f" {self.dc.smb_conf}; give each DC its own state folder")
        return True

    def _initialize(self) -> None:
        """Make the cache, then pass over the passwords stored before this first start."""
        for name in (CACHE, CACHE + ".pid"):
            with contextlib.suppress(FileNotFoundError):
                (self.state_dir / name).unlink()  # an initialization that did not finish
        self._write_wrapper(passing=True)
        self._samba_tool("--cache-ldb-initialize", f"--attributes={ATTRIBUTES}",
                         f"--script={self.state_dir / WRAPPER}")
        self._samba_tool("--no-wait")
        state = {"smbConf": str(self.dc.smb_conf.absolute()), "attributes": ATTRIBUTES}
        (self.state_dir / STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")

    def _samba_tool(self, *options: str) -> None:
        try:
            done = subprocess.run(self._command(*options), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, errors="replace",
                                  check=False, timeout=SAMBA_TOOL_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PasswordChangesError("syncpasswords", f"samba-tool user syncpasswords"
                                       f" {options[0]} for {self.dc.smb_conf} took longer than"
                                       f" {SAMBA_TOOL_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            tail = (done.stdout + done.stderr).strip()[-1500:]
            raise PasswordChangesError("syncpasswords", f"samba-tool user syncpasswords"
                                       f" {options[0]} for {self.dc.smb_conf} failed (exit"
                                       f" {done.returncode}): {tail}")

    def _write_wrapper(self, *, passing: bool) -> None:
        """The script syncpasswords runs (its path is fixed in the cache; its text is not):
        the hook with the socket's path, or, `passing`, one that takes nothing."""
        if passing:
            body = 'cat > /dev/null\necho "DONE-EXIT: stored before the first start"\n'
        else:
            python = self.dc.python or samba_python()
            body = (f"exec {shlex.quote(python)} -I -S {shlex.quote(str(HOOK))}"
                    f" {shlex.quote(str(self.state_dir / SOCKET))}\n")
        path = self.state_dir / WRAPPER
        temporary = path.with_suffix(".new")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("#!/bin/sh\n# Written by ferry-agent; rewritten on every start.\n"
                         + body)
        os.replace(temporary, path)

    def _prepare_state_dir(self) -> None:
        self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = self.state_dir.stat()
        if info.st_uid != os.geteuid():
            raise PasswordChangesError("config", f"{self.state_dir} belongs to another user"
                                       f" (uid {info.st_uid}); give the agent a folder of its own")
        os.chmod(self.state_dir, 0o700)


class _Handed:
    """Per account, the SHA-256 of the stored ciphertext last handed over and acknowledged
    (a digest of a GPG message: nothing about the password), kept in the state folder so a
    repeat syncpasswords gives after any restart is dropped."""

    def __init__(self, path: Path):
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            os.chmod(path, 0o600)
            self._db.execute("CREATE TABLE IF NOT EXISTS handed"
                             " (guid TEXT PRIMARY KEY, digest BLOB NOT NULL)")
        except sqlite3.Error as exc:
            raise PasswordChangesError("config", f"{path}: {exc}; remove the file (changes"
                                       " handed over before may then come once more)") from None

    def get(self, guid: str) -> bytes | None:
        row = self._db.execute("SELECT digest FROM handed WHERE guid = ?", (guid,)).fetchone()
        return bytes(row[0]) if row else None

    def put(self, guid: str, digest: bytes) -> None:
        self._db.execute("INSERT OR REPLACE INTO handed (guid, digest) VALUES (?, ?)",
                         (guid, digest))

    def close(self) -> None:
        self._db.close()


class _Output:
    """The last lines syncpasswords printed (unbuffered: -u), kept to say why it ended, read
    as they come so it never blocks on a full pipe. It prints no secret: it redacts the
    password attributes of what it logs, and the ciphertext goes only to the hook."""

    def __init__(self, stream: IO[str] | None):
        self._lines: collections.deque[str] = collections.deque(maxlen=40)
        if stream is not None:
            threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                self._lines.append(line.rstrip())
        with contextlib.suppress(OSError):
            stream.close()

    def tail(self, lines: int = 12) -> str:
        kept = [line for line in list(self._lines)[-lines:] if line.strip()]
        return " | ".join(kept)[-2000:]


def _end_group(process: subprocess.Popen[str], timeout: float) -> None:
    """SIGTERM syncpasswords' process group (it, its hook and the hook's Python), SIGKILL what
    is left after `timeout`, and wait until none of it runs."""
    group = process.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.05)
            if process.poll() is not None and not _group_alive(group):
                return
    if process.poll() is None:
        process.wait()


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return group_alive(group)   # killpg reaches zombies too: count the live ones


def _end_leftover(cache: Path) -> None:
    """End a syncpasswords of this cache that an agent killed before left running: it holds
    the cache's lock, so a new one could not start."""
    try:
        pid = int((cache.parent / (cache.name + ".pid")).read_text().strip() or 0)
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes() if pid > 0 else b""
    except (OSError, ValueError):
        return
    if f"--cache-ldb={cache}".encode() not in cmdline.split(b"\0"):
        return  # not ours (or gone, and the pid reused)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)
