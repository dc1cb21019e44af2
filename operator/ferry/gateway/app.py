"""The gateway's routes (see ferry_agent.protocol): who may call them, what they accept, and
one log line per request that never holds a token, work arguments or results."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import WSCloseCode, WSMsgType, web

from ferry.errors import FerryError
from ferry.gateway.ca import AgentCA
from ferry.gateway.connections import ConnectionGuard, ConnectionLimits
from ferry.gateway.enrollment import EnrollmentRefused, check_environment, enroll
from ferry.gateway.job_auth import (
    ROLE_JOB,
    ROLE_OPERATOR,
    CredentialRefused,
    JobCredential,
    verify,
)
from ferry.gateway.queue import QueueError, ResultsBacklog, WorkQueue
from ferry.gateway.relay import relay, routes_with_keys
from ferry.gateway.tls import peer_agent_id
from ferry.state.agents import AgentLimitReached
from ferry.state.rows import AgentInfo
from ferry.state.store import StateStore
from ferry_agent.directory.guid import normalize_guid
from ferry_agent.protocol import (
    MAX_BODY_BYTES,
    OPERATIONS,
    POLL_WAIT_SECONDS,
    PROTOCOL_VERSION,
    EnrollRequest,
    Heartbeat,
    PasswordChange,
    PollRequest,
    ProtocolError,
    ResultsRequest,
    WorkRequest,
    WorkResult,
    as_strings,
    decode,
    encode,
)

log = structlog.get_logger("ferry.gateway")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MESSAGE_LIMIT = 300        # error texts echo field names and values: keep them short
_AGENTS_CACHE_SECONDS = 5.0  # "has this environment any agent" for submits


@dataclass
class Services:
    """What the handlers share: the state store, the CA, the queue and the key that job
    credentials are verified with."""

    store: StateStore
    ca: AgentCA
    queue: WorkQueue
    job_key: Any                  # the job signing key's public half (job_auth.verify)
    trust_bundle: str             # PEM handed to agents at enrollment to verify the gateway
    agents_known: dict[str, float] = field(default_factory=dict)  # environment -> until when
    token_secrets: Any = None     # SecretTokens when tokens may be kept as Kubernetes Secrets
    agent_stream: bool = True     # serve the work stream (WebSocket); off: agents long-poll
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    guard: ConnectionGuard | None = None   # told when requests start and end (idle timeout)
    held: dict[tuple[str, str], int] = field(default_factory=dict)  # (agent, kind) -> open
    streams: dict[str, set[web.WebSocketResponse]] = field(default_factory=dict)  # by agent
    # (agent | device, outcome) since this process started (metrics)
    enrollments: Counter[tuple[str, str]] = field(default_factory=Counter)


SERVICES = web.AppKey("services", Services)


class Refusal(FerryError):
    """An answer other than 200: status, a short message for the caller, extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        self.status = status
        self.message = message[:_MESSAGE_LIMIT]
        self.headers = headers or {}
        super().__init__(message)


def build_app(services: Services) -> web.Application:
    """The aiohttp application; bodies above MAX_BODY_BYTES (most routes: far less) get 413."""
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_outcome])
    app[SERVICES] = services
    app.router.add_post("/v1/enroll", _enroll)
    app.router.add_post("/v1/agent/heartbeat", _heartbeat)
    app.router.add_post("/v1/agent/poll", _poll)
    app.router.add_get("/v1/agent/stream", _stream)
    app.router.add_post("/v1/agent/result", _result)
    app.router.add_post("/v1/agent/password-routes", _password_routes)
    app.router.add_post("/v1/agent/password", _password)
    app.router.add_post("/v1/work", _submit)
    app.router.add_post("/v1/work/{work_id}/results", _results)
    app.router.add_get("/v1/environments/{environment}/agents", _environment_agents)
    app.router.add_get("/healthz", _health)
    from ferry.gateway.devices import add_device_routes  # it builds on this module's parts

    add_device_routes(app)
    return app


# -- outcome: errors as short JSON, one log line per request -----------------------------------

