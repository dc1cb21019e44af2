"""AD (the Samba lab's SRC) into an Entra ID tenant (the Graph emulator) with `ferry run`:
users and groups created with mapped attributes and UPNs, a quiet second run, one AD change
as one Graph update, and the delete threshold."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.integration.entra.tenants import by_upn, copy_example, ferry, new_tenant, totals
from tests.support.graph_emulator.fixture import GraphEmulator

from ferry_agent.directory import create
from ferry_agent.directory.write import add_members, delete, update
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab


def seed(lab: Any, ou: str, users: int) -> list[str]:
    """Users with the attributes the built-in mappings carry, and one group of them all."""
    conn = lab.src.connect()
    dns = []
    for i in range(users):
        sam = f"en{uuid.uuid4().hex[:10]}"
        dn = build_dn(f"Entra User {i:02d} {sam}", ou)
        create(conn, "user", dn, {
            "sAMAccountName": [sam], "userPrincipalName": [f"{sam}@src.test"],
            "givenName": ["Entra"], "sn": [f"User {i:02d}"], "mail": [f"{sam}@src.test"],
            "displayName": [f"Entra User {i:02d}"], "title": ["Engineer"], "l": ["Oslo"],
            "employeeID": [f"E{i:04d}"]}, enabled=True, password="Src-Passw0rd-1!")
        dns.append(dn)
    group = build_dn(f"Entra Group {uuid.uuid4().hex[:6]}", ou)
    create(conn, "group", group, {"description": ["Synced to Entra"]})
    add_members(conn, group, dns)
    team = build_dn(f"Team {uuid.uuid4().hex[:6]}", ou)  # becomes a Microsoft 365 group
    create(conn, "group", team, {})
    add_members(conn, team, dns[:2])
    conn.unbind()
    return dns


def manifests(folder: Path, lab: Any, src_ou: str, tenant: Any, threshold: int = 10) -> None:
    target = copy_example("ad-to-entra", folder)
    envs = (target / "environments.yaml").read_text()
    ad, _ = envs.split("---\n")
    ad = ad.replace("host: 127.0.0.2", f"host: {lab.src.ip}").replace(
        "OU=Corp,DC=src,DC=test", src_ou)
    (target / "environments.yaml").write_text(ad + "---\n" + tenant.environment("fabrikam"))
    template = (target / "template.yaml").read_text().replace("fabrikam.example",
                                                              tenant.domain)
    (target / "template.yaml").write_text(template.replace("  domainMappings:", """\
    - target: groupTypes
      expression: "source.cn.startsWith('Team') ? 'Unified' : null"
      apply: OnCreate
      objectTypes: [groups]
  domainMappings:"""))
    workflow = (target / "workflow.yaml").read_text()
    (target / "workflow.yaml").write_text(workflow.replace("threshold: 10",
                                                           f"threshold: {threshold}"))


def test_ad_users_and_groups_reach_entra_and_stay_in_step(
        lab: Any, src_ou: str, entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    dns = seed(lab, src_ou, users=6)
    tenant = new_tenant(entra_emulator, tmp_path)
    manifests(tmp_path, lab, src_ou, tenant, threshold=2)
    secrets = lab.root / "secrets"

    first = ferry(tmp_path, "run", secrets_dir=secrets)
    assert first.returncode == 0, first.stdout + first.stderr
    users = by_upn(entra_emulator.admin.users(tenant.tenant_id))
    assert len(users) == 6
    some = next(u for u in users.values() if u["displayName"] == "Entra User 03")
    upn = some["userPrincipalName"]
    assert upn.endswith(f"@{tenant.domain}") and some["mail"].endswith(f"@{tenant.domain}")
    assert (some["surname"], some["jobTitle"], some["city"], some["employeeId"]) == \
        ("User 03", "Engineer", "Oslo", "E0003")
    assert some["mailNickname"] == upn.split("@")[0] and some["usageLocation"] == "US"
    assert some["accountEnabled"] is True
    assert some["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    groups = {g["displayName"].split()[0]: g for g in entra_emulator.admin.groups(
        tenant.tenant_id)}
    group, team = groups["Entra"], groups["Team"]
    assert group["securityEnabled"] is True and group["description"] == "Synced to Entra"
    assert group["groupTypes"] == [] and group["mailEnabled"] is False
    assert sorted(group["members"]) == sorted(u["id"] for u in users.values())
    assert team["groupTypes"] == ["Unified"] and team["mailEnabled"] is True
    assert team["securityEnabled"] is False and len(team["members"]) == 2
    assert totals(tmp_path)[0] == {"created": 8, "updated": 0, "deleted": 0, "errors": 0}

    again = ferry(tmp_path, "run", secrets_dir=secrets)
    assert again.returncode == 0, again.stdout + again.stderr
    assert totals(tmp_path)[0] == {"created": 0, "updated": 0, "deleted": 0, "errors": 0}

    # One AD change: a changed-objects-only run sends exactly one Graph write.
    conn = lab.src.connect()
    update(conn, dns[3], {"title": ["Lead Engineer"]})
    before = len(entra_emulator.admin.writes(tenant.tenant_id))
    delta = ferry(tmp_path, "run", secrets_dir=secrets)
    assert delta.returncode == 0, delta.stdout + delta.stderr
    writes = entra_emulator.admin.writes(tenant.tenant_id)[before:]
    assert [(w["method"], w["path"]) for w in writes] == [("PATCH", f"/users/{some['id']}")]
    assert by_upn(entra_emulator.admin.users(tenant.tenant_id))[upn.lower()]["jobTitle"] \
        == "Lead Engineer"
    assert totals(tmp_path)[0] == {"created": 0, "updated": 1, "deleted": 0, "errors": 0}

    # Someone edits the tenant's copy: the next changed run finds it by the tenant's own
    # delta, reads its AD source by anchor and puts it back, without reading the tenant whole.
    entra_emulator.admin.update_object(tenant.tenant_id, some["id"], {"jobTitle": "Intern"})
    fixed = ferry(tmp_path, "run", "--out", str(tmp_path / "fixed.json"), secrets_dir=secrets)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    reads = {r["role"]: r for r in json.loads((tmp_path / "fixed.json").read_text())["reads"]}
    assert not reads["target"]["full"] and reads["target"]["deltaObjects"] >= 1, reads
    assert by_upn(entra_emulator.admin.users(tenant.tenant_id))[upn.lower()]["jobTitle"] \
        == "Lead Engineer"
    assert totals(tmp_path)[0] == {"created": 0, "updated": 1, "deleted": 0, "errors": 0}

    # Three users leave AD; the pair allows two deletions a run: none are made.
    for dn in dns[:3]:
        delete(conn, dn)
    conn.unbind()
    held = ferry(tmp_path, "run", secrets_dir=secrets)
    assert "threshold" in (held.stdout + held.stderr).lower()
    assert len(entra_emulator.admin.users(tenant.tenant_id)) == 6
    assert entra_emulator.admin.deleted_items(tenant.tenant_id) == []
