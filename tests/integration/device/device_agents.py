"""Real `ferry-agent device` processes for lab workstations: enrolled through the CLI with a
device token in $FERRY_AGENT_TOKEN (never argv), run until stopped or killed, their output
and journal read back as a support engineer would."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tests.integration.gateway.harness import (
    CLI_SECONDS,
    KILL_SECONDS,
    STOP_SECONDS,
    RunningGateway,
)

from ferry.lab.workstations import Workstation
from ferry_agent.device.journal import JOURNAL_FILE


@dataclass
class DeviceAgentProcess:
    """One workstation's device agent: its INI and 0700 state folder are the workstation's."""

    ws: Workstation
    gateway: RunningGateway
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def out(self) -> Path:
        """Everything the agent printed, over all its runs."""
        return self.ws.folder / "device-agent.out"

    def output(self) -> str:
        return self.out.read_text(encoding="utf-8", errors="replace") if self.out.exists() \
            else ""

    def enroll(self, token: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ferry_agent.cli", "device", "enroll", "--gateway",
             self.gateway.url, "--config", str(self.ws.ini), "--ca", str(self.gateway.ca_file),
             "--state-dir", str(self.ws.state_dir)],
            env={**os.environ, "FERRY_AGENT_TOKEN": token}, capture_output=True, text=True,
            timeout=CLI_SECONDS, check=False)

    def start(self) -> None:
        with self.out.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "ferry_agent.cli", "device", "run", "--gateway",
                 self.gateway.url, "--config", str(self.ws.ini), "--state-dir",
                 str(self.ws.state_dir)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def alive(self) -> None:
        """Fail at once, with its output, when the agent ended instead of waiting out a
        deadline."""
        if self.process is not None and self.process.poll() is not None:
            pytest.fail(f"the device agent of {self.ws.name} exited"
                        f" ({self.process.returncode}):\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL: nothing is flushed, nothing handed over."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=KILL_SECONDS)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()

    def journal(self) -> list[dict[str, object]]:
        """The journal's records, read without touching the file (the agent appends to it)."""
        path = self.ws.state_dir / JOURNAL_FILE
        lines = path.read_bytes().split(b"\n") if path.exists() else []
        return [json.loads(line) for line in lines[:-1] if line]
