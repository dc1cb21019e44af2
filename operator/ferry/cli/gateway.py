"""`ferry gateway`: the HTTPS gateway agents and sync Jobs connect to."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferry.cli.options import DEFAULT_STATE, StateOpt
from ferry.cli.render import err
from ferry.errors import ExitCode, FerryError


def gateway(
    tls_cert: Annotated[Path, typer.Option(
        "--tls-cert", envvar="FERRY_GATEWAY_TLS_CERT",
        help="The gateway's TLS certificate (PEM; intermediates after it).")],
    tls_key: Annotated[Path, typer.Option(
        "--tls-key", envvar="FERRY_GATEWAY_TLS_KEY", help="Its private key (PEM).")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve HTTPS on.")] = "0.0.0.0:8443",
    metrics_listen: Annotated[str | None, typer.Option(
        "--metrics-listen", envvar="FERRY_GATEWAY_METRICS_LISTEN",
        help="HOST:PORT to serve Prometheus metrics on, over plain HTTP; a port other than"
             " --listen's (unset: none).")] = None,
    ca_dir: Annotated[Path | None, typer.Option(
        "--ca-dir", envvar="FERRY_GATEWAY_CA_DIR",
        help="Folder of the agent CA (ca.crt, ca.key); created there on first start.")] = None,
    ca_cert: Annotated[Path | None, typer.Option(
        "--ca-cert", help="The agent CA's certificate, with --ca-key (instead of --ca-dir).")]
    = None,
    ca_key: Annotated[Path | None, typer.Option("--ca-key", help="The agent CA's key.")] = None,
    server_ca: Annotated[Path | None, typer.Option(
        "--server-ca", help="CA bundle agents verify this gateway with, handed out at"
        " enrollment (default: the agent CA, when it also issued --tls-cert).")] = None,
    job_key: Annotated[Path | None, typer.Option(
        "--job-key", envvar="FERRY_GATEWAY_JOB_KEY",
        help="Public half of the job signing key (PEM public key or certificate): job"
             " credentials signed with it are accepted, each for its own environments.")]
    = None,
    state: StateOpt = DEFAULT_STATE,
    lease_seconds: Annotated[float, typer.Option(
        help="How long an agent holds work without a heartbeat or result.")] = 60.0,
    agent_timeout: Annotated[float, typer.Option(
        help="Seconds of silence after which an agent's leases are re-issued.")] = 60.0,
    token_secrets_namespace: Annotated[str | None, typer.Option(
        envvar="FERRY_GATEWAY_TOKEN_SECRETS_NAMESPACE",
        help="Also accept enrollment tokens kept as Secrets in this namespace"
             " (`ferry agent token create --in-cluster`).")] = None,
    agent_stream: Annotated[bool, typer.Option(
        help="Offer agents the work stream (a WebSocket); without it they long-poll, as"
             " they do by themselves where a proxy does not pass WebSockets.")] = True,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds a connection may send nothing, after its opening or its last answer,"
             " before it is closed.")] = 60.0,
    header_timeout: Annotated[float, typer.Option(
        help="Seconds a request has from its first byte to the end of its headers; then"
             " the connection is closed.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        help="Seconds a request has to send its body; then it gets 408.")] = 60.0,
    max_anonymous_connections: Annotated[int, typer.Option(
        help="Open connections without an agent certificate (enrolling agents, sync Jobs,"
             " anyone else); more get 503 at once.")] = 256,
) -> None:
    """Serve the HTTPS gateway agents connect to and sync Jobs submit directory work to.

    Queued work lives in memory: a restart loses it and the Jobs waiting on it fail that call.
    """
    import asyncio

    from ferry import logs
    from ferry.gateway.connections import ConnectionLimits
    from ferry.gateway.queue import QueueLimits
    from ferry.gateway.server import (
        GatewayConfig,
        GatewayConfigError,
        parse_listen,
        serve,
    )

    logs.configure("INFO")
    settings = {"--lease-seconds": lease_seconds, "--agent-timeout": agent_timeout,
                "--idle-timeout": idle_timeout, "--header-timeout": header_timeout,
                "--body-timeout": body_timeout,
                "--max-anonymous-connections": max_anonymous_connections}
    wrong = [f"{flag} {value:g}" for flag, value in settings.items() if value <= 0]
    if wrong:
        err.print(f"{', '.join(wrong)}: must be positive")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    host, port = parse_listen(listen)
    metrics = parse_listen(metrics_listen, "--metrics-listen", "0.0.0.0:9091") \
        if metrics_listen else None
    if metrics is not None and metrics[1] == port:
        raise GatewayConfigError(f"--metrics-listen {metrics_listen}: the HTTPS port {port}"
                                 " serves agents; give metrics a port of their own")
    config = GatewayConfig(
        host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
        job_key=job_key, state=state, ca_dir=ca_dir,
        ca_cert=ca_cert, ca_key=ca_key, server_ca=server_ca,
        limits=QueueLimits(lease_seconds=lease_seconds, agent_timeout=agent_timeout),
        connections=ConnectionLimits(idle_timeout=idle_timeout,
                                     header_timeout=header_timeout,
                                     body_timeout=body_timeout,
                                     max_anonymous=max_anonymous_connections),
        token_secrets_namespace=token_secrets_namespace, agent_stream=agent_stream,
        metrics=metrics)
    if (ca_cert is None) != (ca_key is None):
        raise GatewayConfigError("--ca-cert and --ca-key go together")
    try:
        asyncio.run(serve(config))
    except OSError as exc:
        raise FerryError(f"cannot serve on {listen}: {exc.strerror or exc}") from exc

