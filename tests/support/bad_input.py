"""For tests of bad input: the real `ferry` command, manifests pointing at a loopback port that
notices any connection, and what "nothing happened" looks like."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "ad-to-ad"


def ferry(*args: str, cwd: Path, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The `ferry` command as a user runs it, in cwd."""
    return subprocess.run([sys.executable, "-m", "ferry", *args], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "200", **(env or {})},
                          cwd=cwd, timeout=timeout, check=False)


class Listener:
    """A loopback port that accepts nothing itself: any connection attempt waits in its
    backlog, so after a command ended we know whether it tried to reach a directory."""

    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.setblocking(False)
        self.port: int = self._socket.getsockname()[1]

    def connections(self) -> int:
        """How many connections arrived since the last call."""
        count = 0
        while True:
            try:
                conn, _ = self._socket.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1

    def close(self) -> None:
        self._socket.close()


def example_manifests(folder: Path, port: int) -> Path:
    """examples/ad-to-ad with both domains at 127.0.0.1:port."""
    shutil.copytree(EXAMPLES, folder)
    env = folder / "environments.yaml"
    text = env.read_text()
    for host in ("127.0.0.2", "127.0.0.3"):
        assert f"host: {host}" in text
        text = text.replace(f"host: {host}", "host: 127.0.0.1")
    assert text.count("port: 636") == 2
    env.write_text(text.replace("port: 636", f"port: {port}"))
    return folder


def example_secrets(folder: Path) -> Path:
    """A secrets folder (<secret>/<key>) with every key the example's Environments name."""
    for secret in ("src-ad", "tgt-ad"):
        (folder / secret).mkdir(parents=True)
        (folder / secret / "password").write_text("not-a-real-password\n")
        (folder / secret / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    return folder


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file below folder, by relative path, with its content."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def one_line_each(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]
