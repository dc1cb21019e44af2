"""The recipe (see the package docstring) as code: azure-identity credential options and a
msgraph `GraphServiceClient` for any Graph base URL and CA bundle. Tests use it; the product's
Entra connector does the same steps itself."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.request_option import RequestOption
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph_core import GraphClientFactory
from msgraph_core.authentication import AzureIdentityAuthenticationProvider

from .compat import install_deprecated_shim

# So that msgraph_core.requests (BatchRequestContent) imports here: see compat.py.
install_deprecated_shim()

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def credential_options(authority_host: str, ca_file: Path) -> dict[str, Any]:
    """Keyword arguments for any azure-identity credential (sync or aio): sign in at
    `authority_host`, trust `ca_file`, skip instance discovery (MSAL would otherwise ask
    login.microsoftonline.com whether the host is a known authority)."""
    return {
        "authority": authority_host,
        "connection_verify": str(ca_file),
        "disable_instance_discovery": True,
    }


def graph_service_client(
    credential: TokenCredential | AsyncTokenCredential,
    graph_url: str,
    ca_file: Path,
    *,
    timeout: float = 60.0,
    retry: RetryHandlerOption | None = None,
) -> tuple[GraphServiceClient, httpx.AsyncClient]:
    """A GraphServiceClient on `graph_url` (e.g. https://127.0.0.121:8443/v1.0) trusting
    `ca_file`, and the httpx client under it (close it with `await client.aclose()`)."""
    http_client = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(ca_file)),
                                    timeout=httpx.Timeout(timeout, connect=10.0))
    options: dict[str, RequestOption] = {}
    if retry is not None:
        options[RetryHandlerOption.get_key()] = retry
    http_client = GraphClientFactory.create_with_default_middleware(
        client=http_client, options=options or None)
    host = urlparse(graph_url).hostname or ""
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE],
                                               allowed_hosts=[host])
    adapter = GraphRequestAdapter(auth, client=http_client)
    adapter.base_url = graph_url.rstrip("/")
    return GraphServiceClient(request_adapter=adapter), http_client
