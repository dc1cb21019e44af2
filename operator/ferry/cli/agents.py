"""`ferry agent`: on-premises agents' enrollment tokens, their registry, revocation."""

from __future__ import annotations

from typing import Annotated

import typer

from ferry.cli import render
from ferry.cli.group import command_group
from ferry.cli.options import DEFAULT_STATE, StateOpt
from ferry.cli.render import err, out
from ferry.errors import InvalidInput

app = command_group(help="On-premises agents: enrollment tokens, the registry, revocation.")
token_app = command_group(help="Single-use agent enrollment tokens.")
app.add_typer(token_app, name="token")


@token_app.command("create")
def agent_token_create(
    environment: Annotated[str, typer.Argument(
        help="The Environment the agent will work for (its metadata.name).")],
    ttl: Annotated[str, typer.Option(
        help="How long the token can be used: 30m, 24h, 7d (at most 30d).")] = "24h",
    state: StateOpt = DEFAULT_STATE,
    in_cluster: Annotated[bool, typer.Option(
        "--in-cluster", help="Keep the token as a Secret in the cluster (your kubeconfig) for"
        " the gateway to claim, instead of in --state.")] = False,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="With --in-cluster: the release's namespace.")] = None,
) -> None:
    """Create a single-use enrollment token for ENVIRONMENT; it is printed once."""
    from ferry.gateway.enrollment import create_token, parse_ttl
    from ferry.state.store import StateStore

    try:
        lifetime = parse_ttl(ttl)
        if in_cluster:
            from ferry.gateway.token_secrets import create_token_secret
            from ferry.kube import api_client, current_namespace

            token, expires, secret = create_token_secret(
                api_client(), namespace or current_namespace(), environment, lifetime)
            err.print(f"kept as Secret {secret} until the gateway claims it")
        else:
            with StateStore(state) as store:
                token, expires = create_token(store, environment, lifetime)
    except ValueError as exc:  # a TTL or environment name the gateway's parsers refused
        raise InvalidInput(str(exc)) from exc
    typer.echo(token)  # alone on stdout, so TOKEN=$(ferry agent token create ENV) works
    err.print(f"single-use token for environment {environment}, valid until"
              f" {expires:%Y-%m-%d %H:%M:%S} UTC; it is not shown again. On the agent's host:"
              " ferry-agent enroll --gateway URL --token TOKEN")


@app.command("list")
def agent_list(state: StateOpt = DEFAULT_STATE,
               environment: Annotated[str | None, typer.Option(
                   help="Only the agents of this environment.")] = None) -> None:
    """List enrolled agents: environment, host, version, last heartbeat, revoked or not."""
    from ferry.state.store import StateStore

    with StateStore(state) as store:
        agents = store.agents.enrolled(environment)
    render.agents(agents)


@app.command("revoke")
def agent_revoke(
    agent: Annotated[str, typer.Argument(help="The agent's id, or its name if unique.")],
    state: StateOpt = DEFAULT_STATE,
) -> None:
    """Revoke an agent: the gateway refuses its next call and re-issues its work."""
    from ferry.state.store import StateStore

    with StateStore(state) as store:
        done = store.agents.revoke(agent)
    if done.same_name:
        raise InvalidInput(f"{len(done.same_name)} active agents are named {agent!r}; give an"
                           " id: " + ", ".join(a.id for a in done.same_name))
    if done.agent is None:
        raise InvalidInput(f"no agent with id or name {agent!r} (see `ferry agent list`)")
    target = done.agent
    if done.already_revoked:
        out.print(f"agent {target.id} ({target.name}) was already revoked")
        return
    out.print(f"revoked agent {target.id} ({target.name}, environment {target.environment})")
