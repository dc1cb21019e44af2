"""Reboot: the notice first, then the configured reboot command, only after the delay."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from tests.support.polling import eventually

from ferry_agent.device.linux import LinuxBackend
from ferry_agent.device.linux_settings import LinuxSettings


def test_the_reboot_command_runs_after_the_delay_with_a_notice_first(tmp_path: Path) -> None:
    ran, noticed = tmp_path / "rebooted", tmp_path / "notice"
    backend = LinuxBackend(LinuxSettings(
        smb_conf=tmp_path / "smb.conf", reboot_command=("sh", "-c", f"date +%s.%N > {ran}"),
        notice_command=("sh", "-c", f'printf "%s" "$0" > {noticed}')), tmp_path / "state")
    outcomes: list[object] = []
    started = time.time()
    thread = threading.Thread(target=lambda: outcomes.append(
        backend.reboot(2, "This computer restarts to finish its move.")))
    thread.start()
    eventually(ran.is_file, "the reboot command to run", timeout=60)
    thread.join(timeout=30)
    assert float(ran.read_text()) - started >= 2.0, "it ran before the delay was over"
    assert noticed.read_text() == "This computer restarts to finish its move. (in 2 s)"
    assert getattr(outcomes[0], "ok", False), outcomes


def test_a_stopped_agent_calls_the_waiting_reboot_off(tmp_path: Path) -> None:
    ran = tmp_path / "rebooted"
    stop = threading.Event()
    backend = LinuxBackend(LinuxSettings(
        smb_conf=tmp_path / "smb.conf", reboot_command=("touch", str(ran))), tmp_path, stop)
    stop.set()
    outcome = backend.reboot(3600, "later")
    assert not outcome.ok and "called off" in outcome.message
    assert not ran.exists()


def test_entra_join_says_it_needs_windows(tmp_path: Path) -> None:
    outcome = LinuxBackend(LinuxSettings(smb_conf=tmp_path / "smb.conf"),
                           tmp_path).entra_join(b"")
    assert not outcome.ok and "EntraJoin needs a Windows device" in outcome.message
