"""Users through msgraph-sdk: paging with $select, filters, create/update/delete/restore, and
the documented errors."""

from __future__ import annotations

import json

import httpx
import pytest
from azure.identity import ClientSecretCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph import GraphServiceClient
from msgraph.generated.directory.deleted_items.graph_user.graph_user_request_builder import (
    GraphUserRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.password_profile import PasswordProfile
from msgraph.generated.models.user import User
from msgraph.generated.users.item.user_item_request_builder import UserItemRequestBuilder
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from msgraph_core.tasks.page_iterator import PageIterator
from tests.integration.graph.helpers import TenantApp, graph, run
from tests.support.graph_emulator.sdk import GRAPH_SCOPE, credential_options

Query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters
ItemQuery = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters


def _config(**query: object) -> RequestConfiguration[Query]:
    return RequestConfiguration(query_parameters=Query(**query))  # type: ignore[arg-type]


def _new_user(setup: TenantApp, name: str, **extra: object) -> User:
    return User(
        account_enabled=True, display_name=name.title(), mail_nickname=name,
        user_principal_name=f"{name}@{setup.domain}",
        password_profile=PasswordProfile(password="Str0ng!Passw0rd",
                                         force_change_password_next_sign_in=True),
        **extra,  # type: ignore[arg-type]
    )


def test_list_pages_with_next_link_and_page_iterator(tenant_app: TenantApp) -> None:
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"u{i:03}@{tenant_app.domain}", "department": "Sales"}
        for i in range(250)])

    async def scenario() -> tuple[list[str], list[str], dict[str, object]]:
        async with graph(tenant_app) as client:
            config = _config(select=["id", "userPrincipalName", "department"], top=100)
            page = await client.users.get(config)
            assert page is not None and page.value is not None
            first = page.value[0]
            followed = [u.user_principal_name or "" for u in page.value]
            while page.odata_next_link:  # with_url: the way to follow a nextLink by hand
                assert "$skiptoken=" in page.odata_next_link
                page = await client.users.with_url(page.odata_next_link).get()
                assert page is not None and page.value is not None
                followed += [u.user_principal_name or "" for u in page.value]
            iterated: list[str] = []
            start = await client.users.get(_config(select=["userPrincipalName"], top=60))

            def collect(user: User) -> bool:
                iterated.append(user.user_principal_name or "")
                return True

            iterator = PageIterator(start, client.request_adapter)
            await iterator.iterate(collect)
            return followed, iterated, {"department": first.department,
                                        "displayName": first.display_name}

    followed, iterated, first = run(scenario())
    expected = sorted(f"u{i:03}@{tenant_app.domain}" for i in range(250))
    assert sorted(followed) == expected and len(followed) == 250
    assert sorted(iterated) == expected
    assert first == {"department": "Sales", "displayName": None}  # only what $select asked for


def test_raw_json_pages_through_the_request_adapter(tenant_app: TenantApp) -> None:
    """Bulk reads without msgraph's models: the same adapter (auth, retries), bytes out.
    (Parsing into User models costs milliseconds per object; raw JSON doesn't.)"""
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"r{i:03}@{tenant_app.domain}"} for i in range(250)])

    async def scenario() -> list[str]:
        async with graph(tenant_app) as client:
            info = client.users.to_get_request_information(
                _config(select=["id", "userPrincipalName"], top=100))
            seen: list[str] = []
            while True:
                # The abstract adapter's annotation says None; the httpx adapter returns bytes.
                raw = await client.request_adapter.send_primitive_async(  # type: ignore[func-returns-value]
                    info, "bytes", {"XXX": ODataError})
                assert isinstance(raw, bytes)
                page = json.loads(raw)
                seen += [user["userPrincipalName"] for user in page["value"]]
                if "@odata.nextLink" not in page:
                    return seen
                info = client.users.with_url(page["@odata.nextLink"]).to_get_request_information()

    assert sorted(run(scenario())) == [f"r{i:03}@{tenant_app.domain}" for i in range(250)]


def test_filters(tenant_app: TenantApp) -> None:
    domain = tenant_app.domain
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"ann@{domain}", "mail": f"Ann@{domain}", "employeeId": "7",
         "proxyAddresses": [f"SMTP:ann@{domain}", f"smtp:ann.old@{domain}"]},
        {"userPrincipalName": f"andy@{domain}", "mail": f"andy@{domain}", "employeeId": "8"},
        {"userPrincipalName": f"bob@{domain}", "accountEnabled": False},
    ])

    async def upns(expression: str) -> list[str]:
        async with graph(tenant_app) as client:
            page = await client.users.get(_config(filter=expression, select=["userPrincipalName"]))
            assert page is not None and page.value is not None
            return sorted(u.user_principal_name or "" for u in page.value)

    assert run(upns(f"mail eq 'ann@{domain}'")) == [f"ann@{domain}"]  # case-insensitive
    assert run(upns("startswith(userPrincipalName,'an')")) == [f"andy@{domain}", f"ann@{domain}"]
    assert run(upns("employeeId eq '8' or accountEnabled eq false")) == [
        f"andy@{domain}", f"bob@{domain}"]
    assert run(upns(f"proxyAddresses/any(p:p eq 'smtp:ann.old@{domain}')")) == [f"ann@{domain}"]
    assert run(upns("employeeId in ('7', '9')")) == [f"ann@{domain}"]
    with pytest.raises(ODataError) as caught:
        run(upns("nosuchProperty eq 'x'"))
    assert caught.value.error is not None
    assert caught.value.error.code == "Request_UnsupportedQuery"


