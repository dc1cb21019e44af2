"""How many connections the gateway keeps open and for how long.

Connections without an agent certificate (enrolling agents, sync Jobs, strangers) share one
budget, each agent certificate has its own; a connection over budget is answered at once and
closed, before aiohttp sees it. A connection that sends nothing for `idle_timeout` (after
opening or after its last answer) is closed, and so is one that takes longer than
`header_timeout` from a request's first byte to the end of its headers (slowloris); the body
has its own deadline where the routes read it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import structlog
from aiohttp import web

from ferry_agent.protocol import PROTOCOL_VERSION

log = structlog.get_logger("ferry.gateway")
SERVER_NAME = "ferry-gateway"   # the Server header of every answer: no software versions
HANDSHAKE_SECONDS = 10.0        # a TLS handshake not done by then is cut off (asyncio: 60)
Identify = Callable[[Any], "str | None"]   # ssl object -> the agent id its certificate proves


@dataclass(frozen=True)
class ConnectionLimits:
    idle_timeout: float = 60.0           # nothing sent since opening or the last answer; above
                                         # the 30 s agents keep idle connections, so they close
    header_timeout: float = 10.0         # a request's headers, from its first byte
    body_timeout: float = 60.0           # a request's body, once its headers came
    small_body_bytes: int = 64 << 10     # enrollment, polls, heartbeats: all but results, work
    max_anonymous: int = 256             # open connections without an agent certificate
    max_per_agent: int = 16              # open connections of one agent certificate
    polls_per_agent: int = 3             # long-polls one agent may wait in at once
    streams_per_agent: int = 2           # work streams one agent may hold open
    revocation_seconds: float = 5.0      # how soon a revoked agent's open streams are closed

    def __post_init__(self) -> None:
        for f in fields(self):
            if not getattr(self, f.name) > 0:
                raise ValueError(f"{f.name} must be positive, not {getattr(self, f.name)!r}")


class ConnectionGuard:
    """Counts open connections by who they are, refuses those over budget, closes idle ones.

    `wrap` turns aiohttp's protocol factory into one whose connections are counted; the
    application tells the guard when each request starts and ends (`started`, `ended`).
    """

    def __init__(self, limits: ConnectionLimits, identify: Identify):
        self.limits = limits
        self._identify = identify
        self._open: dict[object, _Guarded] = {}     # transport -> its connection
        self._anonymous = 0
        self._per_agent: dict[str, int] = {}

    def wrap(self, factory: Callable[[], asyncio.Protocol]) -> Callable[[], asyncio.Protocol]:
        return lambda: _Guarded(self, factory)

    def started(self, transport: object) -> None:
        """A request on this connection is being handled: no deadline runs meanwhile."""
        connection = self._open.get(transport)
        if connection is not None:
            connection.busy += 1
            connection.disarm()

    def ended(self, transport: object) -> None:
        """Its handler returned: the connection is idle again."""
        connection = self._open.get(transport)
        if connection is not None:
            connection.busy -= 1
            if not connection.busy:
                connection.idle()

    def identity(self, transport: Any) -> str | None:
        """The agent id the connection's certificate proved, worked out once when it opened."""
        connection = self._open.get(transport)
        if connection is not None:
            return connection.agent_id
        return self._identify(transport.get_extra_info("ssl_object") if transport else None)

    def counts(self) -> dict[str, int]:
        return {"anonymous": self._anonymous, "agents": sum(self._per_agent.values())}

    def _admit(self, connection: _Guarded, agent_id: str | None) -> tuple[int, str] | None:
        """Count the connection in, or say why not: (status, message)."""
        if agent_id is None:
            if self._anonymous >= self.limits.max_anonymous:
                return 503, "too many connections; retry later"
            self._anonymous += 1
        else:
            held = self._per_agent.get(agent_id, 0)
            if held >= self.limits.max_per_agent:
                return 429, (f"agent {agent_id} has {held} connections open, the most one agent"
                             " may hold; is another copy running with its identity?")
            self._per_agent[agent_id] = held + 1
        self._open[connection.transport] = connection
        return None

    def _release(self, connection: _Guarded) -> None:
        if self._open.pop(connection.transport, None) is None:
            return
        if connection.agent_id is None:
            self._anonymous -= 1
        else:
            self._per_agent[connection.agent_id] -= 1
            if not self._per_agent[connection.agent_id]:
                del self._per_agent[connection.agent_id]


