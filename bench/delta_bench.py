"""A run costs what changed: `ferry run` end to end (process start included) on a Samba pair.

    python bench/delta_bench.py [--users 5000] [--changes 1000]

Brings up SRC.TEST and TGT.TEST on free loopback addresses, seeds SRC (users, groups with
their memberships, contacts), makes the first full run and one changed run (which takes the
target's watermark), then measures, each beside its limit:
  changed run, 1 change      `ferry run` (changedObjectsOnly)           limit 3 s
  full run, no change        `ferry run --full`   vs ldapsearch of both sides, limit 1.5x
  changed run, N changes     `ferry run`          vs ldapsearch of the N changed objects plus
                                                    N bare ldap3 modifies, limit 1.5x
and, first, the CPU of a process that only imports what `ferry run` imports (the best of 3),
the part of the 1-change run's 3 s that no directory or state store is in.
Ferry's modules run from bytecode, as in the image (pip compiles on install): the runs write
it under the bench's temporary folder (PYTHONPYCACHEPREFIX) even where PYTHONDONTWRITEBYTECODE
is set, rather than compile ~130 modules from source each run (~0.3 s).
The issue's size is 100,000 objects; seeding goes through LDAP (about 100 users/s here), so
the size is an argument and the table says which it was.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import ldap3
from measure import ldapsearch_count

from ferry.lab import Lab, LabDomain
from ferry.lab.samba import DomainSpec, free_addresses
from ferry.lab.seed import seed

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "ad-to-ad"
TARGET_OU = "OU=Migrated,DC=tgt,DC=test"
# What the example workflow reads of each side (its mappings and match rules, and the
# connector's own), for ldapsearch to read the same.
ATTRIBUTES = ["objectGUID", "objectClass", "cn", "displayName", "givenName", "sn", "mail",
              "proxyAddresses", "userPrincipalName", "sAMAccountName", "employeeID",
              "department", "title", "manager", "member", "userAccountControl",
              "description", "employeeType", "company", "telephoneNumber"]


def manifests(folder: Path, src: LabDomain, tgt: LabDomain) -> Path:
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    env = (folder / "environments.yaml").read_text()
    env = env.replace("host: 127.0.0.2", f"host: {src.ip}").replace(
        "host: 127.0.0.3", f"host: {tgt.ip}")
    (folder / "environments.yaml").write_text(env)
    workflow = (folder / "workflow.yaml").read_text()
    workflow = workflow.replace("changedObjectsOnly: false", "changedObjectsOnly: true")
    workflow = workflow.replace("threshold: 10", "threshold: 100000")
    (folder / "workflow.yaml").write_text(workflow)
    return folder


def bytecode_env(cache: Path) -> dict[str, str]:
    """The environment with Python's bytecode kept under cache, whatever the caller's says."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def ferry_run(work: Path, secrets: Path, *extra: str) -> tuple[float, dict[str, object]]:
    out = work / "plan.json"
    command = [sys.executable, "-m", "ferry", "run", "-f", str(work / "manifests"),
               "--state", str(work / "state.sqlite"), "--out", str(out), *extra]
    started = time.perf_counter()
    env = {**bytecode_env(work / "pycache"), "FERRY_SECRETS_DIR": str(secrets)}
    done = subprocess.run(command, env=env,
                          capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ferry run failed ({done.returncode}): {done.stdout[-2000:]}"
                         f"{done.stderr[-2000:]}")
    return seconds, json.loads(out.read_text())


def ldapsearch(domain: LabDomain, base: str, ldap_filter: str = "(objectClass=*)") -> int:
    return ldapsearch_count(domain, base, ldap_filter, ATTRIBUTES)


def modify_titles(domain: LabDomain, dns: list[str], title: str) -> float:
    conn = domain.connect()
    started = time.perf_counter()
    for dn in dns:
        conn.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, [title])]})
        if conn.result["result"] != 0:
            raise SystemExit(f"modify of {dn} failed: {conn.result['description']}")
    seconds = time.perf_counter() - started
    conn.unbind()
    return seconds


