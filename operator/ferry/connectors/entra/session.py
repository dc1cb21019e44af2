"""Requests to Microsoft Graph through msgraph-sdk, paced and retried the way Graph asks.

The SDK is asynchronous and the sync engine is not: a session owns one event loop and runs
each request on it. Bodies go in and out as JSON through the SDK's request adapter (its
authentication, middleware and error mapping), which is much faster than the typed models
for tens of thousands of objects.

Throttling and faults (learn.microsoft.com/graph/throttling):
- writes are paced under the tenant's write quota rather than bursting into 429s;
- a 429 is waited out for its Retry-After and sent again (a throttled request did nothing);
- a 5xx or a lost connection is retried with jittered backoff when the request is
  idempotent; otherwise it raises GraphUncertain, and the caller looks before trying again.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import httpx
import structlog
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.method import Method
from kiota_abstractions.request_information import RequestInformation
from kiota_http.middleware.options import RetryHandlerOption
from msgraph import GraphRequestAdapter, GraphServiceClient
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph_core import GraphClientFactory
from msgraph_core.authentication import AzureIdentityAuthenticationProvider

from ferry.connectors.entra.auth import CaBundle, GraphEndpoints
from ferry.errors import FerryError
from ferry_agent.transport import backoff

log = structlog.get_logger("ferry.graph")

MAX_ATTEMPTS = 8           # for 5xx answers and lost connections
THROTTLE_PATIENCE = 900.0  # seconds of 429s one request waits out before giving up
TRANSIENT = frozenset({500, 502, 503, 504})
_ERRORS: dict[str, Any] = {"XXX": ODataError}


class GraphError(FerryError):
    """Graph refused a request: its status, Graph's error code and message."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        self.status, self.code, self.message = status, code, message
        self.retry_after = retry_after
        super().__init__(f"{code or 'HTTP ' + str(status)}: {message}" if message
                         else code or f"HTTP {status}")


class GraphUncertain(FerryError):
    """A request that is not safe to repeat may or may not have been applied."""


@dataclass(frozen=True)
class WriteQuota:
    writes: int
    seconds: float


class WritePacer:
    """Keeps writes within `quota` over any sliding window, sleeping when the next would not.

    The window is counted a little longer than the quota's (`margin`): a write leaves here
    before Graph counts it, and requests do not all take equally long on the way."""

    def __init__(self, quota: WriteQuota, clock: Any = time.monotonic, sleep: Any = time.sleep,
                 margin: float = 0.5):
        self.quota = quota
        self._sent: deque[float] = deque()
        self._clock, self._sleep = clock, sleep
        self._margin = margin

    def acquire(self, count: int = 1) -> None:
        limit, window = self.quota.writes, self.quota.seconds + self._margin
        for _ in range(count):
            now = self._clock()
            while self._sent and now - self._sent[0] >= window:
                self._sent.popleft()
            if len(self._sent) >= limit:
                self._sleep(window - (now - self._sent[0]) + 0.01)
                now = self._clock()
                while self._sent and now - self._sent[0] >= window:
                    self._sent.popleft()
            self._sent.append(now)


@dataclass(frozen=True)
class BatchRequest:
    method: str
    url: str                   # relative to the version root, e.g. /users/{id}
    body: Any = None

    @property
    def safe(self) -> bool:
        """Whether sending it twice has the effect of sending it once."""
        return self.method in ("GET", "PATCH", "DELETE", "PUT")


@dataclass(frozen=True)
class BatchAnswer:
    status: int
    body: dict[str, Any]
    uncertain: bool = False    # lost, or a 5xx: the request may or may not have been applied

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def error(self) -> GraphError:
        error = self.body.get("error") or {}
        return GraphError(self.status, str(error.get("code") or ""),
                          str(error.get("message") or ""))


