"""Sign-in against the emulator with the real azure-identity credentials (async, the AAD client;
sync, through MSAL with OpenID discovery), then a Graph call through msgraph-sdk."""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential as SyncCertificateCredential
from azure.identity import ClientSecretCredential as SyncClientSecretCredential
from azure.identity.aio import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    WorkloadIdentityCredential,
)
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.users.users_request_builder import UsersRequestBuilder
from tests.integration.graph.helpers import TenantApp, graph, new_tenant, run
from tests.support.graph_emulator.fixture import GraphEmulator
from tests.support.graph_emulator.keys import AppCertificate, FederatedIssuer
from tests.support.graph_emulator.sdk import (
    GRAPH_SCOPE,
    credential_options,
    graph_service_client,
)
from tests.support.polling import eventually

SUBJECT = "system:serviceaccount:ferry:sync-job"


@pytest.fixture
def material(tenant_app: TenantApp, tmp_path: Path) -> dict[str, Any]:
    """An app with a certificate and a federated credential, beside the secret app."""
    certificate = AppCertificate.create()
    issuer = FederatedIssuer.create()
    app = tenant_app.admin.register_app(
        tenant_app.tenant_id, certificates=[certificate.cert_pem], roles=["User.Read.All"],
        federated_credentials=[{"issuer": issuer.issuer, "subject": SUBJECT,
                                "publicKeys": [issuer.public_key_pem]}],
    )
    tenant_app.admin.seed(tenant_app.tenant_id, users=[
        {"userPrincipalName": f"user{i}@{tenant_app.domain}"} for i in range(3)])
    return {"client_id": app["clientId"], "certificate": certificate.write(tmp_path / "app.pem"),
            "issuer": issuer, "token_file": issuer.write_token(tmp_path / "token", SUBJECT)}


def _credential(kind: str, setup: TenantApp, material: dict[str, Any]
                ) -> TokenCredential | AsyncTokenCredential:
    options = credential_options(setup.emulator.authority_host, setup.emulator.ca_file)
    tenant, client_id = setup.tenant_id, material["client_id"]
    if kind == "secret":
        return ClientSecretCredential(tenant, setup.client_id, setup.secret, **options)
    if kind == "certificate":
        return CertificateCredential(tenant, client_id,
                                     certificate_path=str(material["certificate"]), **options)
    if kind == "assertion":
        issuer: FederatedIssuer = material["issuer"]
        return ClientAssertionCredential(tenant, client_id, lambda: issuer.token(SUBJECT),
                                         **options)
    if kind == "workload":
        return WorkloadIdentityCredential(tenant_id=tenant, client_id=client_id,
                                          token_file_path=str(material["token_file"]), **options)
    if kind == "sync-secret":
        return SyncClientSecretCredential(tenant, setup.client_id, setup.secret, **options)
    return SyncCertificateCredential(tenant, client_id,
                                     certificate_path=str(material["certificate"]), **options)


@pytest.mark.parametrize("kind", ["secret", "certificate", "assertion", "workload",
                                  "sync-secret", "sync-certificate"])
def test_credential_signs_in_and_lists_users(kind: str, tenant_app: TenantApp,
                                             material: dict[str, Any]) -> None:
    credential = _credential(kind, tenant_app, material)

    async def scenario() -> list[str]:
        client, http_client = graph_service_client(credential, tenant_app.emulator.graph_url,
                                                   tenant_app.emulator.ca_file)
        try:
            query = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(
                select=["id", "userPrincipalName"])
            page = await client.users.get(RequestConfiguration(query_parameters=query))
            assert page is not None and page.value is not None
            return [u.user_principal_name or "" for u in page.value]
        finally:
            await http_client.aclose()
            close = getattr(credential, "close", None)  # not part of TokenCredential
            closed = close() if close else None  # a coroutine for the aio credentials
            if inspect.isawaitable(closed):
                await closed

    assert sorted(run(scenario())) == [f"user{i}@{tenant_app.domain}" for i in range(3)]


def test_token_claims(tenant_app: TenantApp) -> None:
    credential = SyncClientSecretCredential(
        tenant_app.tenant_id, tenant_app.client_id, tenant_app.secret,
        **credential_options(tenant_app.emulator.authority_host, tenant_app.emulator.ca_file))
    token = credential.get_token(GRAPH_SCOPE)
    import jwt

    claims = jwt.decode(token.token, options={"verify_signature": False})
    assert claims["tid"] == tenant_app.tenant_id
    assert claims["appid"] == tenant_app.client_id
    assert claims["aud"] == "https://graph.microsoft.com"
    assert "User.ReadWrite.All" in claims["roles"]
    assert token.expires_on > time.time() + 3000


