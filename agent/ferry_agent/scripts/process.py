"""Run one script step's command as a process: its own folder, a clean environment, a
deadline, and only the tail of its output kept (a chatty script cannot fill memory)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TAIL_BYTES = 4000          # fits status' 4096-character outputTail once decoded
_KILL_GRACE = 5.0          # seconds between the polite signal and the kill

# What a script inherits from the process that starts it: enough to find programs and speak
# a locale, nothing else. A sync pod's or agent's own environment holds a state store URL and
# other credentials the script has no business reading.
_INHERITED = ("PATH", "LANG", "LC_ALL", "TZ", "SystemRoot", "SYSTEMROOT", "COMSPEC", "PATHEXT",
              "WINDIR", "ProgramFiles", "ProgramData")

# -File and friends want the script's usual extension (pwsh refuses a -File without .ps1).
_SUFFIXES = {"pwsh": ".ps1", "powershell": ".ps1", "python": ".py", "python3": ".py",
             "cmd": ".cmd", "bash": ".sh", "sh": ".sh"}


@dataclass(frozen=True)
class ScriptProcess:
    """What to run: the command, the script's text (its file is added last), variables and
    context files written beside it."""

    command: Sequence[str]
    script: str | None = None
    environment: Mapping[str, str] | None = None
    # variable -> (file name, content): written to the work folder, its path in the variable
    files: Mapping[str, tuple[str, bytes]] | None = None
    timeout: float = 600.0


@dataclass(frozen=True)
class ProcessOutcome:
    """How it went: exit code (None when it never started or was killed), timed out,
    seconds it ran, the end of its output, and why it could not start."""

    exit_code: int | None
    timed_out: bool
    duration: float
    tail: str
    error: str = ""

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.error


def script_suffix(command: Sequence[str]) -> str:
    """The extension the command's program expects of a script file."""
    program = Path(command[0]).name.lower().removesuffix(".exe")
    return _SUFFIXES.get(program, "")


def run_script_process(job: ScriptProcess) -> ProcessOutcome:
    """Run the command in a new folder (deleted after) and wait for it, at most job.timeout."""
    with tempfile.TemporaryDirectory(prefix="ferry-script-") as folder:
        work = Path(folder)
        paths = {}
        for variable, (name, content) in (job.files or {}).items():
            path = work / Path(name).name   # a bare name: never outside the work folder
            path.write_bytes(content)
            paths[variable] = str(path)
        argv = list(job.command)
        if job.script is not None:
            script = work / f"script{script_suffix(job.command)}"
            script.write_text(job.script, encoding="utf-8")
            argv.append(str(script))
        env = {k: v for k, v in os.environ.items() if k in _INHERITED}
        env.update({"HOME": folder, "TMPDIR": folder, "TEMP": folder, "TMP": folder})
        env.update(job.environment or {})
        env.update(paths)
        return _wait(argv, work, env, job.timeout)


def _wait(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> ProcessOutcome:
    started = time.monotonic()
    try:
        # A group of its own, so a timeout ends what it started too.
        if sys.platform == "win32":
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
        else:
            process = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return ProcessOutcome(None, False, 0.0, "", f"cannot start {argv[0]!r}: {exc.strerror}")
    tail = _Tail()
    reader = threading.Thread(target=tail.drain, args=(process.stdout,), daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _stop(process)
    # The group may keep the pipe open after the command ended: the reader gives up then.
    reader.join(_KILL_GRACE)
    code = None if timed_out else process.returncode
    return ProcessOutcome(code, timed_out, time.monotonic() - started, tail.text())


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the command and its children: terminate, then kill after a grace period."""
    if sys.platform == "win32":
        # taskkill /T ends the whole tree; there are no process groups to signal.
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)],
                       capture_output=True, check=False)
        process.wait()
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(_KILL_GRACE)
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class _Tail:
    """The last TAIL_BYTES of a stream, read to its end."""

    def __init__(self) -> None:
        self._kept = bytearray()

    def drain(self, stream: object) -> None:
        read = getattr(stream, "read1", None)
        if read is None:
            return
        while chunk := read(65536):
            self._kept += chunk
            if len(self._kept) > 2 * TAIL_BYTES:
                del self._kept[:-TAIL_BYTES]

    def text(self) -> str:
        return bytes(self._kept[-TAIL_BYTES:]).decode("utf-8", errors="replace")