class GraphSession:
    """One signed-in Graph client: JSON requests, paging, and the tenant's write pace."""

    def __init__(self, credential: AsyncTokenCredential, endpoints: GraphEndpoints,
                 ca: CaBundle, quota: WriteQuota, timeout: float = 60.0):
        self.endpoints = endpoints
        self.pacer = WritePacer(quota)
        self.throttled = 0  # 429s met, and requests sent again: the run's record
        self.retries = 0
        self._credential, self._ca = credential, ca
        self._loop = asyncio.new_event_loop()
        verify = ssl.create_default_context(cafile=ca.path) if ca.path else True
        self._http = httpx.AsyncClient(verify=verify, timeout=httpx.Timeout(timeout, connect=10))
        # Ferry retries itself: the SDK's handler would repeat POSTs after a 5xx.
        client = GraphClientFactory.create_with_default_middleware(
            client=self._http,
            options={RetryHandlerOption.get_key(): RetryHandlerOption(max_retries=0)})
        host = urlparse(endpoints.base_url).hostname or ""
        auth = AzureIdentityAuthenticationProvider(credential, scopes=[endpoints.scope],
                                                   allowed_hosts=[host])
        self.adapter = GraphRequestAdapter(auth, client=client)
        self.adapter.base_url = endpoints.base_url
        self.client = GraphServiceClient(request_adapter=self.adapter)

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self._http.aclose())
        self._loop.run_until_complete(self._credential.close())
        self._loop.close()
        self._ca.close()

    # requests ---------------------------------------------------------------------------
    def get(self, url: str) -> dict[str, Any]:
        return self.request("GET", url) or {}

    def request(self, method: str, url: str, body: Any = None, *, writes: int = 0,
                idempotent: bool | None = None) -> dict[str, Any] | None:
        """Send one request (url relative to the version root, or absolute); its JSON answer.

        writes: how many writes it counts for against the quota (a $batch counts each).
        Raises GraphError for Graph's refusals, GraphUncertain as described above."""
        safe = method in ("GET", "PATCH", "DELETE", "PUT") if idempotent is None else idempotent
        delays = backoff(base=1.0, cap=30.0)
        patience = time.monotonic() + THROTTLE_PATIENCE
        failures = 0
        while True:
            if writes:
                self.pacer.acquire(writes)
            try:
                return self._loop.run_until_complete(self._send(method, url, body))
            except GraphError as exc:
                if exc.status == 429:
                    # Throttled: nothing was done. Wait as long as Graph asks, within reason.
                    self.throttled += 1
                    wait = exc.retry_after if exc.retry_after is not None else next(delays)
                    if time.monotonic() + wait > patience:
                        raise
                elif exc.status in TRANSIENT:
                    if not safe:
                        raise GraphUncertain(f"{method} {url}: {exc}") from exc
                    failures += 1
                    if failures >= MAX_ATTEMPTS:
                        raise
                    wait = exc.retry_after if exc.retry_after is not None else next(delays)
                else:
                    raise
                reason = str(exc)
            except httpx.TransportError as exc:
                if not safe:
                    raise GraphUncertain(f"{method} {url}: connection lost:"
                                         f" {type(exc).__name__}") from exc
                failures += 1
                if failures >= MAX_ATTEMPTS:
                    raise GraphError(0, "ConnectionFailed", f"{method} {url.split('?')[0]}:"
                                     f" {type(exc).__name__}: {exc}") from exc
                wait, reason = next(delays), f"{type(exc).__name__}: {exc}"
            self.retries += 1
            log.info("graph.retry", method=method, url=url.split("?")[0], wait=round(wait, 2),
                     reason=reason[:200])
            time.sleep(wait)

    async def _send(self, method: str, url: str, body: Any) -> dict[str, Any] | None:
        info = RequestInformation()
        info.http_method = Method(method)
        info.url = url if url.startswith("https://") else self.endpoints.base_url + url
        info.headers.try_add("Accept", "application/json")
        if body is not None:
            info.set_stream_content(json.dumps(body).encode("utf-8"), "application/json")
        try:
            raw = await self.adapter.send_primitive_async(info, "bytes", _ERRORS)
        except ODataError as exc:
            raise _graph_error(exc) from None
        return json.loads(raw) if raw else None

    def batch(self, requests: list[BatchRequest]) -> list[BatchAnswer]:
        """Send up to 20 requests as one JSON batch; one answer each, in order.

        Inner 429s are waited out and sent again. An inner 5xx, or losing the whole batch,
        answers `uncertain` for requests that are not safe to repeat (and the others are
        sent again), so the caller can look before repeating them."""
        answers: dict[int, BatchAnswer] = {}
        pending = list(enumerate(requests))
        delays = backoff(base=1.0, cap=30.0)
        patience = time.monotonic() + THROTTLE_PATIENCE
        failures = 0
        while pending:
            body = {"requests": [
                {"id": str(index), "method": r.method, "url": r.url,
                 **({"body": r.body, "headers": {"Content-Type": "application/json"}}
                    if r.body is not None else {})}
                for index, r in pending]}
            wait = 0.0
            try:
                # Each inner write counts against the quota, and the batch is one request.
                result = self.request("POST", "/$batch", body, writes=sum(
                    1 for _, r in pending if r.method != "GET"), idempotent=False)
            except GraphUncertain:
                result = None
            if result is None:  # the whole batch was lost: nobody knows what it did
                failures += 1
                for index, r in pending:
                    if not r.safe or failures >= MAX_ATTEMPTS:
                        answers[index] = BatchAnswer(0, {}, uncertain=True)
                pending = [(i, r) for i, r in pending if i not in answers]
                wait = next(delays)
            else:
                retry: list[tuple[int, BatchRequest]] = []
                by_id = {int(a["id"]): a for a in result.get("responses", [])}
                for index, r in pending:
                    answer = by_id.get(index, {"status": 0})
                    status = int(answer.get("status", 0))
                    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
                    if status == 429 and time.monotonic() < patience:
                        self.throttled += 1
                        retry.append((index, r))
                        wait = max(wait, float(headers.get("retry-after", 0)) or next(delays))
                    elif (status in TRANSIENT or status == 0) and r.safe \
                            and failures < MAX_ATTEMPTS:
                        retry.append((index, r))
                        wait = max(wait, next(delays))
                    else:
                        answers[index] = BatchAnswer(
                            status, answer.get("body") or {},
                            uncertain=status in TRANSIENT or status == 0)
                if retry and any(r.safe for _, r in retry):
                    failures += 1
                pending = retry
            if pending:
                self.retries += len(pending)
                log.info("graph.batch_retry", requests=len(pending), wait=round(wait, 2))
                time.sleep(wait)
        return [answers[i] for i in range(len(requests))]

    def pages(self, url: str) -> Iterator[dict[str, Any]]:
        """Every page of a collection, following @odata.nextLink (the last page holds any
        @odata.deltaLink)."""
        next_url: str | None = url
        while next_url:
            page = self.get(next_url)
            yield page
            next_url = page.get("@odata.nextLink")

    def roles(self) -> list[str]:
        """The application permissions in the app's access token (its `roles` claim)."""
        token = self._loop.run_until_complete(self._credential.get_token(self.endpoints.scope))
        payload = token.token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return sorted(claims.get("roles") or [])


def _graph_error(exc: ODataError) -> GraphError:
    status = exc.response_status_code or 0
    headers = {k.lower(): v for k, v in (exc.response_headers or {}).items()}
    retry_after: float | None = None
    try:
        retry_after = float(headers["retry-after"]) if "retry-after" in headers else None
    except ValueError:
        retry_after = None
    error = exc.error
    return GraphError(status, (error.code if error else "") or "",
                      (error.message if error else "") or str(exc), retry_after)
