"""`ferry gateway`: load the CA and certificates, serve HTTPS until SIGTERM, sweep the queue."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import signal
from asyncio import sslproto
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from aiohttp import web, web_response

from ferry.errors import InvalidInput
from ferry.gateway.app import Services, build_app, close_revoked_streams
from ferry.gateway.ca import AgentCA
from ferry.gateway.connections import (
    SERVER_NAME,
    ConnectionGuard,
    ConnectionLimits,
    GuardedSite,
)
from ferry.gateway.job_auth import JobAuthError, load_verify_key
from ferry.gateway.metrics import metrics_app
from ferry.gateway.queue import QueueLimits, WorkQueue
from ferry.gateway.tls import PeerIdentities, agent_trust_bundle, server_context
from ferry.state.store import StateStore

log = structlog.get_logger("ferry.gateway")
_SHUTDOWN_SECONDS = 3.0   # long polls are cut short on stop; clients retry elsewhere
TLS_READ_BYTES = 32 * 1024


class GatewayConfigError(InvalidInput):
    """A setting that keeps the gateway from starting; the message says which and why."""


@dataclass(frozen=True)
class GatewayConfig:
    host: str
    port: int
    tls_cert: Path
    tls_key: Path
    job_key: Path | None = None         # the job signing key's public half
    state: str = ".ferry/state.sqlite"
    ca_dir: Path | None = None          # ca.crt + ca.key, created there on first start
    ca_cert: Path | None = None         # or both files given (e.g. a mounted Secret)
    ca_key: Path | None = None
    server_ca: Path | None = None       # what agents verify the gateway with (default: the CA)
    token_secrets_namespace: str | None = None  # also accept tokens kept as Secrets there
    agent_stream: bool = True           # offer agents the work stream (WebSocket)
    metrics: tuple[str, int] | None = None  # plain-HTTP Prometheus metrics, never on `port`
    limits: QueueLimits = field(default_factory=QueueLimits)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)

    def __repr__(self) -> str:
        return f"GatewayConfig({self.host}:{self.port})"


def parse_listen(text: str, flag: str = "--listen",
                 example: str = "0.0.0.0:8443") -> tuple[str, int]:
    """HOST:PORT or [IPv6]:PORT."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise GatewayConfigError(f"{flag} {text!r}: expected HOST:PORT, e.g. {example}")
    return host, int(port)


def load_job_key(path: Path | None) -> object:
    """The public key job credentials are verified with (see ferry.gateway.job_auth)."""
    if path is None:
        raise GatewayConfigError("give --job-key: the public half of the job signing key"
                                 " (`ferry job-credential key create DIR` makes a pair)")
    try:
        return load_verify_key(path)
    except JobAuthError as exc:
        raise GatewayConfigError(str(exc)) from None


def load_ca(config: GatewayConfig) -> AgentCA:
    if config.ca_cert is not None and config.ca_key is not None:
        return AgentCA.load(config.ca_cert, config.ca_key)
    if config.ca_dir is not None:
        return AgentCA.load_or_create(config.ca_dir)
    raise GatewayConfigError("give --ca-dir, or both --ca-cert and --ca-key")


