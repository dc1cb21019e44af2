"""AD connector benchmark against a lab Samba DC, next to the bare tools on the same DC.

    python bench/ad_bench.py [--users 10000] [--creates 1000] [--password-creates 200]

Brings up a one-domain lab (SRC.TEST on a free loopback address) in a temporary folder,
seeds it, then measures in the same run:
  read:   ferry_agent.directory.read_full over every seeded user (paged, 1000 per page,
          attributes decoded to str)  vs  ldapsearch -E pr=1000/noprompt of the same entries
          with the same attributes (LDIF to a pipe, entries counted)
  create: ferry_agent.directory.write.create  vs  a bare ldap3 add loop with the same
          attributes, without and with a password (unicodePwd); and batches of 200 creates
          (the connector's batch) through the write pool (batch.apply_pooled) of each size
          in --pool-sizes, one connection per thread; then the bare loop and the default
          pool again through a loopback proxy adding --latency-ms of round trip (a DC a
          network away, where a pool overlaps the waits)
Each read runs three times and the best run counts; writes run once each. Then each figure
beside its limit: read_full >= 0.8 x ldapsearch's objects/s, creates through the pool of the
Environment's default size (spec.activeDirectory.writeConnections) >= 1.5 x the bare loop's.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import ldap3
from latency_proxy import latency_proxy
from measure import ldapsearch_count

from ferry.api.environment import ActiveDirectorySpec
from ferry.lab import Lab, LabDomain
from ferry.lab.samba import DomainSpec, free_addresses
from ferry.lab.seed import seed
from ferry_agent.directory import ReadScope, ensure_ou, generate_password, read_full
from ferry_agent.directory.batch import Write, apply_pooled
from ferry_agent.directory.connection import DirectoryEndpoint, connect
from ferry_agent.directory.write import create
from ferry_agent.dn import build_dn

ATTRIBUTES = [
    "cn",
    "displayName",
    "givenName",
    "sn",
    "mail",
    "proxyAddresses",
    "userPrincipalName",
    "sAMAccountName",
    "employeeID",
    "department",
    "title",
    "manager",
    "telephoneNumber",
    "userAccountControl",
]
USER_FILTER = "(&(objectCategory=person)(objectClass=user))"


def best_of(runs: int, action: Callable[[], int]) -> tuple[int, float]:
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        count = action()
        results.append((count, time.perf_counter() - started))
    return min(results, key=lambda r: r[1])


def read_with_ferry(domain: LabDomain, corp: str) -> int:
    conn = domain.connect()
    count = sum(1 for _ in read_full(conn, ReadScope([corp], ["user"]), ATTRIBUTES, page_size=1000))
    conn.unbind()
    return count


def read_with_ldapsearch(domain: LabDomain, corp: str) -> int:
    return ldapsearch_count(domain, corp, USER_FILTER, ATTRIBUTES)


def user_attributes(index: int, tag: str) -> dict[str, list[str]]:
    sam = f"b{tag}{index:05d}"
    return {
        "sAMAccountName": [sam],
        "userPrincipalName": [f"{sam}@src.test"],
        "givenName": ["Bench"],
        "sn": [f"User {index}"],
        "displayName": [f"Bench User {index}"],
        "mail": [f"{sam}@src.test"],
        "department": ["Benchmarks"],
        "title": ["Tester"],
    }


def create_with_ferry(domain: LabDomain, ou: str, count: int, password: bool) -> int:
    conn = domain.connect()
    tag = uuid.uuid4().hex[:4]
    for index in range(count):
        create(
            conn,
            "user",
            build_dn(f"Bench User {index}", ou),
            user_attributes(index, tag),
            password=generate_password() if password else None,
            enabled=True,
        )
    conn.unbind()
    return count


def create_pooled(domain: LabDomain, ou: str, count: int, size: int,
                  endpoint: DirectoryEndpoint | None = None) -> int:
    """Creates in the connector's batches of 200 over a pool of `size` connections."""
    conns: dict[int, ldap3.Connection] = {}

    def connection(number: int) -> ldap3.Connection:
        if number not in conns:
            conns[number] = connect(endpoint or domain.endpoint())
        return conns[number]

    tag = uuid.uuid4().hex[:4]
    writes = [Write("create", build_dn(f"Bench User {index}", ou), object_type="user",
                    attributes=user_attributes(index, tag), enabled=True)
              for index in range(count)]
    for start in range(0, count, 200):
        for result in apply_pooled(connection, size, writes[start : start + 200]):
            if result.error is not None:
                raise SystemExit(f"pooled create failed: {result.error}")
    for conn in conns.values():
        conn.unbind()
    return count


