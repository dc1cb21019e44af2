"""Groups through msgraph-sdk: security and Microsoft 365 groups, membership by
`members@odata.bind` and `$ref`, paged and transitive members, deletion semantics."""

from __future__ import annotations

import httpx
import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.groups.item.members.graph_user.graph_user_request_builder import (
    GraphUserRequestBuilder,
)
from msgraph.generated.groups.item.members.members_request_builder import MembersRequestBuilder
from msgraph.generated.groups.item.transitive_members.transitive_members_request_builder import (
    TransitiveMembersRequestBuilder,
)
from msgraph.generated.models.group import Group
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.reference_create import ReferenceCreate
from tests.integration.graph.helpers import TenantApp, bearer, graph, run

OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"  # what Microsoft's samples bind


def _security(name: str, **extra: object) -> Group:
    return Group(display_name=name, mail_enabled=False, mail_nickname=name,
                 security_enabled=True, **extra)  # type: ignore[arg-type]


def _seed_users(setup: TenantApp, count: int) -> list[str]:
    return setup.admin.seed(setup.tenant_id, users=[
        {"userPrincipalName": f"m{i:03}@{setup.domain}"} for i in range(count)])["users"]


def test_create_groups_and_bind_members(tenant_app: TenantApp) -> None:
    user_ids = _seed_users(tenant_app, 25)

    async def scenario(client: GraphServiceClient) -> tuple[Group, Group, ODataError]:
        security = await client.groups.post(_security(
            "Sales", additional_data={"members@odata.bind": [OBJECTS + i for i in user_ids[:3]]}))
        unified = await client.groups.post(Group(
            display_name="Project X", mail_enabled=True, mail_nickname="projectx",
            security_enabled=False, group_types=["Unified"]))
        assert security is not None and security.id and unified is not None and unified.id
        await client.groups.by_group_id(security.id).patch(Group(
            description="all of sales",
            additional_data={"members@odata.bind": [OBJECTS + i for i in user_ids[3:23]]}))
        with pytest.raises(ODataError) as too_many:  # 21 references in one request
            await client.groups.by_group_id(unified.id).patch(Group(
                additional_data={"members@odata.bind": [OBJECTS + i for i in user_ids[:21]]}))
        return security, unified, too_many.value

    async def with_client() -> tuple[Group, Group, ODataError]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    security, unified, too_many = run(with_client())
    assert unified.mail == f"projectx@{tenant_app.initial_domain}"
    assert unified.group_types == ["Unified"]
    assert security.mail is None and security.security_enabled is True
    assert too_many.response_status_code == 400
    stored = {g["id"]: g for g in tenant_app.admin.groups(tenant_app.tenant_id)}
    assert stored[security.id or ""]["members"] == user_ids[:23]
    assert stored[security.id or ""]["description"] == "all of sales"
    assert stored[unified.id or ""]["members"] == []


def test_member_refs_paging_and_transitive(tenant_app: TenantApp) -> None:
    user_ids = _seed_users(tenant_app, 130)
    seeded = tenant_app.admin.seed(tenant_app.tenant_id, groups=[
        {"displayName": "Inner", "members": user_ids[120:]},
        {"displayName": "Outer", "members": user_ids[:120]},
    ])
    inner, outer = seeded["groups"]

    async def scenario(client: GraphServiceClient) -> dict[str, object]:
        members = client.groups.by_group_id(outer).members
        await members.ref.post(ReferenceCreate(odata_id=OBJECTS + inner))
        with pytest.raises(ODataError) as duplicate:
            await members.ref.post(ReferenceCreate(odata_id=OBJECTS + inner))
        await members.by_directory_object_id(user_ids[0]).ref.delete()
        with pytest.raises(ODataError) as not_member:
            await members.by_directory_object_id(user_ids[0]).ref.delete()
        query = MembersRequestBuilder.MembersRequestBuilderGetQueryParameters(
            select=["id", "displayName"], top=50)
        page = await members.get(RequestConfiguration(query_parameters=query))
        direct: list[tuple[str, str]] = []
        while page is not None:
            assert page.value is not None
            direct += [(type(m).__name__, m.id or "") for m in page.value]
            page = (await members.with_url(page.odata_next_link).get()
                    if page.odata_next_link else None)
        transitive = await client.groups.by_group_id(outer).transitive_members.get(
            RequestConfiguration(query_parameters=TransitiveMembersRequestBuilder
                                 .TransitiveMembersRequestBuilderGetQueryParameters(top=999)))
        users_only = await members.graph_user.get(RequestConfiguration(
            query_parameters=GraphUserRequestBuilder.GraphUserRequestBuilderGetQueryParameters(
                top=999)))
        assert transitive is not None and transitive.value is not None
        assert users_only is not None and users_only.value is not None
        return {"duplicate": duplicate.value, "not_member": not_member.value, "direct": direct,
                "transitive": {m.id for m in transitive.value},
                "users_only": {m.id for m in users_only.value}}

    async def with_client() -> dict[str, object]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    result = run(with_client())
    duplicate = result["duplicate"]
    assert isinstance(duplicate, ODataError) and duplicate.error is not None
    assert duplicate.error.message == ("One or more added object references already exist for "
                                       "the following modified properties: 'members'.")
    not_member = result["not_member"]
    assert isinstance(not_member, ODataError) and not_member.response_status_code == 404
    assert result["direct"] == [("User", i) for i in user_ids[1:120]] + [("Group", inner)]
    assert result["transitive"] == set(user_ids[1:]) | {inner}
    assert result["users_only"] == set(user_ids[1:120])