class _Guarded(asyncio.Protocol):
    """One connection: counted, then handed to aiohttp's protocol, or answered and closed."""

    def __init__(self, guard: ConnectionGuard, factory: Callable[[], asyncio.Protocol]):
        self.guard = guard
        self.factory = factory
        self.inner: asyncio.Protocol | None = None
        self.transport: Any = None
        self.agent_id: str | None = None
        self.busy = 0
        self.refusal = b""
        self._deadline: asyncio.TimerHandle | None = None
        self._waiting = "idle"   # or "headers": what the deadline is for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # With TLS this comes after the handshake, so the client certificate is known.
        self.transport = transport
        self.agent_id = self.guard._identify(transport.get_extra_info("ssl_object"))
        refused = self.guard._admit(self, self.agent_id)
        if refused is not None:
            self.refusal = _answer(*refused)
            self.idle()  # answered once the request comes, closed if it does not
            return
        self.inner = self.factory()
        self.inner.connection_made(transport)
        self.idle()

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            if not self.busy and self._waiting == "idle":  # a request begins
                self._waiting = "headers"
                self.arm(self.guard.limits.header_timeout)
            self.inner.data_received(data)
        elif self.refusal and not self.transport.is_closing():
            # Read the start of the request first, so that the client reads the answer.
            self.transport.write(self.refusal)
            self.transport.close()

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.disarm()
        self.guard._release(self)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def idle(self) -> None:
        self._waiting = "idle"
        self.arm(self.guard.limits.idle_timeout)

    def arm(self, seconds: float) -> None:
        self.disarm()
        self._deadline = asyncio.get_running_loop().call_later(seconds, self._expire)

    def disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self.busy or self.transport.is_closing():
            return
        if self.transport.get_write_buffer_size():  # an answer is still on its way out
            self.arm(self.guard.limits.idle_timeout)
            return
        if self.inner is not None and self._waiting == "headers":
            # Idle connections closing is routine (agents keep some); slow requests are not.
            log.info("connection closed", peer=_peer(self.transport),
                     who=f"agent:{self.agent_id}" if self.agent_id else "-",
                     reason=f"no complete request headers in"
                            f" {self.guard.limits.header_timeout:g} s")
        self.transport.close()


class GuardedSite(web.BaseSite):
    """Like aiohttp's TCPSite, with every connection going through a ConnectionGuard."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, ssl_context: ssl.SSLContext,
                 guard: ConnectionGuard):
        super().__init__(runner, ssl_context=ssl_context)
        self._host, self._port, self._guard = host, port, guard

    @property
    def name(self) -> str:
        return f"https://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.wrap(server), self._host, self._port, ssl=self._ssl_context,
            backlog=self._backlog, reuse_address=True,
            ssl_handshake_timeout=HANDSHAKE_SECONDS)


def _answer(status: int, message: str) -> bytes:
    """A whole HTTP answer, for a connection aiohttp never sees."""
    body = json.dumps({"v": PROTOCOL_VERSION, "error": message}).encode()
    reason = {429: "Too Many Requests", 503: "Service Unavailable"}[status]
    return (f"HTTP/1.1 {status} {reason}\r\nServer: {SERVER_NAME}\r\n"
            f"Content-Type: application/json; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            "Retry-After: 5\r\nConnection: close\r\n\r\n").encode() + body


def _peer(transport: Any) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if peer else None
