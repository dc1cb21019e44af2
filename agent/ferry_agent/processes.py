"""Processes by group, read from /proc: what is still alive after a process group was told to
end (zombies waiting for their parent do not count)."""

from __future__ import annotations

import sys
from pathlib import Path


def group_alive(group: int) -> bool:
    """Whether a live (not zombie) process of the process group is left; where there is no
    /proc (not Linux), assume one is."""
    if not sys.platform.startswith("linux"):
        return True
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == group and fields[0] not in ("Z", "X"):
            return True
    return False