@web.middleware
async def _outcome(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    request["who"] = "-"
    request["log"] = {}
    guard = request.app[SERVICES].guard
    if guard is not None:
        guard.started(request.transport)
    try:
        response = await handler(request)
    except Refusal as exc:
        response = _error(exc.status, exc.message, exc.headers)
        request["log"]["error"] = exc.message
    except QueueError as exc:
        headers = {"Retry-After": "1" if isinstance(exc, ResultsBacklog) else "5"} \
            if exc.status == 429 else {}
        response = _error(exc.status, str(exc), headers)
        request["log"]["error"] = str(exc)
    except web.HTTPException as exc:  # aiohttp's own: unknown route, method, body too large
        response = _error(exc.status, exc.reason.lower())
    except asyncio.CancelledError:
        log.info("request", method=request.method, path=request.path, status=499,
                 who=request["who"], ms=_ms(started), peer=request.remote, **request["log"])
        raise
    except Exception as exc:
        log.exception("request failed", method=request.method, path=request.path,
                      error=type(exc).__name__)
        response = _error(500, "internal error")
    finally:
        if guard is not None:
            guard.ended(request.transport)
    log.info("request", method=request.method, path=request.path, status=response.status,
             who=request["who"], ms=_ms(started), peer=request.remote, **request["log"])
    kind = _ENROLLMENTS.get(request.path)
    if kind is not None and request.method == "POST":
        request.app[SERVICES].enrollments[(kind, enrollment_outcome(response.status))] += 1
    return response


# Enrollment routes -> the kind of agent (metrics: ferry_gateway_enrollments_total).
_ENROLLMENTS = {"/v1/enroll": "agent", "/v1/device/enroll": "device"}


def enrollment_outcome(status: int) -> str:
    """An enrollment's outcome, by its answer's status."""
    return {200: "enrolled", 403: "refused", 409: "limit"}.get(
        status, "invalid" if status < 500 else "error")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    response = web.json_response({"v": PROTOCOL_VERSION, "error": message[:_MESSAGE_LIMIT]},
                                 status=status, headers=headers)
    if status in (408, 413):
        response.force_close()  # the rest of the body is not worth reading
    return response


def _ok(body: dict[str, Any]) -> web.Response:
    return web.json_response({**body, "v": PROTOCOL_VERSION})


def _ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


async def _read(request: web.Request, kind: type[Any],
                limit: int = MAX_BODY_BYTES) -> tuple[Any, int]:
    """The body as a protocol message, and its size in bytes; at most `limit` bytes are read,
    within the body timeout."""
    # aiohttp reads a body only when asked: a declared length over the limit is refused
    # unread, and a streamed (chunked) body is read no further than the limit.
    if (request.content_length or 0) > limit:
        raise Refusal(413, f"the body is larger than {limit} bytes")
    seconds = request.app[SERVICES].connections.body_timeout
    raw = bytearray()
    try:
        async with asyncio.timeout(seconds):
            async for chunk in request.content.iter_any():
                raw += chunk
                if len(raw) > limit:
                    raise Refusal(413, f"the body is larger than {limit} bytes")
    except TimeoutError:
        raise Refusal(408, f"the body did not arrive within {seconds:g} s") from None
    except web.RequestPayloadError:
        raise Refusal(400, "the body could not be read (broken chunked encoding?)") from None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        raise Refusal(400, "the body is not valid JSON") from None
    try:
        return decode(kind, data), len(raw)
    except ProtocolError as exc:
        raise Refusal(400, str(exc)) from None


# -- authentication ----------------------------------------------------------------------------

async def _agent(request: web.Request) -> AgentInfo:
    """The enrolled, unrevoked agent whose certificate this connection presented."""
    services = request.app[SERVICES]
    agent_id = peer_id(request)
    if agent_id is None:
        raise Refusal(401, "client certificate required")
    agent = await asyncio.to_thread(services.store.agents.get, agent_id)
    if agent is None or agent.revoked:
        if agent is not None:
            services.queue.release_agent(agent.id, "agent revoked")
        raise Refusal(403, "forbidden")
    request["who"] = f"agent:{agent.id}"
    return agent


def peer_id(request: web.Request) -> str | None:
    """The agent id this request's connection proved with its certificate, or None."""
    services = request.app[SERVICES]
    transport = request.transport
    if services.guard is not None:  # it identified the connection when it opened
        return services.guard.identity(transport)
    return peer_agent_id(transport.get_extra_info("ssl_object") if transport else None,
                         services.ca)


def _job(request: web.Request, roles: tuple[str, ...] = (ROLE_JOB,)) -> JobCredential:
    """The job credential presented as the bearer token (job_auth): signed by the job
    signing key, unexpired, and of one of `roles`."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Refusal(401, "unauthorized", {"WWW-Authenticate": "Bearer"})
    try:
        credential = verify(request.app[SERVICES].job_key, token.strip())
    except CredentialRefused as exc:
        request["log"]["refused"] = exc.reason
        raise Refusal(401, "unauthorized", {"WWW-Authenticate": "Bearer"}) from None
    request["who"] = f"{credential.role}:{credential.subject}"[:200]
    if credential.role not in roles:
        raise Refusal(403, f"a credential of role {credential.role} may not use {request.path}")
    return credential


def _bound(credential: JobCredential, environment: str) -> None:
    """403 naming the environment when the credential is not bound to it."""
    if not credential.binds(environment):
        raise Refusal(403, f"this credential ({credential.subject}) is not bound to environment"
                      f" {environment}")


# -- agent routes ------------------------------------------------------------------------------

async def _enroll(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    # Before any credential: no stranger gets to make the gateway hold more than this.
    message, _ = await _read(request, EnrollRequest, services.connections.small_body_bytes)
    if services.token_secrets is not None:
        await asyncio.to_thread(services.token_secrets.claim, message.token)
    try:
        response, agent = await asyncio.to_thread(enroll, services.store, services.ca, message,
                                                  services.trust_bundle)
    except ProtocolError as exc:
        raise Refusal(400, str(exc)) from None
    except EnrollmentRefused as exc:
        request["log"] = {"refused": f"token {exc.reason}"}
        raise Refusal(403, "enrollment refused") from None
    except AgentLimitReached as exc:
        # Only a valid token gets here, so saying why leaks nothing to strangers.
        raise Refusal(409, str(exc)) from None
    request["who"] = f"agent:{agent.id}"
    request["log"] = {"enrolled": agent.name, "environment": agent.environment,
                      "host": agent.host}
    return _ok(encode(response))


async def _heartbeat(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await _agent(request)
    beat, _ = await _read(request, Heartbeat, services.connections.small_body_bytes)
    try:
        leases = as_strings(beat.leases, "Heartbeat.leases")
    except ProtocolError as exc:
        raise Refusal(400, str(exc)) from None
    services.queue.heartbeat(agent.id, leases)
    await asyncio.to_thread(services.store.agents.seen, agent.id, _printable(beat.host, 255),
                            _printable(beat.version, 40))
    return _ok({"heartbeatSeconds": services.queue.limits.heartbeat_seconds})


async def _poll(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await _agent(request)
    poll, _ = await _read(request, PollRequest, services.connections.small_body_bytes)
    with _holding(services, agent, "long-polls", services.connections.polls_per_agent):
        item = await _lease(request, agent, poll)
    return _ok({"work": None if item is None else encode(item)})


async def _stream(request: web.Request) -> web.StreamResponse:
    """The work stream: a WebSocket on which each PollRequest message gets one answer, as
    /v1/agent/poll would give it, without a new request per item."""
    services = request.app[SERVICES]
    if not services.agent_stream:
        raise Refusal(404, "not found")
    agent = await _agent(request)  # 401/403 before the upgrade, like every agent route
    with _holding(services, agent, "streams", services.connections.streams_per_agent):
        ws = web.WebSocketResponse(heartbeat=POLL_WAIT_SECONDS, max_msg_size=64 * 1024)
        await ws.prepare(request)
        open_streams = services.streams.setdefault(agent.id, set())
        open_streams.add(ws)  # so that revoking the agent closes it (close_revoked_streams)
        try:
            served = await _serve_stream(request, agent, ws)
        finally:
            open_streams.discard(ws)
            if not open_streams:
                services.streams.pop(agent.id, None)
    request["log"] = {**request.get("log", {}), "stream": "closed", "items": served}
    return ws


async def _serve_stream(request: web.Request, agent: AgentInfo,
                        ws: web.WebSocketResponse) -> int:
    """Answer the stream's PollRequests until it closes; how many work items it carried."""
    services = request.app[SERVICES]
    served = 0
    async for message in ws:
        if message.type is not WSMsgType.TEXT:
            break
        try:
            poll = decode(PollRequest, json.loads(message.data))
            item = await _lease(request, agent, poll)
        except (ValueError, ProtocolError) as exc:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION,
                           message=str(exc)[:_MESSAGE_LIMIT].encode())
            break
        except Refusal as exc:
            await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=exc.message.encode())
            break
        try:
            await ws.send_json({"v": PROTOCOL_VERSION,
                                "work": None if item is None else encode(item)})
        except (ConnectionError, RuntimeError):
            if item is not None:  # the agent is gone: nobody will work on this lease
                services.queue.give_back(item.lease_id)
            break
        served += item is not None
    return served


