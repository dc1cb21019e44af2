"""Processes read from /proc: whether one, or any of a process group, still runs after it was
told to end (zombies waiting for their parent do not count)."""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie does not; a child of this process is reaped here)."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    fields = _stat(Path(f"/proc/{pid}"))
    return bool(fields) and fields[0] not in ("Z", "X")


def group_alive(group: int) -> bool:
    """Whether a live (not zombie) process of the process group is left; where there is no
    /proc (not Linux), assume one is."""
    if not sys.platform.startswith("linux"):
        return True
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry)
        if len(fields) > 2 and int(fields[2]) == group and fields[0] not in ("Z", "X"):
            return True
    return False


def _stat(process: Path) -> list[str]:
    """/proc/<pid>/stat after the command name (state, parent, group, ...); [] if gone."""
    try:
        return (process / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []
