"""Delta queries through msgraph-sdk: a paged first round ending in a deltaLink, then only
the changes (with @removed for deletions and members@delta for groups), and expired tokens."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.groups.delta.delta_request_builder import (
    DeltaRequestBuilder as GroupsDeltaRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.reference_create import ReferenceCreate
from msgraph.generated.models.user import User
from msgraph.generated.users.delta.delta_request_builder import DeltaRequestBuilder
from tests.integration.graph.helpers import TenantApp, graph, run

OBJECTS = "https://graph.microsoft.com/v1.0/directoryObjects/"


async def _user_round(client: GraphServiceClient, link: str | None
                      ) -> tuple[list[User], str, int]:
    """Every page of one users delta round: (objects, deltaLink, pages)."""
    if link is None:
        query = DeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            select=["id", "displayName", "userPrincipalName"], top=60)
        page = await client.users.delta.get(RequestConfiguration(query_parameters=query))
    else:
        page = await client.users.delta.with_url(link).get()
    objects: list[User] = []
    pages = 0
    while True:
        assert page is not None and page.value is not None
        pages += 1
        objects += page.value
        if page.odata_next_link:
            assert page.odata_delta_link is None
            page = await client.users.delta.with_url(page.odata_next_link).get()
            continue
        assert page.odata_delta_link and "$deltatoken=" in page.odata_delta_link
        return objects, page.odata_delta_link, pages


def _plain(value: Any) -> Any:
    """Additional data as JSON had it (kiota turns id strings into UUIDs)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return str(value) if isinstance(value, uuid.UUID) else value


def _removed(user: User) -> Any:
    return user.additional_data.get("@removed")


def test_users_delta_rounds(tenant_app: TenantApp) -> None:
    ids = tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"d{i:03}@{tenant_app.domain}"} for i in range(150)])["users"]

    async def scenario(client: GraphServiceClient) -> dict[str, Any]:
        first, link, pages = await _user_round(client, None)
        created = await client.users.post(User(
            account_enabled=True, display_name="New Hire", mail_nickname="newhire",
            user_principal_name=f"newhire@{tenant_app.domain}",
            password_profile=PasswordProfile(password="Str0ng!Passw0rd")))
        assert created is not None
        await client.users.by_user_id(ids[0]).patch(User(display_name="Renamed"))
        await client.users.by_user_id(ids[1]).delete()  # soft: reason "changed"
        tenant_app.admin.delete_object(tenant_app.tenant_id, ids[2], permanent=True)
        second, link2, _ = await _user_round(client, link)
        third, _, _ = await _user_round(client, link2)
        return {"first": first, "pages": pages, "second": second, "third": third,
                "created": created.id}

    async def with_client() -> dict[str, Any]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    result = run(with_client())
    assert result["pages"] == 3
    assert sorted(u.id for u in result["first"]) == sorted(ids)
    assert result["first"][0].user_principal_name is not None
    second = {u.id: u for u in result["second"]}
    assert set(second) == {result["created"], ids[0], ids[1], ids[2]}
    assert second[ids[0]].display_name == "Renamed" and _removed(second[ids[0]]) is None
    assert second[result["created"]].user_principal_name == f"newhire@{tenant_app.domain}"
    assert _removed(second[ids[1]]) == {"reason": "changed"}
    assert _removed(second[ids[2]]) == {"reason": "deleted"}
    assert result["third"] == []


def test_groups_delta_members(tenant_app: TenantApp) -> None:
    users = tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"g{i}@{tenant_app.domain}"} for i in range(3)])["users"]
    group = tenant_app.admin.seed(tenant_app.tenant_id, groups=[
        {"displayName": "Team", "members": users[:2]}])["groups"][0]

    async def scenario(client: GraphServiceClient) -> tuple[Any, Any]:
        query = GroupsDeltaRequestBuilder.DeltaRequestBuilderGetQueryParameters(
            select=["displayName", "members"])
        first = await client.groups.delta.get(RequestConfiguration(query_parameters=query))
        assert first is not None and first.value and first.odata_delta_link
        members = client.groups.by_group_id(group).members
        await members.ref.post(ReferenceCreate(odata_id=OBJECTS + users[2]))
        await members.by_directory_object_id(users[0]).ref.delete()
        second = await client.groups.delta.with_url(first.odata_delta_link).get()
        assert second is not None and second.value is not None
        return _plain(first.value[0].additional_data["members@delta"]), [
            (g.id, _plain(g.additional_data.get("members@delta"))) for g in second.value]

    async def with_client() -> tuple[Any, Any]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    initial, changed = run(with_client())
    assert initial == [{"@odata.type": "#microsoft.graph.user", "id": users[0]},
                       {"@odata.type": "#microsoft.graph.user", "id": users[1]}]
    assert changed == [(group, [
        {"@odata.type": "#microsoft.graph.user", "id": users[2]},
        {"@odata.type": "#microsoft.graph.user", "id": users[0],
         "@removed": {"reason": "deleted"}},
    ])]


@pytest.mark.parametrize("reset", [False, True])
def test_expired_delta_token(reset: bool, tenant_app: TenantApp) -> None:
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"x@{tenant_app.domain}"}])

    async def scenario(client: GraphServiceClient) -> ODataError:
        _, link, _ = await _user_round(client, None)
        tenant_app.admin.expire_delta_tokens(tenant_app.tenant_id, reset=reset)
        with pytest.raises(ODataError) as caught:
            await client.users.delta.with_url(link).get()
        return caught.value

    async def with_client() -> ODataError:
        async with graph(tenant_app) as client:
            return await scenario(client)

    error = run(with_client())
    assert error.error is not None
    if reset:
        assert (error.response_status_code, error.error.code) == (410, "resyncRequired")
        assert error.response_headers is not None
        location = error.response_headers.get("location")
        assert location and "/users/delta()" in str(location)
    else:
        assert (error.response_status_code, error.error.code) == (400, "syncStateNotFound")


def test_delta_latest_starts_from_now(tenant_app: TenantApp) -> None:
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"old@{tenant_app.domain}"}])

    async def scenario(client: GraphServiceClient) -> tuple[int, list[str]]:
        base = tenant_app.emulator.graph_url
        latest = await client.users.delta.with_url(
            f"{base}/users/delta()?$deltatoken=latest").get()
        assert latest is not None and latest.value is not None and latest.odata_delta_link
        tenant_app.admin.seed(tenant_app.tenant_id, users=[
            {"userPrincipalName": f"new@{tenant_app.domain}"}])
        changes, _, _ = await _user_round(client, latest.odata_delta_link)
        return len(latest.value), [u.user_principal_name or "" for u in changes]

    async def with_client() -> tuple[int, list[str]]:
        async with graph(tenant_app) as client:
            return await scenario(client)

    assert run(with_client()) == (0, [f"new@{tenant_app.domain}"])
