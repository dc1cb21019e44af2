"""The HTTPS server: sign-in (`/{tenant}/...`) and Graph (`/v1.0/...`) on one address, the
admin API under `/_emulator/`.

Every answer carries `request-id` and `client-request-id` (the client's own when it sent one),
as Graph's do; sign-in answers also `x-ms-request-id`. Injected faults are applied here, before
authentication, to whole HTTP requests.
"""

from __future__ import annotations

import json
import socket
import struct
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from . import deleted, delta, groups, invitations, readonly, signin, users
from .access import authenticate
from .admin import build_admin_app
from .batch import run_batch
from .errors import GraphError, TokenError, graph_error_body, token_error_body
from .faults import GRAPH_CODES, TOKEN_CODES, FaultRule, Faults
from .graph import JSON_TYPE, Call, Reply, Router, dispatch, normalize
from .state import EmulatorState

ROUTER = Router([
    *delta.ROUTES,  # before users/groups: `/users/delta` would otherwise look like an id
    *users.ROUTES,
    *groups.ROUTES,
    *readonly.ROUTES,
    *deleted.ROUTES,
    *invitations.ROUTES,
])
STATE_KEY = web.AppKey("state", EmulatorState)
FAULTS_KEY = web.AppKey("faults", Faults)
IDS_KEY = "graph_emulator_ids"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(state: EmulatorState, faults: Faults, admin_token: str) -> web.Application:
    app = web.Application(middlewares=[_ids_and_faults], client_max_size=64 * 1024 ** 2)
    app[STATE_KEY] = state
    app[FAULTS_KEY] = faults
    app.add_subapp("/_emulator/", build_admin_app(state, faults, admin_token))
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/{tenant}/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", keys)
    app.router.add_get("/{tenant}/discovery/keys", keys)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.router.add_route("*", "/v1.0/{tail:.*}", graph)
    return app


@web.middleware
async def _ids_and_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = str(uuid.uuid4())
    client_request_id = request.headers.get("client-request-id") or request_id
    request[IDS_KEY] = (request_id, client_request_id)
    rule = None
    if not request.path.startswith("/_emulator/"):
        rule = request.app[FAULTS_KEY].take(request.method, request.path)
    if rule is not None and rule.action == "reset":
        _reset(request)
        return web.Response(status=500)  # never reaches the client: the connection is gone
    response = _fault_response(request, rule) if rule else await handler(request)
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = client_request_id
    if not request.path.startswith("/v1.0/"):
        response.headers["x-ms-request-id"] = request_id
    return response


def _reset(request: web.Request) -> None:
    """Close the TCP connection with a RST (linger 0) instead of answering."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _fault_response(request: web.Request, rule: FaultRule) -> web.Response:
    request_id, client_request_id = request[IDS_KEY]
    headers = {"Retry-After": str(rule.retry_after)} if rule.retry_after is not None else {}
    if request.path.startswith("/v1.0/"):
        code, message = GRAPH_CODES[rule.status]
        body = graph_error_body(code, message, request_id, client_request_id)
    else:
        error, aadsts = TOKEN_CODES[rule.status]
        body = token_error_body(TokenError(rule.status, error, aadsts,
                                           "The service is temporarily unavailable."),
                                request_id, client_request_id)
    return _json(rule.status, body, headers)


async def openid_configuration(request: web.Request) -> web.Response:
    tenant = request.app[STATE_KEY].tenant(request.match_info["tenant"])
    if tenant is None:
        return _token_error(request, _no_tenant(request.match_info["tenant"]))
    return web.json_response(signin.openid_configuration(f"https://{request.host}", tenant))


async def keys(request: web.Request) -> web.Response:
    return web.json_response(signin.jwks(request.app[STATE_KEY]))


async def token(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        body = signin.issue_token(
            request.app[STATE_KEY], request.match_info["tenant"],
            {k: str(v) for k, v in form.items()}, request.headers.get("Authorization"),
            request.host,
        )
    except TokenError as err:
        return _token_error(request, err)
    return web.json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def graph(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    request_id, client_request_id = request[IDS_KEY]
    try:
        caller = authenticate(state, request.headers.get("Authorization"))
        body = await _read_json(request)
    except GraphError as err:
        return _json(err.status, graph_error_body(err.code, err.message, request_id,
                                                  client_request_id), err.headers)
    path = request.path[len("/v1.0"):]
    call = Call(
        method=request.method, path=path, params=dict(request.query),
        headers={k.lower(): v for k, v in request.headers.items()}, body=body, caller=caller,
        base=f"https://{request.host}/v1.0", request_id=request_id,
        client_request_id=client_request_id,
    )
    if normalize(path) == ["$batch"] and request.method == "POST":
        try:
            reply = run_batch(ROUTER, request.app[FAULTS_KEY], call)
        except GraphError as err:
            reply = Reply(err.status, graph_error_body(err.code, err.message, request_id,
                                                       client_request_id))
    else:
        reply = dispatch(ROUTER, call)
    return _json(reply.status, reply.body, reply.headers)


async def _read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError:
        raise GraphError(
            400, "BadRequest",
            "Unable to read JSON request payload. Please ensure Content-Type header is set and "
            "payload is of valid JSON format.",
        ) from None


def _json(status: int, body: dict[str, Any] | None, headers: dict[str, str]) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.Response(status=status, body=json.dumps(body, separators=(",", ":")).encode(),
                        headers={"Content-Type": JSON_TYPE, **headers})


def _token_error(request: web.Request, err: TokenError) -> web.Response:
    request_id, client_request_id = request[IDS_KEY]
    body = token_error_body(err, request_id, client_request_id)
    return web.json_response(body, status=err.status,
                             headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _no_tenant(key: str) -> TokenError:
    return TokenError(
        400, "invalid_tenant", 90002,
        f"Tenant '{key}' not found. Check to make sure you have the correct tenant ID and are "
        "signing into the correct cloud.",
    )
