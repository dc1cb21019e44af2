"""The admin API under /_emulator/ that tests and benchmarks drive (through
`fixture.EmulatorAdmin`): tenants, app registrations, bulk seeds, out-of-band changes, state
read-back, write quotas, injected faults, delta token expiry.

Every call needs the header `X-Emulator-Token` with the token the process was started with, so
nothing else on the machine can reach it by accident. Bodies and answers are JSON.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives import serialization

from .directory import Directory
from .faults import Faults
from .model import new_id
from .seed import SeedError, change_members, seed
from .signin import certificate_from_pem
from .state import (
    TOKEN_EXCHANGE_AUDIENCE,
    App,
    EmulatorState,
    FederatedCredential,
    Tenant,
    WriteQuota,
)

TOKEN_HEADER = "X-Emulator-Token"
TOKEN_ENV = "GRAPH_EMULATOR_ADMIN_TOKEN"  # how the process gets the token (not argv)
STATE_KEY = web.AppKey("state", EmulatorState)
FAULTS_KEY = web.AppKey("faults", Faults)
TOKEN_KEY = web.AppKey("admin_token", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_admin_app(state: EmulatorState, faults: Faults, token: str) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=1024 ** 3)
    app[STATE_KEY] = state
    app[FAULTS_KEY] = faults
    app[TOKEN_KEY] = token
    app.router.add_get("/health", health)
    app.router.add_post("/tenants", create_tenant)
    app.router.add_patch("/tenants/{tid}", update_tenant)
    app.router.add_post("/tenants/{tid}/apps", register_app)
    app.router.add_patch("/tenants/{tid}/apps/{cid}", update_app)
    app.router.add_post("/tenants/{tid}/seed", seed_tenant)
    app.router.add_patch("/tenants/{tid}/objects/{oid}", update_object)
    app.router.add_delete("/tenants/{tid}/objects/{oid}", delete_object)
    app.router.add_post("/tenants/{tid}/groups/{gid}/members", group_members)
    app.router.add_get("/tenants/{tid}/users", list_users)
    app.router.add_get("/tenants/{tid}/groups", list_groups)
    app.router.add_get("/tenants/{tid}/deleted", list_deleted)
    app.router.add_get("/tenants/{tid}/invitations", list_invitations)
    app.router.add_get("/tenants/{tid}/counters", counters)
    app.router.add_get("/tenants/{tid}/writes", writes)
    app.router.add_post("/tenants/{tid}/delta/expire", expire_delta)
    app.router.add_post("/faults", add_fault)
    app.router.add_get("/faults", list_faults)
    app.router.add_delete("/faults", clear_faults)
    return app


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(given.encode(), request.app[TOKEN_KEY].encode()):
        return web.json_response({"error": "missing or wrong X-Emulator-Token"}, status=401)
    try:
        return await handler(request)
    except (SeedError, ValueError, KeyError, TypeError) as exc:
        return web.json_response({"error": f"{type(exc).__name__}: {exc}"}, status=400)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "tenants": len(request.app[STATE_KEY].tenants)})


async def create_tenant(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    body = await request.json()
    tenant_id = str(body.get("id") or new_id()).lower()
    if tenant_id in state.tenants:
        raise ValueError(f"tenant {tenant_id} exists")
    initial = str(body.get("initialDomain") or f"t{tenant_id[:8]}.onmicrosoft.com").lower()
    domains = [initial, *(str(d).lower() for d in body.get("verifiedDomains") or [])]
    for domain in domains:
        if domain in state.by_domain:
            raise ValueError(f"domain {domain} is already verified in another tenant")
    tenant = Tenant(
        id=tenant_id,
        display_name=str(body.get("displayName") or initial.split(".")[0]),
        initial_domain=initial,
        verified_domains=list(dict.fromkeys(domains)),
        directory=Directory(initial),
    )
    if body.get("tokenLifetime"):
        tenant.token_lifetime = int(body["tokenLifetime"])
    state.add_tenant(tenant)
    return web.json_response(_describe_tenant(tenant), status=201)


async def update_tenant(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await request.json()
    if "tokenLifetime" in body:
        tenant.token_lifetime = int(body["tokenLifetime"])
    return web.json_response(_describe_tenant(tenant))


async def register_app(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    body = await request.json()
    client_id = str(body.get("clientId") or new_id())
    if client_id in tenant.apps:
        raise ValueError(f"app {client_id} is already registered in tenant {tenant.id}")
    app = App(
        client_id=client_id,
        display_name=str(body.get("displayName") or "app"),
        service_principal_id=new_id(),
        secrets=[str(s) for s in body.get("secrets") or []],
        certificates=[certificate_from_pem(pem) for pem in body.get("certificates") or []],
        federated=[_federated(spec) for spec in body.get("federatedCredentials") or []],
        roles={str(r) for r in body.get("roles") or []},
    )
    tenant.apps[client_id] = app
    return web.json_response(_describe_app(app), status=201)


async def update_app(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    app = tenant.apps[request.match_info["cid"]]
    body = await request.json()
    if "roles" in body:
        app.roles = {str(r) for r in body["roles"]}
    if "secrets" in body:
        app.secrets = [str(s) for s in body["secrets"]]
    if "writeQuota" in body:
        spec = body["writeQuota"]
        app.quota = (WriteQuota(int(spec["limit"]), float(spec["windowSeconds"]))
                     if spec else None)
    return web.json_response(_describe_app(app))


async def seed_tenant(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    return web.json_response(seed(tenant, await request.json()))


async def update_object(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    kind, _ = directory.get_any(request.match_info["oid"])
    record = directory.update(kind, request.match_info["oid"], await request.json())
    return web.json_response(record)


async def delete_object(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    object_id = request.match_info["oid"]
    if object_id in directory.deleted:
        directory.hard_delete(directory.deleted[object_id][0], object_id)
    else:
        kind, _ = directory.get_any(object_id)
        if request.query.get("permanent") == "true" or kind not in ("user", "group"):
            directory.hard_delete(kind, object_id)
        else:
            directory.soft_delete(kind, object_id)
    return web.Response(status=204)


async def group_members(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    body = await request.json()
    change_members(directory, request.match_info["gid"], body.get("add") or [],
                   body.get("remove") or [])
    return web.Response(status=204)


async def list_users(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    return web.json_response({"value": list(directory.users.values())})


async def list_groups(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    value = [{**group, "members": list(directory.members.get(group_id, {}))}
             for group_id, group in directory.groups.items()]
    return web.json_response({"value": value})


async def list_deleted(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    value = [{"kind": kind, **record} for kind, record, _ in directory.deleted.values()]
    return web.json_response({"value": value})


async def list_invitations(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    value = [{"id": i.id, "invitedUserEmailAddress": i.email, "userId": i.user_id,
              "sendInvitationMessage": i.send_message, "inviteRedirectUrl": i.redirect_url,
              "invitedUserType": i.user_type} for i in tenant.invitations]
    return web.json_response({"value": value})


async def counters(request: web.Request) -> web.Response:
    tenant = _tenant(request)
    out: dict[str, Any] = {"writes": 0, "writesSucceeded": 0, "throttled": 0}
    out.update(tenant.counters)
    out["users"] = len(tenant.directory.users)
    out["groups"] = len(tenant.directory.groups)
    out["deleted"] = len(tenant.directory.deleted)
    out["invitationsSent"] = sum(1 for i in tenant.invitations if i.send_message)
    if request.query.get("reset") == "true":
        tenant.counters.clear()
        tenant.writes.clear()
    return web.json_response(out)


async def writes(request: web.Request) -> web.Response:
    return web.json_response({"value": list(_tenant(request).writes)})


async def expire_delta(request: web.Request) -> web.Response:
    directory = _tenant(request).directory
    body = await request.json() if request.can_read_body else {}
    directory.delta_generation += 1
    directory.delta_reset = bool(body.get("reset", False))
    return web.Response(status=204)


async def add_fault(request: web.Request) -> web.Response:
    rule = request.app[FAULTS_KEY].add(await request.json())
    return web.json_response(rule.describe(), status=201)


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"value": [r.describe() for r in request.app[FAULTS_KEY].rules]})


async def clear_faults(request: web.Request) -> web.Response:
    request.app[FAULTS_KEY].clear()
    return web.Response(status=204)


def _tenant(request: web.Request) -> Tenant:
    tenant = request.app[STATE_KEY].tenant(request.match_info["tid"])
    if tenant is None:
        raise web.HTTPNotFound(text=f"no tenant {request.match_info['tid']}")
    return tenant


def _federated(spec: dict[str, Any]) -> FederatedCredential:
    keys = [serialization.load_pem_public_key(pem.encode()) for pem in spec["publicKeys"]]
    return FederatedCredential(
        name=str(spec.get("name") or "federated"),
        issuer=str(spec["issuer"]),
        subject=str(spec["subject"]),
        audiences=[str(a) for a in spec.get("audiences") or [TOKEN_EXCHANGE_AUDIENCE]],
        keys=keys,
    )


def _describe_tenant(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "displayName": tenant.display_name,
            "initialDomain": tenant.initial_domain, "verifiedDomains": tenant.verified_domains,
            "tokenLifetime": tenant.token_lifetime}


def _describe_app(app: App) -> dict[str, Any]:
    return {"clientId": app.client_id, "displayName": app.display_name,
            "servicePrincipalId": app.service_principal_id, "roles": sorted(app.roles),
            "certificates": len(app.certificates), "secrets": len(app.secrets),
            "federatedCredentials": len(app.federated),
            "writeQuota": ({"limit": app.quota.limit, "windowSeconds": app.quota.window}
                           if app.quota else None)}