def test_create_patch_delete_restore(tenant_app: TenantApp) -> None:
    async def scenario(client: GraphServiceClient) -> str:
        created = await client.users.post(_new_user(tenant_app, "carol", user_type="Guest"))
        assert created is not None and created.id
        assert created.user_principal_name == f"carol@{tenant_app.domain}"
        await client.users.by_user_id(created.id).patch(
            User(display_name="Carol C.", user_type="Member", department="IT"))
        by_upn = await client.users.by_user_id(f"carol@{tenant_app.domain}").get(
            RequestConfiguration(query_parameters=ItemQuery(
                select=["id", "displayName", "userType", "department"])))
        assert by_upn is not None
        assert (by_upn.id, by_upn.display_name, by_upn.user_type, by_upn.department) == (
            created.id, "Carol C.", "Member", "IT")  # Guest -> Member keeps the id
        await client.users.by_user_id(created.id).delete()
        deleted = await client.directory.deleted_items.graph_user.get(
            RequestConfiguration(query_parameters=GraphUserRequestBuilder
                                 .GraphUserRequestBuilderGetQueryParameters(
                                     select=["id", "userPrincipalName", "deletedDateTime"])))
        assert deleted is not None and deleted.value is not None
        assert [u.id for u in deleted.value] == [created.id]
        assert deleted.value[0].deleted_date_time is not None
        with pytest.raises(ODataError) as gone:
            await client.users.by_user_id(created.id).get()
        assert gone.value.response_status_code == 404
        assert gone.value.error is not None
        assert gone.value.error.code == "Request_ResourceNotFound"
        restored = await client.directory.deleted_items.by_directory_object_id(
            created.id).restore.post()
        assert restored is not None and restored.id == created.id
        again = await client.users.by_user_id(created.id).get()
        assert again is not None and again.user_principal_name == f"carol@{tenant_app.domain}"
        return created.id

    async def with_client() -> str:
        async with graph(tenant_app) as client:
            return await scenario(client)

    user_id = run(with_client())
    stored = {u["id"]: u for u in tenant_app.admin.users(tenant_app.tenant_id)}
    assert stored[user_id]["passwordProfile"]["forceChangePasswordNextSignIn"] is True
    counters = tenant_app.admin.counters(tenant_app.tenant_id)
    assert counters["writesSucceeded"] == 4  # create, patch, delete, restore


@pytest.mark.parametrize(("case", "code", "message"), [
    ("duplicate-upn", "Request_BadRequest",
     "Another object with the same value for property userPrincipalName already exists."),
    ("unverified-domain", "Request_BadRequest",
     "The domain portion of the userPrincipalName property is invalid. You must use one of the "
     "verified domain names in your organization."),
    ("weak-password", "Request_BadRequest",
     "The specified password does not comply with password complexity requirements. Please "
     "provide a different password."),
    ("missing-nickname", "Request_BadRequest",
     "A value is required for property 'mailNickname' of resource 'User'."),
    ("duplicate-mail", "Request_BadRequest",
     "Another object with the same value for property proxyAddresses already exists."),
])
def test_create_errors(case: str, code: str, message: str, tenant_app: TenantApp) -> None:
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"dave@{tenant_app.domain}", "mail": f"dave@{tenant_app.domain}"}])
    user = _new_user(tenant_app, "dave")
    if case == "unverified-domain":
        user.user_principal_name = "dave@not-verified.example"
    elif case == "weak-password":
        user.user_principal_name = f"dave2@{tenant_app.domain}"
        user.password_profile = PasswordProfile(password="password")
    elif case == "missing-nickname":
        user = User(account_enabled=True, display_name="Dave",
                    user_principal_name=f"dave3@{tenant_app.domain}",
                    password_profile=PasswordProfile(password="Str0ng!Passw0rd"))
    elif case == "duplicate-mail":
        user.user_principal_name = f"dave4@{tenant_app.domain}"
        user.mail = f"DAVE@{tenant_app.domain}"

    async def scenario() -> None:
        async with graph(tenant_app) as client:
            await client.users.post(user)

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 400
    assert caught.value.error is not None
    assert (caught.value.error.code, caught.value.error.message) == (code, message)


def test_page_size_limit_and_unknown_segment(tenant_app: TenantApp) -> None:
    async def scenario() -> tuple[ODataError, ODataError]:
        async with graph(tenant_app) as client:
            with pytest.raises(ODataError) as too_big:
                await client.users.get(_config(top=1000))
            with pytest.raises(ODataError) as segment:
                await client.users.with_url(
                    f"{tenant_app.emulator.graph_url}/users/x/nonsense").get()
            return too_big.value, segment.value

    too_big, segment = run(scenario())
    assert too_big.error is not None and too_big.error.message == (
        "Invalid page size specified: '1000'. Must be between 1 and 999 inclusive.")
    assert segment.error is not None and segment.error.code == "BadRequest"


def test_collection_response_shape(tenant_app: TenantApp) -> None:
    """The JSON Graph documents: @odata.context, default properties, [] for empty
    collections, request-id headers."""
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"erin@{tenant_app.domain}", "department": "Ops"}])
    credential = ClientSecretCredential(
        tenant_app.tenant_id, tenant_app.client_id, tenant_app.secret,
        **credential_options(tenant_app.emulator.authority_host, tenant_app.emulator.ca_file))
    token = credential.get_token(GRAPH_SCOPE).token
    with httpx.Client(verify=str(tenant_app.emulator.ca_file)) as http:
        answer = http.get(f"{tenant_app.emulator.graph_url}/users",
                          headers={"Authorization": f"Bearer {token}",
                                   "client-request-id": "my-correlation"})
    body = answer.json()
    assert body["@odata.context"] == f"{tenant_app.emulator.graph_url}/$metadata#users"
    assert set(body["value"][0]) == {
        "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id"}
    assert body["value"][0]["businessPhones"] == []
    assert answer.headers["client-request-id"] == "my-correlation"
    assert answer.headers["request-id"]
