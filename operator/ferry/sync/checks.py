"""`ferry check`: can Ferry reach each environment, sign in, read, and do what the workflows
ask of it (for Entra ID: which Graph application permissions are missing)."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.api.environment import DirectoryType, Environment
from ferry.api.loader import Manifests
from ferry.api.template import PasswordSyncMode
from ferry.connectors.activedirectory import ActiveDirectoryConnector, MigrationNeeds
from ferry.connectors.base import SCOPE_TYPES
from ferry.connectors.entra.connector import EntraConnector
from ferry.connectors.entra.permissions import Need, needs
from ferry.connectors.factory import open_connector
from ferry.engine.records import ObjectType
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.sync.pairs import workflow_pairs
from ferry_agent.dn import dns_domain


@dataclass(frozen=True)
class EnvironmentCheck:
    environment: str
    ok: bool
    message: str


def graph_permissions_needed(manifests: Manifests, env: Environment) -> list[Need]:
    """The Graph permissions the workflows need of an Entra ID environment."""
    name = env.metadata.name
    read = {SCOPE_TYPES[t] for t in env.spec.scope.object_types}
    written: set[ObjectType] = set()
    guests = False
    for workflow in manifests.workflows.values():
        if workflow.spec.test_mode:
            continue  # writes nothing, so needs no write permission
        for pair in workflow_pairs(manifests, workflow):
            if pair.target == name:
                written.update(pair.rules.object_types)
                template = manifests.templates[pair.template].spec
                guests = guests or template.guests.create_unmatched_as_guests
    return needs(sorted(read), sorted(written), guests=guests,
                 administrative_units=bool(env.spec.scope.administrative_units))


def migration_needs(manifests: Manifests, env: Environment) -> MigrationNeeds:
    """What the workflows' password sync and SID history ask of an AD environment."""
    name = env.metadata.name
    replication, sid_history, dc_agent = False, False, False
    ous: list[str] = []
    sources: list[str] = []
    for workflow in manifests.workflows.values():
        for pair in workflow_pairs(manifests, workflow):
            if pair.password.synced and pair.source == name:
                replication = True
                dc_agent = dc_agent or pair.password.sync.mode is PasswordSyncMode.DC_AGENT
            if pair.password.synced and pair.target == name:
                target_ou = manifests.templates[pair.template].spec.target_ou
                ous += [target_ou.default, *(m.target_ou for m in target_ou.mappings)] \
                    if target_ou else list(env.spec.scope.ous)
            if pair.sid_history and pair.target == name:
                sid_history = True
                source = manifests.environments[pair.source].spec.active_directory
                if source is not None:
                    sources.append(dns_domain(source.base_dn))
    return MigrationNeeds(replication, tuple(dict.fromkeys(ous)), sid_history, dc_agent,
                          tuple(dict.fromkeys(sources)))


def check_environment(manifests: Manifests, env: Environment, secrets: SecretSource,
                      settings: RunSettings) -> EnvironmentCheck:
    """Connect, sign in and read; what failed is the message an admin acts on."""
    name = env.metadata.name
    try:
        connector = open_connector(env, secrets, settings)
    except Exception as exc:  # a missing secret, an unknown type: say so, check the rest
        return EnvironmentCheck(name, False, str(exc))
    try:
        if env.spec.type is DirectoryType.ENTRA_ID and isinstance(connector, EntraConnector):
            message = connector.check(graph_permissions_needed(manifests, env))
        else:
            message = connector.check()
            migration = migration_needs(manifests, env)
            if migration and isinstance(connector, ActiveDirectoryConnector):
                message += "; " + connector.check_migration(migration)
        return EnvironmentCheck(name, True, message)
    except Exception as exc:  # any failure to reach, sign in or read
        return EnvironmentCheck(name, False, f"{type(exc).__name__}: {exc}")
    finally:
        connector.close()
