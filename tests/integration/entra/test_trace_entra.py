"""`ferry trace` from AD (the lab's SRC) into an Entra ID tenant (the Graph emulator)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.integration.entra.tenants import ferry, new_tenant
from tests.integration.entra.test_ad_to_entra import manifests
from tests.support.graph_emulator.fixture import GraphEmulator

from ferry_agent.directory import create
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab


def _trace(folder: Path, secrets: Path, key: str, *more: str) -> dict[str, Any]:
    done = ferry(folder, "trace", "-f", str(folder / "manifests"), "-w", "ad-to-entra",
                 "--state", str(folder / "state.sqlite"), key, "--json", *more,
                 secrets_dir=secrets)
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_trace_matches_a_cloud_user_by_employee_id_and_apply_joins_it(
        lab: Any, src_ou: str, entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    tenant = new_tenant(entra_emulator, tmp_path)
    manifests(tmp_path, lab, src_ou, tenant)
    sam = f"tr{uuid.uuid4().hex[:8]}"
    conn = lab.src.connect()
    create(conn, "user", build_dn(f"Trace {sam}", src_ou), {
        "sAMAccountName": [sam], "userPrincipalName": [f"{sam}@src.test"],
        "mail": [f"{sam}@src.test"], "displayName": ["Trace Person"], "title": ["Pilot"],
        "employeeID": ["T-77"]}, enabled=True, password="Src-Passw0rd-1!")
    conn.unbind()
    entra_emulator.admin.seed(tenant.tenant_id, users=[{
        "userPrincipalName": f"cloud-{sam}@{tenant.domain}", "displayName": "Cloud Person",
        "mailNickname": f"cloud-{sam}", "employeeId": "T-77", "jobTitle": "Crew"}])
    secrets = lab.root / "secrets"

    found = _trace(tmp_path, secrets, f"{sam}@src.test")
    pair = found["pairs"][0]
    rule = next(r for r in pair["rules"] if r["rule"] == "employeeID -> employeeId")
    assert rule["note"] == "one candidate: this rule decides"
    assert rule["candidates"][0]["dn"] == f"CN=cloud-{sam}@{tenant.domain}"
    assert pair["decision"] == "update"
    assert {"attribute": "jobTitle", "current": "Crew", "staged": "Pilot"} in pair["diff"]

    applied = _trace(tmp_path, secrets, sam, "--apply")
    assert applied["result"] == "Succeeded"
    user = next(u for u in entra_emulator.admin.users(tenant.tenant_id)
                if u["userPrincipalName"] == f"cloud-{sam}@{tenant.domain}")
    assert user["jobTitle"] == "Pilot"
    again = _trace(tmp_path, secrets, sam)
    assert again["pairs"][0]["join"].startswith(f"joined to CN=cloud-{sam}@{tenant.domain}")
    assert again["pairs"][0]["decision"] == "nothing to do: in sync"