def target_dns(domain: LabDomain, count: int) -> list[str]:
    conn = domain.connect()
    entries = conn.extend.standard.paged_search(
        TARGET_OU, "(&(objectCategory=person)(objectClass=user))", attributes=["1.1"],
        paged_size=1000, generator=True)
    dns = [e["dn"] for e in entries if e.get("type") == "searchResEntry"][:count]
    conn.unbind()
    return dns


def reads(plan: dict[str, object]) -> str:
    parts = []
    for r in plan.get("reads", []):   # type: ignore[union-attr]
        assert isinstance(r, dict)
        parts.append(f"{r['role']} {r['objects']}{'' if r['full'] else ' (part)'}")
    return ", ".join(parts)


def import_cpu(cache: Path) -> float:
    """CPU seconds of a process that starts and imports the run path, nothing else."""
    command = [sys.executable, "-c", "import ferry.cli, ferry.cli.local_runs"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=bytecode_env(cache), check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def row(label: str, seconds: float, limit: float, detail: str) -> None:
    verdict = "ok" if seconds <= limit else "OVER"
    print(f"{label:<34} {seconds:8.2f} s   limit {limit:7.2f} s   {verdict:<4}  {detail}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ferry-delta-bench-"))
    import_cpu(root / "work" / "pycache")   # writes the bytecode
    imports = min(import_cpu(root / "work" / "pycache") for _ in range(3))
    lab = Lab(max_runtime=3 * 3600)
    src_ip, tgt_ip = free_addresses(2)
    src, tgt = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", src_ip),
                                     DomainSpec("TGT.TEST", "TGT", tgt_ip)])
    try:
        groups = max(5, args.users // 1000)
        seeded = seed(src, users=args.users, groups=groups, contacts=args.users // 20)
        total = seeded.users + seeded.groups + seeded.contacts
        print(f"seeded {total} objects ({seeded.users} users, {seeded.groups} groups,"
              f" {seeded.contacts} contacts) in {seeded.seconds:.0f} s; the issue's size is"
              " 100,000", flush=True)
        work = root / "work"
        manifests(work / "manifests", src, tgt)
        secrets = root / "lab" / "secrets"
        seconds, plan = ferry_run(work, secrets)
        print(f"first run (creates everything) {seconds:.1f} s: {reads(plan)}", flush=True)
        seconds, plan = ferry_run(work, secrets)
        print(f"first changed run (takes the target's watermark) {seconds:.1f} s:"
              f" {reads(plan)}", flush=True)
        seconds, plan = ferry_run(work, secrets)   # sees the first runs' own writes once
        print(f"settling changed run {seconds:.1f} s: {reads(plan)}", flush=True)
        print(f"\n{'figure':<34} {'ferry':>10}   {'limit':>13}", flush=True)
        row("import CPU of the run path", imports, 3.0,
            "process start and imports, part of the 1-change run")

        modify_titles(src, [seeded.user_dns[0]], "Bench One")
        seconds, plan = ferry_run(work, secrets)
        row("changed run, 1 change", seconds, 3.0, reads(plan))

        started = time.perf_counter()
        physical = ldapsearch(src, seeded.corp_dn) + ldapsearch(tgt, TARGET_OU)
        both = time.perf_counter() - started
        seconds, plan = ferry_run(work, secrets, "--full")
        row("full run, no change", seconds, 1.5 * both,
            f"ldapsearch of both sides {both:.2f} s ({physical} entries); {reads(plan)}")

        changed = seeded.user_dns[1:1 + args.changes]
        modify_titles(src, changed, "Bench Many")
        started = time.perf_counter()
        read = ldapsearch(src, seeded.corp_dn, "(title=Bench Many)")
        read_seconds = time.perf_counter() - started
        seconds, plan = ferry_run(work, secrets)
        # The bare floor: reading the changes, and as many plain modifies on the target.
        spare = target_dns(tgt, len(changed))
        modify_seconds = modify_titles(tgt, spare, "Bare Modify")
        floor = read_seconds + modify_seconds
        row(f"changed run, {len(changed)} changes", seconds, 1.5 * floor,
            f"read {read} changes {read_seconds:.2f} s + {len(spare)} bare modifies"
            f" {modify_seconds:.2f} s; {reads(plan)}")
    finally:
        lab.down(root / "lab")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
