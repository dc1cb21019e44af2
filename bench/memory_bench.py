"""Peak memory of a full `ferry run -f DIR` (the process end to end) on a 100,000-object Samba pair.

    python bench/memory_bench.py [--users 100000] [--groups 10] [--largest 10000]

Both DCs start from seeded lab templates (Lab.up's seeds: users added to the stopped DC's
sam.ldb offline, cached, so only the first run of a size seeds). SRC holds USERS users and
GROUPS groups of up to LARGEST members; TGT holds the same users (same mail, the example
workflow's match rule) where the template maps them, so the full run reads both sides, matches
and writes little (the groups, then nothing). Peak RSS comes from wait4 of the ferry process.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from delta_bench import manifests, reads

from ferry.lab import Lab
from ferry.lab.samba import DomainSpec, free_addresses
from ferry.lab.seed import bulk_ldif

LIMIT_MB = 1024
SEED_VERSION = 1  # bump when bulk_ldif's output changes: the cached templates are keyed by it


def ferry_run(work: Path, secrets: Path, *extra: str) -> tuple[float, float, dict[str, object]]:
    """(seconds, peak RSS MB, plan) of one `ferry run` subprocess."""
    out = work / "plan.json"
    command = [sys.executable, "-m", "ferry", "run", "-f", str(work / "manifests"),
               "--state", str(work / "state.sqlite"), "--out", str(out), *extra]
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "FERRY_SECRETS_DIR": str(secrets)},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    errors = process.stderr.read()   # small: the plan goes to --out
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise SystemExit(f"ferry run failed ({process.returncode}): {errors[-2000:]!r}")
    return seconds, usage.ru_maxrss / 1024, json.loads(out.read_text())


def counts(plan: dict[str, object]) -> str:
    """The plan's non-zero counts, e.g. `user unchanged 2000, group created 4`."""
    found = plan.get("counts")
    assert isinstance(found, dict)
    return ", ".join(f"{kind} {name} {n}" for kind, by_name in found.items()
                     for name, n in by_name.items() if n) or "nothing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=10)
    parser.add_argument("--largest", type=int, default=10_000)
    args = parser.parse_args()
    tgt_ou = "OU=Migrated,DC=tgt,DC=test"
    key = f"bulk{SEED_VERSION}-u{args.users}"
    seeds = {
        "SRC.TEST": (f"{key}-g{args.groups}-l{args.largest}", lambda: bulk_ldif(
            "OU=Corp,DC=src,DC=test", "src.test", args.users, args.groups, args.largest)),
        # Where the example template puts each department (Finance and HR: its default OU).
        "TGT.TEST": (key, lambda: bulk_ldif(tgt_ou, "tgt.test", args.users, department_ous={
            "Sales": f"OU=Sales,{tgt_ou}", "Engineering": f"OU=Engineering,{tgt_ou}",
            "Finance": None, "HR": None})),
    }
    root = Path(tempfile.mkdtemp(prefix="ferry-memory-bench-"))
    lab = Lab(max_runtime=3 * 3600, log=lambda line: print(f"  {line}", flush=True))
    src_ip, tgt_ip = free_addresses(2)
    started = time.perf_counter()
    src, tgt = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", src_ip),
                                     DomainSpec("TGT.TEST", "TGT", tgt_ip)], seeds=seeds)
    print(f"lab up with {args.users} users a side, {args.groups} groups of up to"
          f" {args.largest} members: {time.perf_counter() - started:.0f} s (seeding included"
          " when not cached); the issue's size is 100,000", flush=True)
    try:
        work = root / "work"
        manifests(work / "manifests", src, tgt)
        secrets = root / "lab" / "secrets"
        for label in ("full run, first", "full run, again"):
            seconds, peak, plan = ferry_run(work, secrets, "--full")
            verdict = "ok" if peak <= LIMIT_MB else "OVER"
            print(f"{label:<18} peak RSS {peak:7.0f} MB   limit {LIMIT_MB} MB   {verdict:<4}"
                  f"  {seconds:6.1f} s; read {reads(plan)}; {counts(plan)}",
                  flush=True)
    finally:
        lab.down(root / "lab")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
