"""DC agent password sync benchmark: how soon a password changed on a Samba DC reaches the
agent's PasswordWatcher with its cleartext (a one-domain Samba lab, real `samba-tool user
syncpasswords`, the real hook and real GPG; loopback only).

    python bench/dc_agent_bench.py [--samples 20] [--burst 50] [--stored 500]

Brings up SRC.TEST on a free loopback address in a temporary folder (the lab start includes
each DC's GPG key; the key alone is timed separately), creates STORED users with passwords,
then times:
  first start     PasswordWatcher.start() on a fresh state folder: cache made, the STORED
                  stored passwords passed over
  second start    start() again on the same folder (what an agent restart costs)
  latency         SAMPLES password resets over one open LDAPS connection, one at a time: from
                  the modify's answer to next_change() returning that user's new password
                  (and from before the modify, for the whole round trip)
  burst           BURST users' passwords reset back to back, until the last has arrived
  after kill -9   syncpasswords killed, a password reset at once: until it arrives (the
                  watcher's restart delay is 1 s)
Prints one JSON document; the numbers depend on the machine's load, which is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import ldap3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import log  # noqa: E402

from ferry.lab import Lab, LabDomain  # noqa: E402
from ferry.lab import gpg as lab_gpg  # noqa: E402
from ferry.lab.samba import DomainSpec, free_addresses  # noqa: E402
from ferry_agent.dc import LocalSambaDc, PasswordWatcher  # noqa: E402
from ferry_agent.directory import create, ensure_ou  # noqa: E402

DEADLINE = 120.0



def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_s": round(statistics.median(ordered), 3),
            "p90_s": round(ordered[max(0, int(len(ordered) * 0.9) - 1)], 3),
            "min_s": round(ordered[0], 3), "max_s": round(ordered[-1], 3), "n": len(ordered)}


def add_users(conn: ldap3.Connection, ou: str, count: int, password: bool) -> dict[str, str]:
    """count users in ou: DN -> objectGUID."""
    found = {}
    for _ in range(count):
        sam = f"b{uuid.uuid4().hex[:12]}"
        dn = f"CN={sam},{ou}"
        create(conn, "user", dn, {"sAMAccountName": [sam]},
               password=new_password() if password else None,
               must_change_password=False, enabled=password)  # fmt: skip
        conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
        found[dn] = str(uuid.UUID(bytes_le=conn.response[0]["raw_attributes"]["objectGUID"][0]))
    return found


def new_password() -> str:
    return f"Bench-{uuid.uuid4().hex[:12]}-9"


def reset(conn: ldap3.Connection, dn: str, password: str) -> None:
    value = f'"{password}"'.encode("utf-16-le")
    if not conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [value])]}):
        raise RuntimeError(f"{dn}: {conn.result}")


def wait_for(watcher: PasswordWatcher, wanted: dict[str, str]) -> None:
    """Until every guid -> password of `wanted` has been yielded (others are passed)."""
    deadline = time.monotonic() + DEADLINE
    left = dict(wanted)
    while left:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(left)} changes did not arrive within {DEADLINE:.0f}s")
        change = watcher.next_change(timeout=1.0)
        if change is not None and left.get(change.guid) == change.password:
            del left[change.guid]


def keygen_seconds(runs: int = 5) -> list[float]:
    samples = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="ferry-gpg-bench-")) / "src.test"
        folder.mkdir()
        started = time.perf_counter()
        lab_gpg.ensure_key(folder)
        samples.append(time.perf_counter() - started)
        shutil.rmtree(folder.parent)
    return samples


def measure(domain: LabDomain, root: Path, args: argparse.Namespace) -> dict[str, Any]:
    conn = domain.connect()
    ou = f"OU=DcAgentBench,{domain.base_dn}"
    ensure_ou(conn, ou)
    seeded = time.perf_counter()
    add_users(conn, ou, args.stored, password=True)
    log(f"{args.stored} users with passwords in {time.perf_counter() - seeded:.1f} s")
    users = add_users(conn, ou, max(args.burst, 1), password=False)
    dns = list(users)
    watcher = PasswordWatcher(LocalSambaDc(domain.smb_conf), root / "agent-state",
                              domain.gnupg_home)
    result: dict[str, Any] = {}
    started = time.perf_counter()
    watcher.start()
    result["first_start_s"] = round(time.perf_counter() - started, 2)
    result["stored_passwords_passed_over"] = args.stored
    watcher.stop()
    started = time.perf_counter()
    watcher.start()
    result["second_start_s"] = round(time.perf_counter() - started, 3)
    try:
        wait_for(watcher, {})  # nothing pending
        after_answer, round_trip = [], []
        dn, guid = dns[0], users[dns[0]]
        for _ in range(args.samples):
            password = new_password()
            before = time.perf_counter()
            reset(conn, dn, password)
            answered = time.perf_counter()
            wait_for(watcher, {guid: password})
            done = time.perf_counter()
            after_answer.append(done - answered)
            round_trip.append(done - before)
        result["latency_after_modify"] = summary(after_answer)
        result["latency_with_modify"] = summary(round_trip)
        log(f"latency: median {result['latency_after_modify']['median_s']} s after the modify")

        burst = {users[dn]: new_password() for dn in dns[: args.burst]}
        started = time.perf_counter()
        for dn in dns[: args.burst]:
            reset(conn, dn, burst[users[dn]])
        wait_for(watcher, burst)
        seconds = time.perf_counter() - started
        result["burst"] = {"changes": len(burst), "seconds": round(seconds, 2),
                           "changes_per_s": round(len(burst) / seconds, 1)}

        killed = watcher.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        password = new_password()
        started = time.perf_counter()
        reset(conn, dns[0], password)
        wait_for(watcher, {users[dns[0]]: password})
        result["after_kill_9_s"] = round(time.perf_counter() - started, 2)
    finally:
        watcher.stop()
        conn.unbind()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--stored", type=int, default=500)
    args = parser.parse_args()
    if shutil.which("gpg") is None:
        log("gpg is not installed (Debian package gnupg); `make deps` installs it")
        sys.exit(1)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind so the lab goes down
    started = time.perf_counter()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="ferry-dc-agent-bench-"))
    lab = Lab(max_runtime=3 * 3600)
    try:
        keys = keygen_seconds()
        (ip,) = free_addresses(1, first=50)
        up = time.perf_counter()
        (domain,) = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", ip)])
        lab_up = time.perf_counter() - up
        log(f"lab up in {lab_up:.1f} s on {ip}")
        result = measure(domain, root, args)
    finally:
        try:
            lab.down(root / "lab")
        except Exception as exc:
            log(f"cleanup: lab down: {type(exc).__name__}: {exc}")
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load_before],
        "lab_up_one_dc_s": round(lab_up, 2),
        "gpg_key_per_dc": summary(keys),
        **result,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
