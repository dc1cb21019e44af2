"""The Graph v1.0 dispatcher: one call (method, path, query, body, caller) in, one reply out.

The HTTP server and `$batch` both go through `dispatch`, so a request behaves the same alone
and inside a batch. Write quotas are enforced here, per app and tenant, before the handler
runs; every write is counted and logged on the tenant for tests to assert on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from .access import Caller
from .directory import Directory
from .errors import GraphError, graph_error_body, method_not_allowed, unknown_segment
from .model import BY_KIND, Record, Resource, directory_object
from .odata import parse_query, sort_key
from .state import Tenant

WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})
JSON_TYPE = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false"


@dataclass
class Call:
    method: str
    path: str  # below /v1.0, e.g. '/users/42'
    params: Mapping[str, str]
    headers: Mapping[str, str]  # lower-case names
    body: Any
    caller: Caller
    base: str  # 'https://127.0.0.121:8443/v1.0'
    request_id: str
    client_request_id: str
    in_batch: bool = False

    @property
    def tenant(self) -> Tenant:
        return self.caller.tenant

    @property
    def directory(self) -> Directory:
        return self.caller.tenant.directory

    @property
    def roles(self) -> frozenset[str]:
        return self.caller.roles

    def context(self, fragment: str) -> str:
        return f"{self.base}/$metadata#{fragment}"

    def json_body(self) -> dict[str, Any]:
        if not isinstance(self.body, dict):
            raise GraphError(400, "BadRequest", "Empty Payload. JSON content expected.")
        # The SDK annotates bodies with their type; Graph accepts and drops the annotation.
        return {k: v for k, v in self.body.items() if k != "@odata.type"}


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: tuple[str, ...]  # literal segments, '{}' captures one
    handler: Handler


class Router:
    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)

    def match(self, method: str, segments: Sequence[str]) -> tuple[Handler, list[str]]:
        allowed_elsewhere = False
        for route in self.routes:
            if len(route.pattern) != len(segments):
                continue
            args = []
            for want, got in zip(route.pattern, segments, strict=True):
                if want == "{}":
                    args.append(got)
                elif want != got:
                    break
            else:
                if route.method == method:
                    return route.handler, args
                allowed_elsewhere = True
        if allowed_elsewhere:
            raise method_not_allowed()
        raise unknown_segment(segments[-1] if segments else "")


def normalize(path: str) -> list[str]:
    """Path segments as the routes name them: `delta()` -> `delta`, `graph.user` ->
    `microsoft.graph.user` (the SDK's short cast), no empty segments."""
    out = []
    for segment in path.split("/"):
        if not segment:
            continue
        if segment.endswith("()"):
            segment = segment[:-2]
        if segment.startswith("graph."):
            segment = "microsoft." + segment
        out.append(segment)
    return out


def dispatch(router: Router, call: Call) -> Reply:
    write = call.method in WRITE_METHODS
    try:
        handler, args = router.match(call.method, normalize(call.path))
        if write:
            _check_quota(call)
        reply = handler(call, *args)
    except GraphError as err:
        reply = error_reply(call, err)
    if write and reply.status != 429:
        _record_write(call, reply.status)
    return reply


def error_reply(call: Call, err: GraphError) -> Reply:
    body = graph_error_body(err.code, err.message, call.request_id, call.client_request_id,
                            err.details)
    return Reply(err.status, body, dict(err.headers))


def _check_quota(call: Call) -> None:
    quota = call.caller.app.quota
    if quota is None:
        return
    wait = quota.retry_after(time.monotonic())
    if wait is None:
        return
    tenant = call.tenant
    tenant.counters["throttled"] += 1
    tenant.counters[f"throttled:{call.caller.app.client_id}"] += 1
    raise GraphError(
        429, "TooManyRequests",
        f"Too many requests from Identifier:{tenant.id}+{call.caller.app.client_id} under "
        "category:throttle.aad.ags.write. Please try again later.",
        headers={"Retry-After": str(wait)},
    )


def _record_write(call: Call, status: int) -> None:
    tenant = call.tenant
    tenant.counters["writes"] += 1
    if 200 <= status < 300:
        tenant.counters["writesSucceeded"] += 1
    tenant.writes.append({
        "method": call.method, "path": call.path, "status": status,
        "clientId": call.caller.app.client_id, "batch": call.in_batch,
    })


# ---- collections --------------------------------------------------------------------------


def collection(
    call: Call,
    resource: Resource,
    source: Callable[[], Iterable[tuple[str, Record]]],
    context: str,
    *,
    typed: bool = False,
) -> Reply:
    """A paged collection answer (value, @odata.context, @odata.nextLink).

    `source` yields (kind, record) for everything the collection holds; the first page filters
    and orders them and fixes the id list behind the $skiptoken cursor.
    """
    directory = call.directory
    query = parse_query(call.params, resource)
    if query.skiptoken is None:
        records = [(kind, record) for kind, record in source()
                   if query.filter is None or query.filter(record)]
        if query.orderby:
            key = sort_key(query.orderby[0])
            records.sort(key=lambda pair: key(pair[1]), reverse=query.orderby[1])
        ids: Sequence[str] | None = [record["id"] for _, record in records]
        total = len(records)
    else:
        ids, total = None, None
    page, token = call.tenant.cursors.page(ids, query.skiptoken, query.top)
    value = []
    for object_id in page:
        kind = directory.kind_of.get(object_id)
        if kind is None:
            found = directory.deleted.get(object_id)
            if found is None:
                continue  # gone since the first page
            kind, record = found[0], found[1]
        else:
            record = directory.objects[kind][object_id]
        if typed:
            value.append(directory_object(kind, record, _select_for(kind, query.select)))
        else:
            value.append(resource.shape(record, query.select))
    body: dict[str, Any] = {"@odata.context": call.context(context)}
    if query.count and total is not None:
        body["@odata.count"] = total
    if token:
        body["@odata.nextLink"] = next_link(call, {"$skiptoken": token})
    body["value"] = value
    return Reply(200, body)


def _select_for(kind: str, select: list[str] | None) -> list[str] | None:
    """$select on a mixed collection: each object gets the selected properties its type has."""
    if not select:
        return None
    known = BY_KIND[kind].properties
    return [name for name in select if name in known] or ["id"]


def next_link(call: Call, replace: Mapping[str, str]) -> str:
    params = {k: v for k, v in call.params.items() if k not in ("$skiptoken", "$deltatoken")}
    params.update(replace)
    query = urlencode(params, safe="$(),'")
    return f"{call.base}{call.path}?{query}"


def entity(call: Call, resource: Resource, record: Record, context: str, status: int = 200,
           select: list[str] | None = None) -> Reply:
    body = {"@odata.context": call.context(context), **resource.shape(record, select)}
    return Reply(status, body)
