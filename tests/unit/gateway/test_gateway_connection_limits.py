"""The gateway's connection limits: sane defaults, and a setting that is not positive is refused
by name before anything starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ferry.gateway.connections import ConnectionLimits


def test_the_defaults_hold_agents_and_bound_strangers() -> None:
    limits = ConnectionLimits()
    assert limits.small_body_bytes == 64 << 10          # an enrollment request is a few KB
    assert limits.idle_timeout > 30                     # agents drop idle connections at 30 s
    assert limits.header_timeout < limits.idle_timeout
    assert limits.polls_per_agent >= 2 and limits.streams_per_agent >= 2


def test_a_limit_that_is_not_positive_is_named() -> None:
    with pytest.raises(ValueError, match="header_timeout must be positive, not 0"):
        ConnectionLimits(header_timeout=0)


@pytest.mark.parametrize("flag", ["--idle-timeout", "--header-timeout", "--body-timeout",
                                  "--max-anonymous-connections"])
def test_the_gateway_command_refuses_a_limit_that_is_not_positive(tmp_path: Path,
                                                                  flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ferry", "gateway", "--tls-cert", str(tmp_path / "none.crt"),
         "--tls-key", str(tmp_path / "none.key"), "--ca-dir", str(tmp_path / "ca"), flag, "0"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2, done.stderr
    assert f"{flag} 0: must be positive" in " ".join(done.stderr.split())
    assert not (tmp_path / "ca").exists()  # refused before anything was made
