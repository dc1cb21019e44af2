"""`ferry devices`: device migration from the command line: drive DeviceMigrations from
manifests (`run`), device enrollment tokens, and a migration's device agents."""

from __future__ import annotations

from typing import Annotated

import typer

from ferry.cli.group import command_group
from ferry.cli.options import DEFAULT_STATE, PathsOpt, StateOpt
from ferry.cli.render import device_agents, err, out
from ferry.errors import InvalidInput

app = command_group(help="Device migration: device tokens and device agents.")
token_app = command_group(help="Device enrollment tokens: a wave token enrolls many devices.")
app.add_typer(token_app, name="token")

MigrationArg = Annotated[str, typer.Argument(
    help="The DeviceMigration, as NAMESPACE/NAME.")]


@app.command("run")
def device_run(
    paths: PathsOpt,
    migration: Annotated[str | None, typer.Option(
        "--migration", help="Only this DeviceMigration of the manifests.")] = None,
    once: Annotated[bool, typer.Option(
        "--once", help="One pass: write the plans, print the status, exit.")] = False,
    interval: Annotated[float, typer.Option(
        help="Seconds between passes.", min=0.1)] = 10.0,
    timeout: Annotated[float | None, typer.Option(
        help="Give up (exit 1) when not every device finished within this many seconds.",
        min=1)] = None,
    state: StateOpt = DEFAULT_STATE,
) -> None:
    """Drive the DeviceMigrations of the manifests as the operator does: plans into the state
    store the gateway serves devices from, progress printed until every device is done (exit
    0) or some failed (exit 1). Needs the gateway's state store (--state)."""
    from ferry.cli.device_runs import execute

    execute(paths, state, migration, once, interval, timeout)


@token_app.command("create")
def device_token_create(
    migration: MigrationArg,
    uses: Annotated[int | None, typer.Option(
        "--uses", help="How many devices it may enroll (default: any number, until it is"
        " revoked or expires).")] = None,
    single_use: Annotated[bool, typer.Option(
        "--single-use", help="It enrolls one device (--uses 1).")] = False,
    ttl: Annotated[str, typer.Option(
        help="How long the token can be used: 30m, 24h, 7d (at most 30d).")] = "24h",
    state: StateOpt = DEFAULT_STATE,
) -> None:
    """Create a device enrollment token for MIGRATION; it is printed once."""
    from ferry.gateway.enrollment import create_device_token, parse_ttl
    from ferry.state.store import StateStore

    if single_use and uses not in (None, 1):
        raise InvalidInput(f"--single-use and --uses {uses} disagree: give one of them")
    max_uses = 1 if single_use else uses
    try:
        lifetime = parse_ttl(ttl)
        with StateStore(state) as store:
            token, expires = create_device_token(store, migration, lifetime, max_uses)
    except ValueError as exc:  # a TTL, migration or count the parsers refused
        raise InvalidInput(str(exc)) from exc
    typer.echo(token)  # alone on stdout, so TOKEN=$(ferry devices token create NS/NAME) works
    scope = "any number of devices" if max_uses is None else f"{max_uses} device(s)"
    err.print(f"device token for migration {migration}: enrolls {scope} until"
              f" {expires:%Y-%m-%d %H:%M:%S} UTC or `ferry devices token revoke {migration}`;"
              " it is not shown again. On each device: ferry-agent device enroll --gateway URL"
              " --config INI --token-file FILE (or $FERRY_AGENT_TOKEN)")


@token_app.command("revoke")
def device_token_revoke(migration: MigrationArg, state: StateOpt = DEFAULT_STATE) -> None:
    """Revoke every device token of MIGRATION: devices enrolled already keep working."""
    from ferry.state.store import StateStore

    with StateStore(state) as store:
        revoked = store.devices.revoke_tokens(migration)
    out.print(f"revoked {revoked} device token(s) of migration {migration}")


@app.command("list")
def device_list(migration: MigrationArg, state: StateOpt = DEFAULT_STATE) -> None:
    """List MIGRATION's device agents: computer name, os, host, last contact, revoked."""
    from ferry.state.store import StateStore

    with StateStore(state) as store:
        agents = store.devices.agents(migration)
    device_agents(agents)