def test_delete_security_group_is_final_and_unified_is_restorable(tenant_app: TenantApp
                                                                   ) -> None:
    seeded = tenant_app.admin.seed(tenant_app.tenant_id, groups=[
        {"displayName": "Sec"}, {"displayName": "M365", "groupTypes": ["Unified"]}])
    security, unified = seeded["groups"]

    async def scenario(client: GraphServiceClient) -> tuple[list[str], str | None]:
        await client.groups.by_group_id(security).delete()
        await client.groups.by_group_id(unified).delete()
        deleted = await client.directory.deleted_items.graph_group.get()
        assert deleted is not None and deleted.value is not None
        restored = await client.directory.deleted_items.by_directory_object_id(
            unified).restore.post()
        return [g.id or "" for g in deleted.value], restored.id if restored else None

    async def with_client() -> tuple[list[str], str | None]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    deleted, restored = run(with_client())
    assert deleted == [unified]
    assert restored == unified
    assert {g["id"] for g in tenant_app.admin.groups(tenant_app.tenant_id)} == {unified}


def test_group_writes_need_group_permissions(tenant_app: TenantApp) -> None:
    member_writer = tenant_app.add_app(["GroupMember.ReadWrite.All"], secret="gm")
    user_id = _seed_users(tenant_app, 1)[0]
    group_id = tenant_app.admin.seed(tenant_app.tenant_id,
                                     groups=[{"displayName": "G"}])["groups"][0]

    async def scenario() -> ODataError:
        async with graph(tenant_app, client_id=member_writer, secret="gm") as client:
            await client.groups.by_group_id(group_id).members.ref.post(
                ReferenceCreate(odata_id=OBJECTS + user_id))  # allowed
            with pytest.raises(ODataError) as denied:
                await client.groups.by_group_id(group_id).patch(Group(description="x"))
            return denied.value

    denied = run(scenario())
    assert denied.response_status_code == 403
    assert tenant_app.admin.groups(tenant_app.tenant_id)[0]["members"] == [user_id]


def test_contacts_devices_and_units_are_read_only(tenant_app: TenantApp) -> None:
    user_id = _seed_users(tenant_app, 1)[0]
    tenant_app.admin.seed(
        tenant_app.tenant_id,
        contacts=[{"displayName": "Ext Person", "mail": "ext@partner.example"}],
        devices=[{"displayName": "PC-1", "deviceId": "d-1", "operatingSystem": "Windows"}],
        administrative_units=[{"displayName": "Europe", "members": [user_id]}],
    )

    async def scenario(client: GraphServiceClient) -> dict[str, object]:
        contacts = await client.contacts.get()
        devices = await client.devices.get()
        units = await client.directory.administrative_units.get()
        assert contacts is not None and contacts.value is not None
        assert devices is not None and devices.value is not None
        assert units is not None and units.value is not None
        unit_members = await client.directory.administrative_units.by_administrative_unit_id(
            units.value[0].id or "").members.get()
        assert unit_members is not None and unit_members.value is not None
        return {"contact": contacts.value[0].mail, "device": devices.value[0].display_name,
                "unit_members": [m.id for m in unit_members.value]}

    async def with_client() -> dict[str, object]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    assert run(with_client()) == {"contact": "ext@partner.example", "device": "PC-1",
                                  "unit_members": [user_id]}
    with httpx.Client(verify=str(tenant_app.emulator.ca_file)) as http:
        refused = http.post(f"{tenant_app.emulator.graph_url}/contacts",
                            json={"displayName": "nope"}, headers=bearer(tenant_app))
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "Request_BadRequest"