@pytest.mark.parametrize(("case", "code"), [
    ("wrong-secret", "AADSTS7000215"), ("unknown-tenant", "AADSTS90002"),
    ("unknown-client", "AADSTS700016"), ("wrong-subject", "AADSTS700213"),
    ("wrong-issuer-key", "AADSTS50013"), ("expired-assertion", "AADSTS700024"),
])
def test_sign_in_failures_carry_aadsts_codes(case: str, code: str, tenant_app: TenantApp,
                                             material: dict[str, Any]) -> None:
    options = credential_options(tenant_app.emulator.authority_host, tenant_app.emulator.ca_file)
    issuer: FederatedIssuer = material["issuer"]
    tenant, client_id = tenant_app.tenant_id, tenant_app.client_id
    credential: AsyncTokenCredential
    if case == "wrong-secret":
        credential = ClientSecretCredential(tenant, client_id, "nope", **options)
    elif case == "unknown-tenant":
        credential = ClientSecretCredential("nowhere.onmicrosoft.com", client_id, "x", **options)
    elif case == "unknown-client":
        credential = ClientSecretCredential(tenant, "11111111-1111-1111-1111-111111111111", "x",
                                            **options)
    else:
        assertion = {
            "wrong-subject": lambda: issuer.token("system:serviceaccount:other:sa"),
            "wrong-issuer-key": lambda: FederatedIssuer.create(issuer.issuer).token(SUBJECT),
            "expired-assertion": lambda: issuer.token(SUBJECT, lifetime=-3600),
        }[case]
        credential = ClientAssertionCredential(tenant, material["client_id"], assertion,
                                               **options)

    async def sign_in() -> None:
        async with credential:
            await credential.get_token(GRAPH_SCOPE)

    with pytest.raises(ClientAuthenticationError) as caught:
        run(sign_in())
    assert code in str(caught.value)


def test_msal_discovery_of_an_unknown_tenant_fails(tenant_app: TenantApp) -> None:
    """Sync credentials (MSAL) read the tenant's OpenID configuration first; an unknown tenant
    fails there, before any token request."""
    credential = SyncClientSecretCredential(
        "nowhere.onmicrosoft.com", tenant_app.client_id, "x",
        **credential_options(tenant_app.emulator.authority_host, tenant_app.emulator.ca_file))
    with pytest.raises(ClientAuthenticationError, match="Unable to get authority configuration"):
        credential.get_token(GRAPH_SCOPE)


def test_graph_rejects_missing_and_expired_tokens(graph_emulator: GraphEmulator) -> None:
    setup = new_tenant(graph_emulator)
    setup.admin.set_token_lifetime(setup.tenant_id, 1)
    credential = SyncClientSecretCredential(
        setup.tenant_id, setup.client_id, setup.secret,
        **credential_options(graph_emulator.authority_host, graph_emulator.ca_file))
    token = credential.get_token(GRAPH_SCOPE).token
    with httpx.Client(verify=str(graph_emulator.ca_file)) as http:
        missing = http.get(f"{graph_emulator.graph_url}/users")
        assert missing.status_code == 401
        assert missing.json()["error"]["code"] == "InvalidAuthenticationToken"
        assert missing.headers["WWW-Authenticate"].startswith("Bearer ")
        assert missing.headers["request-id"]

        def refused() -> httpx.Response | None:
            answer = http.get(f"{graph_emulator.graph_url}/users",
                              headers={"Authorization": f"Bearer {token}"})
            return answer if answer.status_code == 401 else None

        answer = eventually(refused, "the one-second token to be refused")
        assert "expired" in answer.json()["error"]["message"]


def test_tenants_are_isolated(graph_emulator: GraphEmulator) -> None:
    first, second = new_tenant(graph_emulator), new_tenant(graph_emulator)
    first.admin.seed(first.tenant_id, users=[{"userPrincipalName": f"a@{first.domain}"}])
    second.admin.seed(second.tenant_id, users=[{"userPrincipalName": f"b@{second.domain}"}])

    async def names(setup: TenantApp) -> list[str]:
        async with graph(setup) as client:
            page = await client.users.get()
            assert page is not None and page.value is not None
            return [u.user_principal_name or "" for u in page.value]

    assert run(names(first)) == [f"a@{first.domain}"]
    assert run(names(second)) == [f"b@{second.domain}"]

    async def cross() -> None:  # first's app is not registered in second's tenant
        async with graph(second, client_id=first.client_id, secret=first.secret) as client:
            await client.users.get()

    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        run(cross())


def test_missing_permission_is_403(tenant_app: TenantApp) -> None:
    reader = tenant_app.add_app(["User.Read.All"], secret="reader-secret")

    async def scenario() -> None:
        async with graph(tenant_app, client_id=reader, secret="reader-secret") as client:
            await client.groups.get()

    with pytest.raises(ODataError) as caught:
        run(scenario())
    assert caught.value.response_status_code == 403
    assert caught.value.error is not None
    assert caught.value.error.code == "Authorization_RequestDenied"
    assert caught.value.error.message == "Insufficient privileges to complete the operation."
    assert caught.value.error.inner_error is not None
    assert caught.value.error.inner_error.request_id
