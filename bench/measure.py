"""What the benchmarks share: progress lines on stderr, a process's resident memory, and
ldapsearch's count of entries (the physical limit reads are measured against)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ferry.lab import LabDomain


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rss_mb(pid: int) -> float:
    """The process's resident set size in MB (from /proc), 0 when it is gone."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def ldapsearch_count(domain: LabDomain, base: str, ldap_filter: str,
                     attributes: Sequence[str]) -> int:
    """Entries `ldapsearch -E pr=1000` reads under base (LDIF to a pipe, counted)."""
    env = {**os.environ, "LDAPTLS_CACERT": str(domain.ca_file)}
    command = ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-H", f"ldaps://{domain.ip}", "-x",
               "-D", domain.admin_user, "-y", str(domain.password_file), "-b", base,
               "-E", "pr=1000/noprompt", ldap_filter, *attributes]
    with subprocess.Popen(command, stdout=subprocess.PIPE, env=env) as process:
        assert process.stdout is not None
        count = sum(1 for line in process.stdout if line.startswith(b"dn:"))
    if process.returncode != 0:
        raise SystemExit(f"ldapsearch failed with exit code {process.returncode}")
    return count
