"""`ferry discover`: take inventory of Environments from manifests, as discovery Jobs do in a
cluster, so `ferry report discovery` has something to report."""

from __future__ import annotations

from typing import Annotated

import typer

from ferry.cli.options import DEFAULT_STATE, PathsOpt, SecretsOpt, StateOpt, VerboseOpt
from ferry.errors import InvalidInput


def discover(paths: PathsOpt,
             environments: Annotated[list[str] | None, typer.Option(
                 "--environment", "-e", help="Discover only this Environment (repeatable).")]
             = None,
             full: Annotated[bool, typer.Option(
                 "--full", help="Reset the Environment's watermarks and read everything.")]
             = False,
             state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
             verbose: VerboseOpt = False) -> None:
    """Read each Environment's scope (full first, then deltas) into the state store."""
    from ferry import logs
    from ferry.cli import manifests as local
    from ferry.cli.render import out
    from ferry.connectors.factory import connection_secrets, open_connector
    from ferry.secrets import resolve_all
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore
    from ferry.sync.discovery import discover as discover_environment

    logs.configure("INFO" if verbose else "ERROR")
    settings = RunSettings.from_environment()
    manifests = local.load(paths)
    names = environments or sorted(manifests.environments)
    unknown = [n for n in names if n not in manifests.environments]
    if unknown or not names:
        asked = " " + ", ".join(map(repr, unknown)) if unknown else ""
        have = ", ".join(sorted(manifests.environments)) or "none"
        raise InvalidInput(f"no Environment{asked} in the manifests (found: {have})")
    chosen = [manifests.environments[n] for n in names]
    # Every connection's Secret is read before the state store is opened.
    resolved = resolve_all(local.secrets(secrets_dir, paths),
                           [found for env in chosen for found in connection_secrets(env)])
    with StateStore(state) as store:
        for env in chosen:
            connector = open_connector(env, resolved, settings)
            try:
                found = discover_environment(env, connector, store, reset=full)
            finally:
                connector.close()
            counts = ", ".join(f"{n} {t}" for t, n in found.counts.items()) or "none"
            out.print(f"Environment/{env.metadata.name}: {'full' if found.full else 'delta'}"
                      f" discovery: {found.total} objects ({counts}); {found.changed} read,"
                      f" {found.deleted} gone", soft_wrap=True)
    raise typer.Exit(0)
