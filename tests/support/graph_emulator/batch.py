"""POST /$batch (https://learn.microsoft.com/graph/json-batching): up to 20 requests, each
`{id, method, url, headers?, body?, dependsOn?}`, answered as `{"responses": [{id, status,
headers, body}]}` in request order.

Each inner request runs through the same dispatcher as a direct request (permissions, write
quota, injected status faults), so a throttled inner request answers 429 with Retry-After in
its own headers while the batch itself is 200. A request whose dependency failed answers 424.
URLs may be relative (`/users`, `users`) or absolute (msgraph-core sends
`https://host/v1.0/users`).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .errors import GraphError, graph_error_body
from .faults import GRAPH_CODES, Faults
from .graph import JSON_TYPE, Call, Reply, Router, dispatch, error_reply

MAX_REQUESTS = 20


def run_batch(router: Router, faults: Faults, outer: Call) -> Reply:
    body = outer.json_body()
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise GraphError(400, "BadRequest", "Invalid batch payload format.")
    if len(requests) > MAX_REQUESTS:
        raise GraphError(400, "BadRequest",
                         f"The number of requests in the batch exceeds the limit of "
                         f"{MAX_REQUESTS}.")
    ids = [str(item.get("id", "")) if isinstance(item, dict) else "" for item in requests]
    if any(not i for i in ids) or len({i.lower() for i in ids}) != len(ids):
        raise GraphError(400, "BadRequest", "Batch request ids must be present and unique.")
    for item in requests:
        if not item.get("method") or not item.get("url"):
            raise GraphError(400, "BadRequest", "Each batch request needs a method and a url.")
        for dependency in item.get("dependsOn") or []:
            if str(dependency) not in ids[: ids.index(str(item["id"]))]:
                raise GraphError(400, "BadRequest",
                                 f"Request '{item['id']}' depends on '{dependency}', which is "
                                 "not an earlier request of this batch.")
    statuses: dict[str, int] = {}
    responses = []
    for item in requests:
        request_id = str(item["id"])
        failed = [d for d in item.get("dependsOn") or [] if not 200 <= statuses[str(d)] < 300]
        if failed:
            reply = Reply(424, graph_error_body(
                "FailedDependency", "Failed dependency: an earlier request it depends on "
                "failed.", outer.request_id, outer.client_request_id))
        else:
            reply = _run_one(router, faults, outer, item)
        statuses[request_id] = reply.status
        responses.append(_render(request_id, reply))
    return Reply(200, {"responses": responses})


def _run_one(router: Router, faults: Faults, outer: Call, item: dict[str, Any]) -> Reply:
    method = str(item["method"]).upper()
    path, params = _split_url(str(item["url"]))
    headers = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
    call = Call(
        method=method, path=path, params=params, headers=headers,
        body=_decode_body(item.get("body")), caller=outer.caller, base=outer.base,
        request_id=str(uuid.uuid4()), client_request_id=headers.get("client-request-id", ""),
        in_batch=True,
    )
    call.client_request_id = call.client_request_id or call.request_id
    rule = faults.take(method, "/v1.0" + path, allow_reset=False)
    if rule is not None:
        code, message = GRAPH_CODES[rule.status]
        headers_out = {"Retry-After": str(rule.retry_after)} if rule.retry_after else {}
        return error_reply(call, GraphError(rule.status, code, message, headers=headers_out))
    reply = dispatch(router, call)
    reply.headers.setdefault("request-id", call.request_id)
    reply.headers.setdefault("client-request-id", call.client_request_id)
    return reply


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if parts.scheme:  # absolute: drop the version segment the relative form leaves out
        path = path.split("/v1.0", 1)[1] if "/v1.0" in path else path
    if not path.startswith("/"):
        path = "/" + path
    return path, dict(parse_qsl(parts.query, keep_blank_values=True))


def _decode_body(body: Any) -> Any:
    if isinstance(body, str):  # base64 for non-JSON content; JSON bodies arrive as objects
        try:
            return json.loads(base64.b64decode(body))
        except ValueError:
            return body
    return body


def _render(request_id: str, reply: Reply) -> dict[str, Any]:
    headers = dict(reply.headers)
    out: dict[str, Any] = {"id": request_id, "status": reply.status}
    if reply.body is not None:
        headers.setdefault("Content-Type", JSON_TYPE)
        out["headers"] = headers
        out["body"] = reply.body
    else:
        out["headers"] = headers
    return out