async def serve(config: GatewayConfig, stop: asyncio.Event | None = None) -> None:
    """Serve until `stop` is set, or SIGTERM/SIGINT."""
    ca = load_ca(config)
    job_key = load_job_key(config.job_key)
    context = server_context(config.tls_cert, config.tls_key, ca)
    bundle, anchored = agent_trust_bundle(config.tls_cert, config.server_ca, ca)
    if not anchored:
        log.warning("agents will not trust this gateway after enrolling: the server"
                    " certificate is not issued by the CA bundle they are given",
                    tls_cert=str(config.tls_cert), server_ca=str(config.server_ca or "agent CA"))
    queue = WorkQueue(config.limits)
    guard = ConnectionGuard(config.connections, PeerIdentities(ca))
    _hide_versions()
    _small_tls_buffers()
    _quiet_aiohttp()
    with StateStore(config.state) as store:
        services = Services(store, ca, queue, job_key, bundle, agent_stream=config.agent_stream,
                            connections=config.connections, guard=guard)
        if config.token_secrets_namespace:
            from ferry.gateway.token_secrets import SecretTokens
            from ferry.kube import api_client  # only in a cluster

            services.token_secrets = SecretTokens(api_client(), config.token_secrets_namespace,
                                                  store)
        # A client that goes away cancels its long poll, so no work is leased to nobody. Bodies
        # are taken as sent: no client compresses them, and inflating one would get round the
        # limits on their size.
        runner = web.AppRunner(build_app(services), access_log=None, handler_cancellation=True,
                               shutdown_timeout=_SHUTDOWN_SECONDS, auto_decompress=False)
        await runner.setup()
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        sweeper = asyncio.create_task(_sweep(queue))
        watcher = asyncio.create_task(_watch_revocations(services))
        metrics = web.AppRunner(metrics_app(services), access_log=None) \
            if config.metrics else None
        try:
            if metrics is not None and config.metrics is not None:
                await metrics.setup()
                await web.TCPSite(metrics, *config.metrics).start()
                log.info("metrics listening", url="http://{}:{}/metrics".format(
                    f"[{config.metrics[0]}]" if _is_ipv6(config.metrics[0])
                    else config.metrics[0], config.metrics[1]))
            site = GuardedSite(runner, config.host, config.port, context, guard)
            await site.start()
            host = f"[{config.host}]" if _is_ipv6(config.host) else config.host
            log.info("gateway listening", url=f"https://{host}:{config.port}",
                     state=_safe_location(config.state), lease_seconds=config.limits.lease_seconds,
                     agent_timeout=config.limits.agent_timeout)
            await stop.wait()
            log.info("gateway stopping", **queue.counts())
        finally:
            sweeper.cancel()
            watcher.cancel()
            if metrics is not None:
                await metrics.cleanup()
            await runner.cleanup()


async def _sweep(queue: WorkQueue) -> None:
    # Often enough that a lease expires within a fraction of its length.
    interval = min(1.0, queue.limits.lease_seconds / 4, queue.limits.agent_timeout / 4)
    while True:
        await asyncio.sleep(interval)
        try:
            queue.sweep()
        except Exception:  # housekeeping must never stop
            log.exception("queue sweep failed")


async def _watch_revocations(services: Services) -> None:
    # Revocation is written to the state store, maybe by another process: look for it.
    while True:
        await asyncio.sleep(services.connections.revocation_seconds)
        try:
            await close_revoked_streams(services)
        except Exception:  # housekeeping must never stop
            log.exception("closing revoked agents' streams failed")


def _hide_versions() -> None:
    # aiohttp names its and Python's versions in the Server header of every answer it
    # prepares, its own error answers (a malformed request line, a 500) included, which no
    # application hook sees. That default is this module's global, read at each answer.
    web_response.SERVER_SOFTWARE = SERVER_NAME


def _small_tls_buffers() -> None:
    # asyncio gives each TLS connection a read buffer of SSLProtocol.max_size (256 KiB),
    # zeroed when the connection opens, so resident: about 280 KB a connection, 2.8 GB for
    # 10,000 devices. TLS records are at most 16 KiB; two fit. Nothing else in this process
    # uses asyncio TLS.
    sslproto.SSLProtocol.max_size = TLS_READ_BYTES


class _AiohttpLines(logging.Handler):
    """aiohttp's own error records (requests it could not parse, mostly) as one gateway log
    line each: no traceback, and not the request bytes it quotes (they may hold a token)."""

    def emit(self, record: logging.LogRecord) -> None:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            log.warning("aiohttp", message=record.getMessage()[:300])
        else:
            peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
            log.warning("bad request", error=type(exc).__name__,
                        status=getattr(exc, "code", None), peer=str(peer)[:60])


def _quiet_aiohttp() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(h, _AiohttpLines) for h in server_log.handlers):
        server_log.addHandler(_AiohttpLines(logging.WARNING))
        server_log.propagate = False


def _is_ipv6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


def _safe_location(location: str) -> str:
    # A PostgreSQL URL may carry a password.
    scheme, sep, rest = location.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if sep else location
