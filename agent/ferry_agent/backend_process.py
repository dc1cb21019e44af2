"""A backend program run by another Python interpreter: the distribution's, which has the
bindings (Samba's, hivex) the agent's own Python lacks, so the agent never imports them.

The program runs isolated (-I), its path the only argument (nothing else on the command
line), and talks JSON lines over stdin and stdout. Each answer has a deadline: a backend
stuck on a lock is killed, not waited for forever.
"""

from __future__ import annotations

import abc
import json
import subprocess
import threading
from pathlib import Path
from typing import IO, Any, Self

from .errors import FerryAgentError


class BackendProcess(abc.ABC):
    """One run of a backend program; use it as a context manager so it always ends. A
    subclass says what an error answer and an ended backend mean (its error type, its fix)."""

    def __init__(self, python: str, program: Path, timeout: float):
        """Start it; OSError if `python` cannot be run (the caller names what to install)."""
        self.timeout = timeout
        self._process = subprocess.Popen(
            [python, "-I", str(program)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, encoding="utf-8")

    @abc.abstractmethod
    def refused(self, kind: str, message: str) -> FerryAgentError:
        """The error for an answer {"ok": false, "error": {"kind", "message"}}."""

    @abc.abstractmethod
    def ended(self, code: int | None, stderr: str) -> FerryAgentError:
        """The error for a backend that ended without answering (code None: still running,
        negative: killed by that signal, as the deadline does); stderr is its tail."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close its streams (its end of input) and wait for it to end, or kill it."""
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()
        try:
            self._process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        """Send one JSON line, read the answer line; an error answer raises refused()."""
        self.send(message)
        return self.receive()

    def send(self, message: dict[str, Any]) -> None:
        try:
            stdin = _stream(self._process.stdin)
            stdin.write(json.dumps(message) + "\n")
            stdin.flush()
        except OSError:
            raise self._failure() from None

    def receive(self) -> dict[str, Any]:
        timer = threading.Timer(self.timeout, self._process.kill)  # the answer's deadline
        timer.daemon = True
        timer.start()
        try:
            line = _stream(self._process.stdout).readline()
        finally:
            timer.cancel()
        if not line:
            raise self._failure()
        answer = json.loads(line)
        if not answer.get("ok"):
            error = answer.get("error") or {}
            raise self.refused(str(error.get("kind", "backend")),
                               str(error.get("message", "failed")))
        return dict(answer)

    def _failure(self) -> FerryAgentError:
        stderr = _stream(self._process.stderr).read()[-2000:].strip()
        try:
            code: int | None = self._process.wait(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            code = None
        return self.ended(code, stderr)


def _stream(stream: IO[str] | None) -> IO[str]:
    assert stream is not None  # Popen with PIPE always sets it
    return stream
