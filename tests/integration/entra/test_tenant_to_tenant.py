"""Tenant to tenant with B2B guests: unmatched users become guests without an invitation,
existing guests are matched through the guest rule, memberships follow, and a conversion run
turns the guests into members that keep their object ids. Also the source tenant's delta."""

from __future__ import annotations

from pathlib import Path

from tests.integration.entra.tenants import (
    Tenant,
    copy_example,
    ferry,
    new_tenant,
    totals,
)
from tests.support.graph_emulator.fixture import GraphEmulator

NAMES = ("ann", "bob", "cy", "dee")


def manifests(folder: Path, contoso: Tenant, fabrikam: Tenant) -> Path:
    target = copy_example("tenant-to-tenant", folder)
    (target / "environments.yaml").write_text(
        contoso.environment("contoso") + "---\n" + fabrikam.environment("fabrikam"))
    template = (target / "template.yaml").read_text()
    template = template.replace("contoso.example", contoso.domain).replace(
        "fabrikam.example", fabrikam.domain)
    (target / "template.yaml").write_text(template)
    return target


def seed(emulator: GraphEmulator, contoso: Tenant, fabrikam: Tenant) -> dict[str, str]:
    """Contoso's people and one group of them; Bob is already Fabrikam's guest."""
    users = [{"userPrincipalName": f"{n}@{contoso.domain}", "mail": f"{n}@{contoso.domain}",
              "displayName": n.title(), "givenName": n.title(), "surname": "Contoso",
              "jobTitle": "Analyst", "mailNickname": n, "accountEnabled": True}
             for n in NAMES]
    ids = emulator.admin.seed(contoso.tenant_id, users=users, groups=[
        {"displayName": "Project Falcon", "mailNickname": "falcon", "securityEnabled": True,
         "mailEnabled": False, "members": [u["userPrincipalName"] for u in users]}])
    bob_guest = emulator.admin.seed(fabrikam.tenant_id, users=[{
        "userPrincipalName": f"bob_{contoso.domain}#EXT#@{fabrikam.initial_domain}",
        "mail": f"bob@{contoso.domain}", "displayName": "Bob (guest)", "userType": "Guest",
        "mailNickname": "bob_guest", "accountEnabled": True}])["users"][0]
    return {"bob_guest": bob_guest, "source_group": ids["groups"][0]}