@contextlib.contextmanager
def _holding(services: Services, agent: AgentInfo, kind: str, limit: int) -> Iterator[None]:
    """Count one more long-poll or stream of the agent while it lasts; 429 past `limit`."""
    key = (agent.id, kind)
    held = services.held.get(key, 0)
    if held >= limit:
        raise Refusal(429, f"agent {agent.id} has {held} {kind} open, the most one agent may"
                      " hold; is another copy running with its identity?", {"Retry-After": "5"})
    services.held[key] = held + 1
    try:
        yield
    finally:
        services.held[key] -= 1
        if not services.held[key]:
            del services.held[key]


async def close_revoked_streams(services: Services) -> int:
    """Close the open work streams of agents revoked since (possibly by another process, via
    the state store); how many were closed."""
    closing = []
    for agent_id in list(services.streams):
        agent = await asyncio.to_thread(services.store.agents.get, agent_id)
        if agent is not None and not agent.revoked:
            continue
        services.queue.release_agent(agent_id, "agent revoked")
        streams = list(services.streams.get(agent_id, ()))
        closing += [ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"agent revoked")
                    for ws in streams]
        log.info("streams closed", who=f"agent:{agent_id}", reason="agent revoked",
                 streams=len(streams))
    # Together: each close waits (a little) for the agent's answer to it.
    await asyncio.gather(*closing, return_exceptions=True)
    return len(closing)


