"""Open the connector an Environment describes."""

from __future__ import annotations

from ferry.api.base import ValueSource
from ferry.api.environment import ConnectionMode, DirectoryType, Environment
from ferry.connectors.activedirectory import ActiveDirectoryConnector
from ferry.connectors.agent_session import RemoteDirectory
from ferry.connectors.base import Connector
from ferry.errors import FerryError
from ferry.secrets import SecretSource
from ferry.settings import GATEWAY_CA_ENV, GATEWAY_TOKEN_FILE_ENV, GATEWAY_URL_ENV, RunSettings
from ferry_agent.directory.connection import DirectoryEndpoint
from ferry_agent.directory.session import DirectorySession
from ferry_agent.sealed import ephemeral_key


class ConnectorUnavailable(FerryError):
    """The environment cannot be reached this way (yet); the message says why."""


def connection_secrets(env: Environment) -> list[tuple[ValueSource, str]]:
    """Every secret open_connector reads for env, with the object and field it comes from."""
    if env.spec.type is DirectoryType.ACTIVE_DIRECTORY and \
            env.spec.connection is ConnectionMode.AGENT:
        return []  # the agents hold the directory credentials
    where = f"Environment/{env.metadata.name}"
    return [(source, f"{where}: {field}") for source, field in env.spec.secret_sources()]


def open_connector(env: Environment, secrets: SecretSource, settings: RunSettings) -> Connector:
    name = env.metadata.name
    where = f"Environment/{name}"
    if env.spec.type is DirectoryType.ENTRA_ID:
        return _entra_connector(env, secrets)
    ad = env.spec.active_directory
    assert ad is not None  # the model checks the block matches the type
    if env.spec.connection is ConnectionMode.AGENT:
        gateway = settings.gateway
        if gateway is None:
            raise ConnectorUnavailable(
                f"{where}: spec.connection is agent, but no gateway is configured; set"
                f" {GATEWAY_URL_ENV}, {GATEWAY_CA_ENV} and {GATEWAY_TOKEN_FILE_ENV}")
        remote = RemoteDirectory(gateway, name, write_connections=ad.write_connections)
        return ActiveDirectoryConnector(name, remote, ad.base_dn, env.spec.scope.ous,
                                        where=f"the agents of {name}")
    credentials = ad.credentials
    if credentials is None:
        raise ConnectorUnavailable(f"{where}: spec.activeDirectory.credentials is required"
                                   " for connection: direct")
    ca_data = (secrets.resolve(ad.tls.ca, f"{where}: spec.activeDirectory.tls.ca")
               if ad.tls.ca else None)
    password = secrets.resolve(credentials.password,
                               f"{where}: spec.activeDirectory.credentials.password")
    endpoint = DirectoryEndpoint(
        host=ad.host, port=ad.port, base_dn=ad.base_dn, ca_data=ca_data,
        insecure=ad.tls.insecure_skip_verify, server_name=ad.tls.server_name,
        bind_user=credentials.username, password=password)
    # A key that lives only in this process: passwords this run sets here are sealed to it.
    return ActiveDirectoryConnector(
        name, DirectorySession(endpoint, key=ephemeral_key(),
                               write_connections=ad.write_connections),
        ad.base_dn, env.spec.scope.ous, where=f"{ad.host}:{ad.port} as {credentials.username}")


def _entra_connector(env: Environment, secrets: SecretSource) -> Connector:
    # msgraph-sdk costs seconds and tens of MB to import: only runs that reach a tenant pay.
    from ferry.connectors.entra.auth import CaBundle, GraphEndpoints, credential
    from ferry.connectors.entra.connector import EntraConnector
    from ferry.connectors.entra.session import GraphSession, WriteQuota

    name, spec = env.metadata.name, env.spec.entra_id
    assert spec is not None  # the model checks the block matches the type
    where = f"Environment/{name}"
    endpoints = GraphEndpoints.of(spec)
    ca = CaBundle(secrets.resolve(spec.tls.ca, f"{where}: spec.entraID.tls.ca")
                  if spec.tls.ca else None)
    quota = WriteQuota(spec.write_quota.writes, spec.write_quota.per_seconds)
    session = GraphSession(credential(spec, secrets, where, endpoints, ca), endpoints, ca, quota)
    return EntraConnector(name, session, env.spec.scope,
                          where=f"tenant {spec.tenant_id} as app {spec.client_id}")
