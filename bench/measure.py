"""What the benchmarks share: progress lines on stderr and a process's resident memory."""

from __future__ import annotations

import sys
from pathlib import Path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    """The process's resident set size in MB (from /proc), 0 when it is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0
