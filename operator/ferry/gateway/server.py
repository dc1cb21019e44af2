"""`ferry gateway`: load the CA and certificates, serve HTTPS until SIGTERM, sweep the queue."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web

from ferry.gateway.app import Services, build_app
from ferry.gateway.ca import AgentCA
from ferry.gateway.queue import QueueLimits, WorkQueue
from ferry.gateway.tls import agent_trust_bundle, server_context
from ferry.state.store import StateStore

log = structlog.get_logger("ferry.gateway")
JOB_TOKEN_ENV = "FERRY_GATEWAY_JOB_TOKEN"
MIN_JOB_TOKEN = 16
_SHUTDOWN_SECONDS = 3.0   # long polls are cut short on stop; clients retry elsewhere


class GatewayConfigError(Exception):
    """A setting that keeps the gateway from starting; the message says which and why."""


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    job_token: str = ""
    state: str = ".ferry/state.sqlite"
    ca_dir: Path | None = None          # ca.crt + ca.key, created there on first start
    ca_cert: Path | None = None         # or both files given (e.g. a mounted Secret)
    ca_key: Path | None = None
    server_ca: Path | None = None       # what agents verify the gateway with (default: the CA)
    token_secrets_namespace: str | None = None  # also accept tokens kept as Secrets there
    agent_stream: bool = True           # offer agents the work stream (WebSocket)
    limits: QueueLimits = field(default_factory=QueueLimits)

    def __repr__(self) -> str:  # never show the job token
        return f"GatewayConfig({self.host}:{self.port})"


def parse_listen(text: str) -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise GatewayConfigError(f"--listen {text!r}: expected HOST:PORT, e.g. 0.0.0.0:8443")
    return host, int(port)


def read_job_token(token_file: Path | None) -> str:
    """The sync Jobs' bearer token, from a file or $FERRY_GATEWAY_JOB_TOKEN."""
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise GatewayConfigError(f"--job-token-file {token_file}: {exc.strerror}") from None
        source = str(token_file)
    else:
        token, source = os.environ.get(JOB_TOKEN_ENV, "").strip(), f"${JOB_TOKEN_ENV}"
    if len(token) < MIN_JOB_TOKEN:
        raise GatewayConfigError(
            f"the job token ({source}) must be at least {MIN_JOB_TOKEN} characters; give"
            f" --job-token-file or set {JOB_TOKEN_ENV} (e.g. `openssl rand -hex 32`)")
    return token


def load_ca(config: GatewayConfig) -> AgentCA:
    if config.ca_cert is not None and config.ca_key is not None:
        return AgentCA.load(config.ca_cert, config.ca_key)
    if config.ca_dir is not None:
        return AgentCA.load_or_create(config.ca_dir)
    raise GatewayConfigError("give --ca-dir, or both --ca-cert and --ca-key")


async def serve(config: GatewayConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set, or SIGTERM/SIGINT."""
    ca = load_ca(config)
    context = server_context(config.tls_cert, config.tls_key, ca)
    bundle, anchored = agent_trust_bundle(config.tls_cert, config.server_ca, ca)
    if not anchored:
        log.warning("agents will not trust this gateway after enrolling: the server"
                    " certificate is not issued by the CA bundle they are given",
                    tls_cert=str(config.tls_cert), server_ca=str(config.server_ca or "agent CA"))
    store = StateStore(config.state)
    queue = WorkQueue(config.limits)
    services = Services(store, ca, queue, hashlib.sha256(config.job_token.encode()).digest(),
                        bundle, agent_stream=config.agent_stream)
    if config.token_secrets_namespace:
        from ferry.controller.kube import api_client  # only in a cluster
        from ferry.gateway.token_secrets import SecretTokens

        services.token_secrets = SecretTokens(api_client(), config.token_secrets_namespace,
                                              store)
    # A client that goes away cancels its long poll, so no work is leased to nobody.
    runner = web.AppRunner(build_app(services), access_log=None, handler_cancellation=True,
                           shutdown_timeout=_SHUTDOWN_SECONDS)
    await runner.setup()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sweeper = asyncio.create_task(_sweep(queue))
    try:
        site = web.TCPSite(runner, config.host, config.port, ssl_context=context,
                           reuse_address=True)
        await site.start()
        host = f"[{config.host}]" if _is_ipv6(config.host) else config.host
        log.info("gateway listening", url=f"https://{host}:{config.port}",
                 state=_safe_location(config.state), lease_seconds=config.limits.lease_seconds,
                 agent_timeout=config.limits.agent_timeout)
        await stop.wait()
        log.info("gateway stopping", **queue.counts())
    finally:
        sweeper.cancel()
        await runner.cleanup()
        store.close()


async def _sweep(queue: WorkQueue) -> None:
    # Often enough that a lease expires within a fraction of its length.
    interval = min(1.0, queue.limits.lease_seconds / 4, queue.limits.agent_timeout / 4)
    while True:
        await asyncio.sleep(interval)
        try:
            queue.sweep()
        except Exception:  # housekeeping must never stop
            log.exception("queue sweep failed")


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _safe_location(location: str) -> str:
    # A PostgreSQL URL may carry a password.
    scheme, sep, rest = location.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if sep else location