def test_guests_first_then_members_with_the_same_ids(entra_emulator: GraphEmulator,
                                                     tmp_path: Path) -> None:
    contoso = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All", "Group.Read.All",
                                                          "GroupMember.Read.All"))
    fabrikam = new_tenant(entra_emulator, tmp_path)
    known = seed(entra_emulator, contoso, fabrikam)
    folder = manifests(tmp_path, contoso, fabrikam)

    first = ferry(tmp_path, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    guests = {u["mail"].split("@")[0]: u for u in entra_emulator.admin.users(fabrikam.tenant_id)}
    assert sorted(guests) == sorted(NAMES)  # Bob matched, not duplicated
    assert guests["bob"]["id"] == known["bob_guest"]
    for name, guest in guests.items():
        assert guest["userType"] == "Guest"
        assert guest["userPrincipalName"].lower() == \
            f"{name}_{contoso.domain}#ext#@{fabrikam.initial_domain}"
        assert guest["mail"] == f"{name}@{contoso.domain}"
    assert guests["ann"]["displayName"] == "Ann" and guests["ann"]["jobTitle"] == "Analyst"
    assert guests["ann"]["showInAddressList"] is True
    assert entra_emulator.admin.counters(fabrikam.tenant_id)["invitationsSent"] == 0
    [group] = entra_emulator.admin.groups(fabrikam.tenant_id)
    assert group["displayName"] == "Project Falcon"
    assert sorted(group["members"]) == sorted(g["id"] for g in guests.values())
    assert totals(tmp_path)[0] == {"created": 4, "updated": 1, "deleted": 0, "errors": 0}

    again = ferry(tmp_path, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert totals(tmp_path)[0] == {"created": 0, "updated": 0, "deleted": 0, "errors": 0}

    # Invitations go out when an admin says so, to the guests a selector picks.
    selector = f"source.mail == 'ann@{contoso.domain}'"
    preview = ferry(tmp_path, "guests", "invite", "-e", "fabrikam", "--where", selector,
                    "--dry-run")
    assert preview.returncode == 0, preview.stdout + preview.stderr
    assert f"would invite ann@{contoso.domain}" in preview.stdout
    assert "1 guest(s) would invite" in preview.stdout
    assert entra_emulator.admin.counters(fabrikam.tenant_id)["invitationsSent"] == 0
    sent = ferry(tmp_path, "guests", "invite", "-e", "fabrikam", "--where", selector)
    assert sent.returncode == 0 and "1 guest(s) invited" in sent.stdout, sent.stdout
    assert entra_emulator.admin.counters(fabrikam.tenant_id)["invitationsSent"] == 1
    everyone = ferry(tmp_path, "guests", "invite", "-e", "fabrikam", "--dry-run")
    assert "4 guest(s) would invite" in everyone.stdout, everyone.stdout
    bad = ferry(tmp_path, "guests", "invite", "-e", "fabrikam", "--where", "source.mail ==")
    assert bad.returncode == 2 and "--where" in bad.stderr, bad.stdout + bad.stderr

    # Migration: the template now converts guests; ids, groups and access stay.
    template = folder / "template.yaml"
    template.write_text(template.read_text().replace("convertToMembers: false",
                                                     "convertToMembers: true"))
    converted = ferry(tmp_path, "run")
    assert converted.returncode == 0, converted.stdout + converted.stderr
    members = {u["id"]: u for u in entra_emulator.admin.users(fabrikam.tenant_id)}
    assert sorted(members) == sorted(g["id"] for g in guests.values())
    for name, guest in guests.items():
        member = members[guest["id"]]
        assert member["userType"] == "Member"
        assert member["userPrincipalName"] == f"{name}@{fabrikam.domain}"
    [group] = entra_emulator.admin.groups(fabrikam.tenant_id)
    assert sorted(group["members"]) == sorted(members)
    assert totals(tmp_path)[0]["updated"] == 4


def test_a_source_delta_is_read_from_the_stored_delta_link(entra_emulator: GraphEmulator,
                                                           tmp_path: Path) -> None:
    contoso = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All", "Group.Read.All",
                                                          "GroupMember.Read.All"))
    fabrikam = new_tenant(entra_emulator, tmp_path)
    seed(entra_emulator, contoso, fabrikam)
    folder = manifests(tmp_path, contoso, fabrikam)
    workflow = folder / "workflow.yaml"
    workflow.write_text(workflow.read_text().replace(
        "  schedule:\n", "  changedObjectsOnly: true\n  schedule:\n"))
    assert ferry(tmp_path, "run").returncode == 0

    ann = next(u for u in entra_emulator.admin.users(contoso.tenant_id)
               if u["mailNickname"] == "ann")
    entra_emulator.admin.update_object(contoso.tenant_id, ann["id"], {"jobTitle": "Director"})
    changed = ferry(tmp_path, "run")
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert '"full": false' in changed.stdout + changed.stderr  # the deltaLink was used
    guest = next(u for u in entra_emulator.admin.users(fabrikam.tenant_id)
                 if u["mail"] == f"ann@{contoso.domain}")
    assert guest["jobTitle"] == "Director"
    assert totals(tmp_path)[0] == {"created": 0, "updated": 1, "deleted": 0, "errors": 0}

    # An expired deltaLink: a full read instead, and still nothing twice.
    entra_emulator.admin.expire_delta_tokens(contoso.tenant_id)
    entra_emulator.admin.update_object(contoso.tenant_id, ann["id"], {"jobTitle": "VP"})
    expired = ferry(tmp_path, "run")
    assert expired.returncode == 0, expired.stdout + expired.stderr
    assert "entra.delta_expired" in expired.stdout + expired.stderr
    users = entra_emulator.admin.users(fabrikam.tenant_id)
    assert len(users) == len(NAMES)
    assert next(u for u in users if u["id"] == guest["id"])["jobTitle"] == "VP"
    assert totals(tmp_path)[0] == {"created": 0, "updated": 1, "deleted": 0, "errors": 0}