def create_with_bare_ldap3(domain: LabDomain, ou: str, count: int, password: bool,
                           endpoint: DirectoryEndpoint | None = None) -> int:
    conn = connect(endpoint or domain.endpoint())
    tag = uuid.uuid4().hex[:4]
    for index in range(count):
        attrs: dict[str, object] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "userAccountControl": "512",
            **user_attributes(index, tag),
        }
        if password:
            attrs["unicodePwd"] = f'"{generate_password()}"'.encode("utf-16-le")
        conn.add(f"CN=Bench User {index},{ou}", attributes=attrs)
        if conn.result["result"] != 0:
            raise SystemExit(f"bare add failed: {conn.result['description']}")
    conn.unbind()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--creates", type=int, default=1000)
    parser.add_argument("--password-creates", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="round trip added by a loopback proxy for the creates a network"
                             " away (20: a cluster reaching an on-premises DC over a VPN)")
    parser.add_argument("--pool-sizes", default="1,2,4,8",
                        help="write pool sizes to measure, comma-separated")
    args = parser.parse_args()
    default_pool = int(ActiveDirectorySpec.model_fields["write_connections"].default)
    pool_sizes = sorted({int(size) for size in args.pool_sizes.split(",")} | {default_pool})

    root = Path(tempfile.mkdtemp(prefix="ferry-ad-bench-"))
    lab = Lab(max_runtime=3 * 3600)
    (ip,) = free_addresses(1)
    started = time.perf_counter()
    (domain,) = lab.up(root, [DomainSpec("SRC.TEST", "SRC", ip)])
    up_seconds = time.perf_counter() - started
    rows: list[tuple[str, str, int, float]] = []
    try:
        summary = seed(domain, users=args.users, groups=5, contacts=0)
        print(
            f"lab up {up_seconds:.1f} s on {ip}; seeded {summary.users} users and"
            f" {summary.groups} groups in {summary.seconds:.1f} s"
            f" ({summary.users / summary.seconds:.0f} users/s incl. memberships)"
        )
        corp = summary.corp_dn
        count, seconds = best_of(3, lambda: read_with_ferry(domain, corp))
        rows.append(("full read, users", "read_full (ldap3)", count, seconds))
        count, seconds = best_of(3, lambda: read_with_ldapsearch(domain, corp))
        rows.append(("full read, users", "ldapsearch -E pr=1000", count, seconds))

        conn = domain.connect()
        ous = {
            name: f"OU={name},{summary.base_dn}"
            for name in ("BenchA", "BenchB", "BenchC", "BenchD",
                         *(f"BenchPool{size}" for size in pool_sizes))
        }
        for ou in ous.values():
            ensure_ou(conn, ou)
        conn.unbind()
        for label, ou, action, n, password in (
            ("create user", ous["BenchA"], create_with_ferry, args.creates, False),
            ("create user", ous["BenchB"], create_with_bare_ldap3, args.creates, False),
            (
                "create user + password",
                ous["BenchC"],
                create_with_ferry,
                args.password_creates,
                True,
            ),
            (
                "create user + password",
                ous["BenchD"],
                create_with_bare_ldap3,
                args.password_creates,
                True,
            ),
        ):
            tool = "write.create" if action is create_with_ferry else "bare ldap3 add"
            started = time.perf_counter()
            action(domain, ou, n, password)
            rows.append((label, tool, n, time.perf_counter() - started))
        for size in pool_sizes:
            started = time.perf_counter()
            create_pooled(domain, ous[f"BenchPool{size}"], args.creates, size)
            rows.append(("create user", f"write pool of {size}", args.creates,
                         time.perf_counter() - started))
        # The same creates with the DC a network away: the latency a pool overlaps.
        with latency_proxy(domain.ip, domain.port, args.latency_ms / 2000) as port:
            away = dataclasses.replace(domain.endpoint(), host="127.0.0.1", port=port,
                                       server_name=domain.host_name)
            label = f"create, {args.latency_ms:g} ms RTT"
            for tool, ou_name, make in (
                ("bare ldap3 add", "BenchE",
                 lambda ou: create_with_bare_ldap3(domain, ou, args.creates, False, away)),
                (f"write pool of {default_pool}", "BenchF",
                 lambda ou: create_pooled(domain, ou, args.creates, default_pool, away)),
            ):
                ou = f"OU={ou_name},{summary.base_dn}"
                conn = domain.connect()
                ensure_ou(conn, ou)
                conn.unbind()
                started = time.perf_counter()
                make(ou)
                rows.append((label, tool, args.creates, time.perf_counter() - started))
    finally:
        lab.down(root)

    print()
    print(f"{'operation':<24} {'tool':<22} {'objects':>8} {'seconds':>8} {'objects/s':>10}")
    rates: dict[tuple[str, str], float] = {}
    for label, tool, count, seconds in rows:
        rates[(label, tool)] = count / seconds
        print(f"{label:<24} {tool:<22} {count:>8} {seconds:>8.2f} {count / seconds:>10.0f}")
    print()
    for figure, value, limit, what in (
        ("full read, users: read_full", rates[("full read, users", "read_full (ldap3)")],
         0.8 * rates[("full read, users", "ldapsearch -E pr=1000")], "0.8 x ldapsearch"),
        (f"create user: write pool of {default_pool} (default)",
         rates[("create user", f"write pool of {default_pool}")],
         1.5 * rates[("create user", "bare ldap3 add")], "1.5 x bare ldap3 loop"),
        (f"{label}: write pool of {default_pool}",
         rates[(label, f"write pool of {default_pool}")],
         1.5 * rates[(label, "bare ldap3 add")], "1.5 x bare ldap3 loop"),
    ):
        verdict = "met" if value >= limit else "NOT met"
        print(f"{figure:<44} {value:>7.0f} objects/s   limit {what}: {limit:>6.0f}  {verdict}")


if __name__ == "__main__":
    main()