async def _lease(request: web.Request, agent: AgentInfo, poll: PollRequest) -> Any:
    """The next work item for the agent's environment within poll.wait seconds, or None."""
    services = request.app[SERVICES]
    if poll.wait < 0:
        raise Refusal(400, "PollRequest.wait: must not be negative")
    # The environment is the one the agent enrolled for, never one it names.
    item = await services.queue.lease(agent.id, agent.environment, float(poll.wait))
    if item is None:
        return None
    # Revoked while it waited: the work goes back before it ever reaches the agent.
    try:
        current = await asyncio.to_thread(services.store.agents.get, agent.id)
    except BaseException:  # the agent hung up, or no answer: nobody will work on this lease
        services.queue.give_back(item.lease_id)
        raise
    if current is None or current.revoked:
        services.queue.release_agent(agent.id, "agent revoked")
        raise Refusal(403, "forbidden")
    request["log"] = {"work": item.work_id, "operation": item.operation,
                      "attempt": item.attempt}
    return item


async def _result(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    agent = await _agent(request)
    result, size = await _read(request, WorkResult)
    if result.seq < 0:
        raise Refusal(400, "WorkResult.seq: must not be negative")
    request["log"] = {"work": result.work_id, "seq": result.seq, "final": result.final,
                      "ok": result.ok}
    accepted = services.queue.accept(agent.id, result, size)
    return _ok({"accepted": accepted})


async def _password_routes(request: web.Request) -> web.Response:
    """The pairs that want this DC agent's password changes, with their targets' keys."""
    services = request.app[SERVICES]
    agent = await _agent(request)
    routes = await asyncio.to_thread(routes_with_keys, services.store, agent.environment)
    request["log"] = {"routes": len(routes)}
    return _ok({"routes": routes})


async def _password(request: web.Request) -> web.Response:
    """A DC agent's password change, sealed to the targets' agents: relayed to joined users."""
    services = request.app[SERVICES]
    agent = await _agent(request)
    change, _ = await _read(request, PasswordChange, services.connections.small_body_bytes)
    try:
        change = PasswordChange(normalize_guid(change.source), change.sealed)
    except (ValueError, AttributeError) as exc:
        raise Refusal(400, f"PasswordChange.source: {exc}") from None
    with _holding(services, agent, "password relays", services.connections.polls_per_agent):
        results = await relay(services.store, services.queue, agent.environment, change,
                              lambda environment: _has_agents(services, environment))
    # Which pairs and how, never the password or its ciphertext.
    request["log"] = {"source": change.source,
                      "relayed": {r.pair: r.outcome for r in results}}
    return _ok({"results": [r.encode() for r in results]})


# -- job routes --------------------------------------------------------------------------------

async def _submit(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    credential = _job(request)
    work, _ = await _read(request, WorkRequest)
    try:
        check_environment(work.environment)
    except ValueError as exc:
        raise Refusal(400, f"WorkRequest.environment: {exc}") from None
    _bound(credential, work.environment)
    if work.operation not in OPERATIONS:
        raise Refusal(400, f"WorkRequest.operation: unknown operation {work.operation!r}")
    if not await _has_agents(services, work.environment):
        raise Refusal(409, f"no agent is enrolled for environment {work.environment}; create a"
                      f" token with `ferry agent token create {work.environment}`")
    work_id = services.queue.submit(work.environment, work.operation, work.arguments,
                                    owner=credential.subject)
    request["log"] = {"work": work_id, "operation": work.operation,
                      "environment": work.environment}
    return _ok({"workId": work_id})


async def _results(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    credential = _job(request)
    ask, _ = await _read(request, ResultsRequest)
    if ask.after < -1 or ask.wait < 0 or ask.generation < 0:
        raise Refusal(400, "ResultsRequest: after >= -1, wait >= 0 and generation >= 0")
    origin = services.queue.origin(request.match_info["work_id"])
    if origin is not None:  # unknown work: the queue's own 404
        _bound(credential, origin[0])
        if origin[1] != credential.subject:
            raise Refusal(403, f"this work was submitted by another run than"
                          f" {credential.subject}")
    progress = await services.queue.progress(request.match_info["work_id"], ask.after,
                                             ask.generation, float(ask.wait))
    request["log"] = {"state": progress.state, "generation": progress.generation,
                      "chunks": len(progress.chunks)}
    return _ok(encode(progress))


async def _environment_agents(request: web.Request) -> web.Response:
    """The agents of one environment, whether each is connected (for the operator) and its
    public key (for a Job sealing secrets to them)."""
    services = request.app[SERVICES]
    credential = _job(request, (ROLE_OPERATOR, ROLE_JOB))
    environment = request.match_info["environment"]
    if credential.role != ROLE_OPERATOR:  # the operator checks every environment's agents
        _bound(credential, environment)
    agents = await asyncio.to_thread(services.store.agents.enrolled, environment)
    keys = await asyncio.to_thread(services.store.agents.public_keys, environment)
    horizon = time.time() - services.queue.limits.agent_timeout
    return _ok({"v": PROTOCOL_VERSION, "agents": [
        {"id": a.id, "name": a.name, "host": a.host, "version": a.version,
         "publicKey": keys.get(a.id),   # what secrets for this agent are sealed to
         "lastSeen": a.last_seen.isoformat() if a.last_seen else None,
         "connected": not a.revoked and a.last_seen is not None
         and a.last_seen.timestamp() >= horizon}
        for a in agents if not a.revoked]})


async def _health(_request: web.Request) -> web.Response:
    return _ok({"v": PROTOCOL_VERSION, "status": "ok"})


async def _has_agents(services: Services, environment: str) -> bool:
    # Jobs submit many calls in a row: a positive answer holds for a few seconds.
    now = time.monotonic()
    if services.agents_known.get(environment, 0.0) > now:
        return True
    found = await asyncio.to_thread(services.store.agents.any_active, environment)
    if found:
        services.agents_known[environment] = now + _AGENTS_CACHE_SECONDS
    return found


def _printable(text: str, limit: int) -> str:
    return "".join(c for c in text if c.isprintable())[:limit]
