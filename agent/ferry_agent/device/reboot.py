"""The cutover's last step: tell the logged-on users, wait the delay, run the reboot command."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Sequence

from ferry_agent.device.outcome import ActionOutcome

NOTICE_TIMEOUT = 30.0


def notify(command: Sequence[str], text: str) -> str:
    """Run the notice command with `text` as its last argument; "" or why it failed."""
    if not command:
        return ""
    try:
        done = subprocess.run([*command, text], capture_output=True, text=True, check=False,
                              timeout=NOTICE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the notice command failed ({type(exc).__name__})"
    return "" if done.returncode == 0 else f"the notice command exited {done.returncode}"


def reboot(delay_seconds: int, notice: str, notice_command: Sequence[str],
           reboot_command: Sequence[str], stop: threading.Event | None = None,
           now: Callable[[], float] = time.monotonic) -> ActionOutcome:
    """Notice, then `delay_seconds` (until a deadline, ended early only by `stop`), then the
    reboot command; the command's exit status is the outcome."""
    if delay_seconds < 0:
        return ActionOutcome(False, f"delaySeconds {delay_seconds} is negative")
    if not reboot_command:
        return ActionOutcome(False, "no reboot_command is configured for this device")
    warning = notify(notice_command, f"{notice} (in {delay_seconds} s)")
    stop = stop or threading.Event()
    deadline = now() + delay_seconds
    while (left := deadline - now()) > 0:
        if stop.wait(left):
            return ActionOutcome(False, "the reboot was called off while waiting")
    try:
        done = subprocess.run(list(reboot_command), capture_output=True, text=True,
                              check=False, timeout=NOTICE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return ActionOutcome(False, f"the reboot command {reboot_command[0]} failed:"
                                    f" {type(exc).__name__}")
    if done.returncode != 0:
        return ActionOutcome(False, f"the reboot command exited {done.returncode}:"
                                    f" {done.stderr.strip()[-200:]}")
    message = f"reboot command run after {delay_seconds} s"
    return ActionOutcome(True, f"{message}; {warning}" if warning else message,
                         {"delaySeconds": delay_seconds})
