"""Shared pieces of the Graph emulator tests: a fresh tenant with an app per test, and a
GraphServiceClient signed in through the real azure-identity against the emulator."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from azure.identity import ClientSecretCredential as SyncClientSecretCredential
from azure.identity.aio import ClientSecretCredential
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphServiceClient
from tests.support.graph_emulator.fixture import EmulatorAdmin, GraphEmulator
from tests.support.graph_emulator.sdk import (
    GRAPH_SCOPE,
    credential_options,
    graph_service_client,
)

T = TypeVar("T")

ALL_ROLES = (
    "User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All",
    "Directory.ReadWrite.All", "User.Invite.All", "Device.Read.All", "OrgContact.Read.All",
    "AdministrativeUnit.Read.All",
)
NO_RETRY = RetryHandlerOption(max_retries=0)


@dataclass(frozen=True)
class TenantApp:
    emulator: GraphEmulator
    tenant_id: str
    initial_domain: str
    domain: str  # a verified custom domain
    client_id: str
    secret: str

    @property
    def admin(self) -> EmulatorAdmin:
        return self.emulator.admin

    def add_app(self, roles: Iterable[str], secret: str = "other-secret") -> str:
        """Another app in this tenant with only `roles`; returns its client id."""
        return self.admin.register_app(self.tenant_id, secrets=[secret], roles=roles)["clientId"]


def new_tenant(emulator: GraphEmulator, roles: Iterable[str] = ALL_ROLES) -> TenantApp:
    short = uuid.uuid4().hex[:10]
    tenant = emulator.admin.create_tenant(initial_domain=f"t{short}.onmicrosoft.com",
                                          verified_domains=[f"{short}.test"])
    secret = f"secret-{short}"
    app = emulator.admin.register_app(tenant["id"], secrets=[secret], roles=roles)
    return TenantApp(emulator, tenant["id"], tenant["initialDomain"], f"{short}.test",
                     app["clientId"], secret)


@asynccontextmanager
async def graph(setup: TenantApp, *, client_id: str | None = None, secret: str | None = None,
                retry: RetryHandlerOption | None = None) -> AsyncIterator[GraphServiceClient]:
    """A GraphServiceClient signed in with a client secret (aio ClientSecretCredential)."""
    emulator = setup.emulator
    credential = ClientSecretCredential(
        setup.tenant_id, client_id or setup.client_id, secret or setup.secret,
        **credential_options(emulator.authority_host, emulator.ca_file),
    )
    client, http_client = graph_service_client(credential, emulator.graph_url, emulator.ca_file,
                                               retry=retry)
    try:
        yield client
    finally:
        await http_client.aclose()
        await credential.close()


def bearer(setup: TenantApp) -> dict[str, str]:
    """An Authorization header for raw HTTP checks (the sync credential, through MSAL)."""
    emulator = setup.emulator
    credential = SyncClientSecretCredential(
        setup.tenant_id, setup.client_id, setup.secret,
        **credential_options(emulator.authority_host, emulator.ca_file))
    return {"Authorization": f"Bearer {credential.get_token(GRAPH_SCOPE).token}"}


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
