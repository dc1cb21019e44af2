"""Entra ID benchmark against the Graph emulator (real HTTPS on loopback, real msgraph-sdk and
azure-identity): sustained user creates under the documented write quota, and a full read.

    python bench/entra_bench.py [--users 50000] [--writes 6500] [--quota 3000] [--window 150]

Writes: WRITES users created through EntraConnector.write (the sync Job's path, 20 per call)
with the tenant's write quota set in the emulator and the same quota in the connector. N whole
quotas' worth cannot be sent in less than N windows, so the sustained rate is N quotas' worth
over the time until the first write past them went out; against the quota's rate, with the
429s the tenant served.
The default spans a little over two quota windows (about five minutes).
Read: USERS users seeded straight into a second tenant, then EntraConnector.read of users in
full (the users delta query from the start, 999 per page where Graph allows): objects/s and
the process's peak RSS. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.measure import log  # noqa: E402
from tests.integration.entra.tenants import Tenant, new_tenant  # noqa: E402
from tests.support.graph_emulator.fixture import GraphEmulator  # noqa: E402

from ferry.api.environment import EntraIdSpec, Scope  # noqa: E402
from ferry.connectors.base import ObjectWrite  # noqa: E402
from ferry.connectors.entra.auth import CaBundle, GraphEndpoints, credential  # noqa: E402
from ferry.connectors.entra.connector import EntraConnector  # noqa: E402
from ferry.connectors.entra.session import GraphSession, WriteQuota  # noqa: E402
from ferry.engine.plan import Operation, OpKind, shared_names  # noqa: E402
from ferry.engine.records import ObjectType  # noqa: E402
from ferry.secrets import SecretResolver  # noqa: E402

ADDRESS = "127.0.0.123"



def connector(emulator: GraphEmulator, folder: Path, roles: list[str],
              quota: WriteQuota) -> tuple[EntraConnector, Tenant]:
    """A tenant with an app, and a connector signed in to it."""
    tenant = new_tenant(emulator, folder, tuple(roles))
    spec = EntraIdSpec.model_validate({
        "tenantId": tenant.tenant_id, "clientId": tenant.client_id,
        "credentials": {"clientSecret": {"file": str(tenant.secret_file)}},
        "authorityHost": emulator.authority_host,
        "graphEndpoint": emulator.graph_url.removesuffix("/v1.0"),
        "tls": {"ca": {"file": str(emulator.ca_file)}}})
    secrets = SecretResolver.from_environment(None, folder)
    endpoints = GraphEndpoints.of(spec)
    ca = CaBundle(emulator.ca_file.read_text())
    session = GraphSession(credential(spec, secrets, "bench", endpoints, ca), endpoints, ca,
                           quota)
    return EntraConnector("bench", session, Scope()), tenant


def writes(emulator: GraphEmulator, folder: Path, count: int, quota: WriteQuota
           ) -> dict[str, Any]:
    conn, tenant = connector(emulator, folder, ["User.ReadWrite.All"], quota)
    emulator.admin.set_write_quota(tenant.tenant_id, tenant.client_id, quota.writes,
                                   quota.seconds)
    domain = tenant.domain
    names = shared_names(("displayName", "mailNickname", "userPrincipalName", "surname"))
    started = time.perf_counter()
    done = 0
    windows = (count - 1) // quota.writes     # whole quotas' worth sent before the last write
    beyond: float | None = None               # when write windows * quota + 1 went out
    for start in range(0, count, conn.batch_size):
        batch = [ObjectWrite(Operation(
            OpKind.CREATE, ObjectType.USER, "bench", f"s{i}", None, f"CN=w{i}@{domain}",
            change_names=names,
            change_values=(f"Writer {i}", f"w{i}", f"w{i}@{domain}", "Bench"),
            enabled=True), password="Bench-Passw0rd-1!")
            for i in range(start, min(start + conn.batch_size, count))]
        outcomes = conn.write(batch)
        failed = [o.error for o in outcomes if o.error]
        if failed:
            raise SystemExit(f"writes failed: {failed[:3]}")
        if beyond is None and windows and done >= windows * quota.writes:
            beyond = time.perf_counter()  # this batch held the first write past them
        done += len(batch)
        if done % 1000 < conn.batch_size:
            log(f"  {done}/{count} created, {time.perf_counter() - started:.0f} s")
    seconds = time.perf_counter() - started
    counters = emulator.admin.counters(tenant.tenant_id)
    conn.close()
    quota_rate = quota.writes / quota.seconds
    if beyond is None:
        raise SystemExit("give --writes more than one quota's worth to measure a sustained rate")
    # Writing N quotas' worth takes N windows at best: the first write past them waits that long.
    rate = windows * quota.writes / (beyond - started)
    return {"users": count, "seconds": round(seconds, 1),
            "sustained_writes_per_s": round(rate, 2),
            "quota": f"{quota.writes} per {quota.seconds:g} s",
            "quota_writes_per_s": round(quota_rate, 2),
            "sustained_share_of_quota": round(rate / quota_rate, 3),
            "tenant_429s": counters.get("throttled", 0),
            "connector_429s_met": conn.session.throttled}


def read(emulator: GraphEmulator, folder: Path, users: int) -> dict[str, Any]:
    conn, tenant = connector(emulator, folder, ["User.Read.All"], WriteQuota(3000, 150))
    domain = tenant.domain
    started = time.perf_counter()
    emulator.admin.seed(tenant.tenant_id, users=[{
        "userPrincipalName": f"r{i}@{domain}", "displayName": f"Reader {i}",
        "mail": f"r{i}@{domain}", "givenName": "Reader", "surname": f"{i}",
        "jobTitle": "Analyst", "department": "Bench", "employeeId": f"E{i}",
        "accountEnabled": True} for i in range(users)])
    log(f"  seeded {users} users in {time.perf_counter() - started:.1f} s")
    wanted = ["givenName", "surname", "jobTitle", "department", "employeeId", "mail"]
    best = None
    for _ in range(2):
        started = time.perf_counter()
        result = conn.read([ObjectType.USER], wanted)
        seconds = time.perf_counter() - started
        if len(result.records) != users:
            raise SystemExit(f"read {len(result.records)} users, expected {users}")
        best = seconds if best is None else min(best, seconds)
        log(f"  full read: {users} users in {seconds:.2f} s")
    conn.close()
    assert best is not None
    return {"users": users, "seconds": round(best, 2), "objects_per_s": round(users / best),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--writes", type=int, default=6500)
    parser.add_argument("--quota", type=int, default=3000)
    parser.add_argument("--window", type=float, default=150.0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ferry-entra-bench-"))
    with GraphEmulator(folder / "emulator", address=ADDRESS) as emulator:
        log("full read")
        reading = read(emulator, folder, args.users)
        log(f"writes under a quota of {args.quota} per {args.window:g} s")
        writing = writes(emulator, folder, args.writes, WriteQuota(args.quota, args.window))
    print(json.dumps({"read": reading, "writes": writing}, indent=2))


if __name__ == "__main__":
    main()
