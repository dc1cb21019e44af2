"""Deletes are soft: when a source object Ferry deleted the target of comes back, the target
comes back from the recycle bin with its old id, memberships and all, instead of a new one."""

from __future__ import annotations

from pathlib import Path

import httpx
from azure.identity import ClientSecretCredential
from tests.integration.entra.tenants import Tenant, ferry, member_sync, new_tenant, totals
from tests.support.graph_emulator.fixture import GraphEmulator

ROLES = ("User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All")


def restore_in_source(emulator: GraphEmulator, tenant: Tenant, object_id: str) -> None:
    """What an admin does in the portal: restore a deleted user (through Graph)."""
    credential = ClientSecretCredential(
        tenant.tenant_id, tenant.client_id, tenant.secret_file.read_text(),
        authority=emulator.authority_host, connection_verify=str(emulator.ca_file),
        disable_instance_discovery=True)
    token = credential.get_token("https://graph.microsoft.com/.default").token
    with httpx.Client(verify=str(emulator.ca_file)) as http:
        answer = http.post(f"{emulator.graph_url}/directory/deletedItems/{object_id}/restore",
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text


def test_a_returning_source_user_gets_its_deleted_target_back(entra_emulator: GraphEmulator,
                                                              tmp_path: Path) -> None:
    source = new_tenant(entra_emulator, tmp_path, roles=ROLES)
    target = new_tenant(entra_emulator, tmp_path, roles=ROLES)
    names = ("ann", "bob", "cy")
    ids = entra_emulator.admin.seed(source.tenant_id, users=[{
        "userPrincipalName": f"{n}@{source.domain}", "mail": f"{n}@{source.domain}",
        "displayName": n.title(), "mailNickname": n, "accountEnabled": True} for n in names])
    member_sync(tmp_path, source, target, delete_threshold=5)
    assert ferry(tmp_path, "run").returncode == 0
    cy_target = next(u for u in entra_emulator.admin.users(target.tenant_id)
                     if u["mailNickname"] == "cy")

    cy_source = ids["users"][2]
    entra_emulator.admin.delete_object(source.tenant_id, cy_source)
    deleted = ferry(tmp_path, "run")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert [d["id"] for d in entra_emulator.admin.deleted_items(target.tenant_id)] == \
        [cy_target["id"]]
    assert totals(tmp_path)[0]["deleted"] == 1

    restore_in_source(entra_emulator, source, cy_source)
    back = ferry(tmp_path, "run")
    assert back.returncode == 0, back.stdout + back.stderr
    users = entra_emulator.admin.users(target.tenant_id)
    assert sorted(u["mailNickname"] for u in users) == sorted(names)
    assert next(u for u in users if u["mailNickname"] == "cy")["id"] == cy_target["id"]
    assert entra_emulator.admin.deleted_items(target.tenant_id) == []
    again = ferry(tmp_path, "run")
    assert totals(tmp_path)[0] == {"created": 0, "updated": 0, "deleted": 0, "errors": 0}, \
        again.stdout
