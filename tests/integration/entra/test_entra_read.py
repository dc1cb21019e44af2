"""Reading a tenant: every object type, only what the scope lets in (groups, administrative
units, a user filter), and group members complete."""

from __future__ import annotations

from pathlib import Path

from tests.integration.entra.tenants import new_tenant
from tests.support.graph_emulator.fixture import GraphEmulator

from ferry.api.loader import load_manifests
from ferry.connectors.factory import open_connector
from ferry.engine.records import ObjectType
from ferry.secrets import SecretResolver
from ferry.settings import RunSettings

READER = ("User.Read.All", "Group.Read.All", "OrgContact.Read.All", "Device.Read.All",
          "AdministrativeUnit.Read.All")


def read(tmp_path: Path, document: str, types: list[ObjectType]) -> dict[str, set[str]]:
    """Display names per object type that the environment in `document` reads (a group's
    with its member count: `Name/3`)."""
    path = tmp_path / "env.yaml"
    path.write_text(document)
    env = load_manifests([path]).environments["cloud"]
    connector = open_connector(env, SecretResolver.from_environment(None, tmp_path),
                               RunSettings())
    try:
        result = connector.read(types, ["jobTitle", "department"])
    finally:
        connector.close()
    found: dict[str, set[str]] = {}
    for record in result.records:
        name = str(record.attributes.get("displayName"))
        if record.object_type is ObjectType.GROUP:
            name += f"/{len(record.references['member'])}"
        found.setdefault(record.object_type.value, set()).add(name)
    return found


def test_every_type_and_each_scope(entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    tenant = new_tenant(entra_emulator, tmp_path, roles=READER)
    users = [{"userPrincipalName": f"{n}@{tenant.domain}", "displayName": n.title(),
              "department": dept} for n, dept in
             (("ann", "Sales"), ("bob", "Sales"), ("cy", "IT"), ("dee", "IT"))]
    ids = entra_emulator.admin.seed(
        tenant.tenant_id, users=users,
        contacts=[{"displayName": "Partner Pat", "mail": "pat@partner.test"}],
        devices=[{"displayName": "WS-0001", "deviceId": "d-1"}],
        groups=[{"displayName": "Migrating", "members": [f"ann@{tenant.domain}",
                                                        f"cy@{tenant.domain}"]},
                {"displayName": "Everyone", "members": [u["userPrincipalName"]
                                                       for u in users]}],
        administrative_units=[{"displayName": "Oslo",
                               "members": [f"bob@{tenant.domain}", f"dee@{tenant.domain}"]}])
    migrating, unit = ids["groups"][0], ids["administrativeUnits"][0]
    everything = [ObjectType.USER, ObjectType.GROUP, ObjectType.CONTACT, ObjectType.DEVICE]
    types = "[users, groups, contacts, devices]"

    found = read(tmp_path, tenant.environment("cloud", object_types=types), everything)
    assert found == {"user": {"Ann", "Bob", "Cy", "Dee"}, "group": {"Migrating/2", "Everyone/4"},
                     "contact": {"Partner Pat"}, "device": {"WS-0001"}}

    by_group = tenant.environment("cloud", object_types="[users]").replace(
        "    objectTypes: [users]\n", f"    objectTypes: [users]\n    groups: [{migrating}]\n")
    assert read(tmp_path, by_group, [ObjectType.USER]) == {"user": {"Ann", "Cy"}}

    by_unit = tenant.environment("cloud", object_types="[users]").replace(
        "    objectTypes: [users]\n",
        f"    objectTypes: [users]\n    administrativeUnits: [{unit}]\n")
    assert read(tmp_path, by_unit, [ObjectType.USER]) == {"user": {"Bob", "Dee"}}

    by_filter = tenant.environment("cloud", object_types="[users]").replace(
        "    objectTypes: [users]\n",
        "    objectTypes: [users]\n    userFilter: \"department eq 'IT'\"\n")
    assert read(tmp_path, by_filter, [ObjectType.USER]) == {"user": {"Cy", "Dee"}}
