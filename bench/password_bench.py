"""Password sync benchmark: NT hashes read from a Samba DC by DRSUAPI and set on another by SAMR
over SMB (ferry_agent.passwords), on a two-domain lab (loopback only).

    python bench/password_bench.py [--users 2100] [--objects 200] [--sets 500] [--runs 3]

Brings up SRC.TEST and TGT.TEST in a temporary folder, creates USERS users with passwords on
SRC (the size of the integration tests' seeded SRC; ferry.lab.seed makes users without
passwords, which have no NT hash to read) and SETS users on TGT, then measures, best of RUNS:
  full read      replication.changes(src) to the end: every user's hash, in chunks
  per object     replication.hashes_of(src, OBJECTS GUIDs): one EXOP_REPL_OBJ each
  set            samr.set_nt_hashes(tgt, SETS (objectSid, hash) pairs): one SMB connection
Each rate is printed beside the floor the research measured on a loaded 2-core machine
(27 hashes/s full, 12/s per object); exit 1 if a rate is under its floor. Sets had no
measured floor.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import ldap3  # noqa: E402
from bench.measure import log  # noqa: E402

from ferry.lab import Lab, LabDomain  # noqa: E402
from ferry.lab.samba import DomainSpec, free_addresses  # noqa: E402
from ferry_agent.directory import create, ensure_ou  # noqa: E402
from ferry_agent.directory.password import generate_password  # noqa: E402
from ferry_agent.directory.values import sid_from_bytes  # noqa: E402
from ferry_agent.dn import build_dn  # noqa: E402
from ferry_agent.passwords import DcEndpoint, replication, samr  # noqa: E402

FULL_FLOOR = 27.0     # hashes/s, research: full NC read, load average ~9 on 2 cores
OBJECT_FLOOR = 12.0   # hashes/s, research: one EXOP_REPL_OBJ per account



def best_of(runs: int, action: Callable[[], int]) -> tuple[int, float]:
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        count = action()
        results.append((count, time.perf_counter() - started))
    return min(results, key=lambda r: r[1])


def admin_endpoint(domain: LabDomain) -> DcEndpoint:
    return DcEndpoint(host=domain.ip, user=domain.admin_user, password=domain.admin_password,
                      base_dn=domain.base_dn)  # fmt: skip


def seed(domain: LabDomain, count: int, with_passwords: bool) -> list[str]:
    """`count` enabled users under OU=PwBench; their DNs."""
    conn = domain.connect()
    ou = f"OU=PwBench,{domain.base_dn}"
    ensure_ou(conn, ou)
    dns = []
    for index in range(count):
        dn = build_dn(f"pw{index:05d}", ou)
        create(conn, "user", dn, {"sAMAccountName": [f"pw{index:05d}"]},
               password=generate_password() if with_passwords else None, enabled=True)
        dns.append(dn)
        if (index + 1) % 500 == 0:
            log(f"  {domain.realm}: {index + 1}/{count} users")
    conn.unbind()
    return dns


def sids(domain: LabDomain, dns: list[str]) -> list[str]:
    conn = domain.connect()
    found = []
    for dn in dns:
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
        found.append(sid_from_bytes(conn.response[0]["raw_attributes"]["objectSid"][0]))
    conn.unbind()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2100)
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--sets", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="ferry-password-bench-"))
    lab = Lab(max_runtime=3 * 3600)
    src_ip, tgt_ip = free_addresses(2)
    started = time.perf_counter()
    src, tgt = lab.up(root, [DomainSpec("SRC.TEST", "SRC", src_ip),
                             DomainSpec("TGT.TEST", "TGT", tgt_ip)])
    log(f"lab up in {time.perf_counter() - started:.1f} s ({src_ip}, {tgt_ip})")
    rows: list[tuple[str, int, float, str, float | None]] = []
    try:
        started = time.perf_counter()
        seed(src, args.users, with_passwords=True)
        targets = sids(tgt, seed(tgt, args.sets, with_passwords=False))
        log(f"seeded in {time.perf_counter() - started:.1f} s")
        source = admin_endpoint(src)

        hashes: list[replication.NtHash] = []

        def full() -> int:
            hashes.clear()
            with replication.changes(source) as read:
                hashes.extend(read)
            return len(hashes)

        count, seconds = best_of(args.runs, full)
        rows.append(("full read (GetNCChanges)", count, seconds, "research, loaded",
                     FULL_FLOOR))
        guids = [found.guid for found in hashes[: args.objects]]
        count, seconds = best_of(args.runs,
                                 lambda: sum(1 for _ in replication.hashes_of(source, guids)))
        rows.append(("per object (EXOP_REPL_OBJ)", count, seconds, "research, loaded",
                     OBJECT_FLOOR))
        items = [(sid, hashes[index % len(hashes)].nt_hash) for index, sid in enumerate(targets)]
        target = admin_endpoint(tgt)

        def set_all() -> int:
            outcomes = samr.set_nt_hashes(target, items)
            failed = [outcome for outcome in outcomes if outcome]
            if failed:
                raise SystemExit(f"{len(failed)} sets failed, first: {failed[0]}")
            return len(outcomes)

        count, seconds = best_of(args.runs, set_all)
        rows.append(("set (SAMR over SMB)", count, seconds, "none measured", None))
    finally:
        lab.down(root)

    print(f"load average {os.getloadavg()[0]:.1f}; best of {args.runs}")
    print(f"{'operation':<28} {'hashes':>7} {'seconds':>8} {'hashes/s':>9} {'floor/s':>8}"
          "  floor from")
    below = 0
    for label, count, seconds, source_of_floor, floor in rows:
        rate = count / seconds
        shown = f"{floor:>8.0f}" if floor is not None else f"{'-':>8}"
        flag = "  BELOW" if floor is not None and rate < floor else ""
        below += bool(flag)
        print(f"{label:<28} {count:>7} {seconds:>8.2f} {rate:>9.0f} {shown}"
              f"  {source_of_floor}{flag}")
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
