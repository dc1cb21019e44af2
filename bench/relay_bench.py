"""DC agent password sync end to end: a password changed on the source DC, to the moment the
target DC takes it (a two-domain Samba lab, a real `ferry gateway`, a real `ferry-agent run`
on the source DC with [dc] password_changes and one for the target, loopback only).

    python bench/relay_bench.py [--samples 15]

The pair's join and route are written into the gateway's state store as a run would leave
them. Each sample resets one source user's password over LDAPS, then reads the target user's
pwdLastSet (as Administrator) until it moves; the time from the reset's answer to that is the
latency (the reads, ~20 a second, round it up a little). The new password must then bind on
the target. (Polling with binds would measure Samba's delay after each failed bind instead.)
Samba's LDAP server answers syncpasswords' change notification at once only for changes its
own worker made; others it finds on a retry timer (about every 5 s here), so most of the
latency is that wait, and samples are spread over it by a random pause between changes.
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.gateway.harness import lab_directory, start_gateway  # noqa: E402

from ferry.lab import Lab, LabDomain  # noqa: E402
from ferry.lab.samba import DomainSpec, free_addresses  # noqa: E402
from ferry.state.rows import Join, PasswordRoute  # noqa: E402
from ferry.state.store import StateStore  # noqa: E402
from ferry_agent.directory import create, ensure_ou  # noqa: E402

PAIR = "bench/src->tgt"
DEADLINE = 120.0
PAUSE = 3.0


def signs_in(domain: LabDomain, sam: str, password: str) -> bool:
    server = ldap3.Server(domain.ip, port=636, use_ssl=True,
                          tls=ldap3.Tls(ca_certs_file=str(domain.ca_file)))
    conn = ldap3.Connection(server, f"{sam}@{domain.dns_domain}", password)
    try:
        return bool(conn.bind())
    finally:
        conn.unbind()


def pwd_last_set(conn: ldap3.Connection, dn: str) -> str:
    conn.search(dn, "(objectClass=user)", ldap3.BASE, attributes=["pwdLastSet"])
    return str(conn.response[0]["raw_attributes"]["pwdLastSet"][0])


def reset(domain: LabDomain, dn: str, password: str) -> None:
    conn = domain.connect()
    assert conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE, [
        f'"{password}"'.encode("utf-16-le")])]}), conn.result
    conn.unbind()


def measure(src: LabDomain, tgt: LabDomain, root: Path, samples: int) -> dict[str, Any]:
    sam = f"rb{uuid.uuid4().hex[:8]}"
    ou_src, ou_tgt = f"OU=Relay,{src.base_dn}", f"OU=Relay,{tgt.base_dn}"
    conns = src.connect(), tgt.connect()
    ensure_ou(conns[0], ou_src)
    ensure_ou(conns[1], ou_tgt)
    dn, target_dn = f"CN={sam},{ou_src}", f"CN={sam},{ou_tgt}"
    source = create(conns[0], "user", dn, {"sAMAccountName": [sam]}, password="Start!Pass-123")
    target = create(conns[1], "user", target_dn, {"sAMAccountName": [sam]},
                    password="Other!Pass-456")
    conns[0].unbind()
    watch = conns[1]
    gateway = start_gateway(root / "gateway", "127.0.0.104")
    with StateStore(gateway.state) as store:
        store.joins.confirm(PAIR, [Join(source, target, "user", target_dn)])
        store.joins.publish_routes("bench", [PasswordRoute(PAIR, "src", "tgt")])
    agents = [
        gateway.start_agent("src", "dca", root / "dca", lab_directory(src, root / "lab"), None,
                            {"smb_conf": str(src.smb_conf), "password_changes": "true",
                             "gnupg_home": str(src.gnupg_home)}),
        gateway.start_agent("tgt", "tga", root / "tga",
                            {**lab_directory(tgt, root / "lab"), "write_subtrees": ou_tgt}),
    ]
    latencies: list[float] = []
    try:
        for _ in range(samples + 1):   # the first one warms the agents' connections
            password = f"Relay!{uuid.uuid4().hex[:12]}"
            before = pwd_last_set(watch, target_dn)
            reset(src, dn, password)
            started = time.monotonic()
            while pwd_last_set(watch, target_dn) == before:
                if time.monotonic() - started > DEADLINE:
                    raise SystemExit(f"no relay within {DEADLINE:.0f} s; see {root}")
                time.sleep(0.02)
            latencies.append(time.monotonic() - started)
            if not signs_in(tgt, sam, password):
                raise SystemExit("the relayed password does not sign in on the target")
            time.sleep(random.uniform(0, PAUSE))   # changes come at any moment, not in step
    finally:
        for process in agents:
            process.terminate()
            process.wait(timeout=30)
        gateway.stop()
        watch.unbind()
    kept = latencies[1:]
    return {"samples": len(kept), "median_s": round(statistics.median(kept), 3),
            "p90_s": round(sorted(kept)[int(0.9 * (len(kept) - 1))], 3),
            "max_s": round(max(kept), 3), "first_s": round(latencies[0], 3),
            "load": os.getloadavg()[0]}


@contextlib.contextmanager
def _kept() -> Iterator[str]:
    folder = tempfile.mkdtemp(prefix="relay-")
    print(f"lab and logs in {folder}", file=sys.stderr)
    yield folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the lab folder and logs")
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory(prefix="relay-") if not args.keep
          else _kept()) as folder:
        root = Path(folder)
        src_ip, tgt_ip = free_addresses(2)
        lab = Lab(max_runtime=3600)
        src, tgt = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", src_ip),
                                         DomainSpec("TGT.TEST", "TGT", tgt_ip)])
        try:
            result = measure(src, tgt, root, args.samples)
        finally:
            lab.down(root / "lab")
    print(json.dumps({"dc_agent_change_to_target": result,
                      "limit": "within seconds (issue 12)"}, indent=2))


if __name__ == "__main__":
    main()
