"""Signing in to Entra ID with azure-identity: where (cloud endpoints) and how (credential).

Secrets are resolved when the credential is built and handed straight to azure-identity,
which caches and refreshes tokens; nothing here logs them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.identity.aio import (
    CertificateCredential,
    ClientSecretCredential,
    WorkloadIdentityCredential,
)

from ferry.api.environment import AzureCloud, EntraIdSpec
from ferry.secrets import SecretSource

# cloud -> (sign-in authority, Graph root); from Microsoft's national cloud deployments.
CLOUDS = {
    AzureCloud.PUBLIC: ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    AzureCloud.US_GOVERNMENT: ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    AzureCloud.CHINA: ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}
GRAPH_VERSION = "v1.0"


@dataclass(frozen=True)
class GraphEndpoints:
    authority_host: str
    graph_root: str   # where requests go: the cloud's, or the override
    scope: str        # the token audience: always the cloud's Graph
    custom_authority: bool

    @property
    def base_url(self) -> str:
        return f"{self.graph_root.rstrip('/')}/{GRAPH_VERSION}"

    @classmethod
    def of(cls, spec: EntraIdSpec) -> GraphEndpoints:
        authority, graph = CLOUDS[spec.cloud]
        return cls(spec.authority_host or authority, spec.graph_endpoint or graph,
                   f"{graph}/.default", spec.authority_host is not None)


class CaBundle:
    """A CA bundle from a value source, as the file azure-identity wants (owner-only)."""

    def __init__(self, pem: str | None):
        self.path: str | None = None
        if pem:
            handle, self.path = tempfile.mkstemp(prefix="ferry-graph-ca-", suffix=".pem")
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(pem)

    def close(self) -> None:
        if self.path:
            Path(self.path).unlink(missing_ok=True)
            self.path = None


def credential(spec: EntraIdSpec, secrets: SecretSource, where: str,
               endpoints: GraphEndpoints, ca: CaBundle) -> AsyncTokenCredential:
    """The azure-identity credential the environment's spec.entraID.credentials describe."""
    options: dict[str, Any] = {"authority": endpoints.authority_host}
    if endpoints.custom_authority:
        # MSAL would ask the public cloud whether an unknown host is an authority.
        options["disable_instance_discovery"] = True
    if ca.path:
        options["connection_verify"] = ca.path
    creds = spec.credentials
    if creds.client_secret is not None:
        secret = secrets.resolve(creds.client_secret,
                                 f"{where}: spec.entraID.credentials.clientSecret")
        return ClientSecretCredential(spec.tenant_id, spec.client_id, secret, **options)
    if creds.certificate is not None:
        pem = secrets.resolve(creds.certificate.pem,
                              f"{where}: spec.entraID.credentials.certificate.pem")
        password = (secrets.resolve(creds.certificate.password,
                                    f"{where}: spec.entraID.credentials.certificate.password")
                    if creds.certificate.password else None)
        return CertificateCredential(spec.tenant_id, spec.client_id,
                                     certificate_data=pem.encode("utf-8"),
                                     password=password, **options)
    assert creds.workload_identity is not None  # the model allows exactly one
    return WorkloadIdentityCredential(tenant_id=spec.tenant_id, client_id=spec.client_id,
                                      token_file_path=creds.workload_identity.token_file,
                                      **options)
