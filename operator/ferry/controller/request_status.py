"""A request's status entry as its Job writes it (whole, each time, while it is still that
request's) and as the CLI waits for it to end."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.status import RequestSummary, WorkflowStatus
from ferry.controller.job_requests import ACTIVE_RESULTS, RequestKind, summary_patch
from ferry.errors import FerryError
from ferry.kube import FerryObjects, retry_conflicts

log = structlog.get_logger("ferry.request_job")
SummaryT = TypeVar("SummaryT", bound=RequestSummary)


class RequestTimedOut(FerryError):
    """The request did not end in time; the message says where it was."""


def report_request(kind: RequestKind[SummaryT], objects: FerryObjects, namespace: str,
                   name: str, request_id: str, change: Callable[[SummaryT], None]) -> bool:
    """Apply `change` to the kind's status entry while it is still `request_id`; False when
    another request took its place (or the Workflow is gone)."""
    kept = [True]

    def attempt() -> None:
        body = objects.get("workflows", namespace, name)
        old = kind.current(WorkflowStatus.of(body))
        if body is None or old is None or old.id != request_id:
            log.warning("request_job.status_gone", request=request_id, kind=kind.what)
            kept[0] = False
            return
        new = old.model_copy()
        change(new)
        patch = summary_patch(kind.key, old, new)
        if patch:
            objects.patch_status("workflows", body, patch)

    if not retry_conflicts(attempt):
        log.warning("request_job.status_conflicts", request=request_id, kind=kind.what)
        return False
    return kept[0]


def wait_for_request(kind: RequestKind[SummaryT], api: client.ApiClient, namespace: str,
                     name: str, request_id: str, timeout: float) -> SummaryT:
    """The kind's status entry once it is this request's and has ended. Watched, not polled:
    the watch hands over every change in order, so an end that the next request replaces at
    once is still seen (a poll could read the Workflow only after it)."""
    objects = FerryObjects(api)
    custom = client.CustomObjectsApi(api)
    deadline = time.monotonic() + timeout
    body = objects.get("workflows", namespace, name)
    found = _ended(kind, body, request_id)
    while found is None and body is not None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            for event in watch.Watch().stream(
                    custom.list_namespaced_custom_object, API_GROUP, API_VERSION, namespace,
                    "workflows", field_selector=f"metadata.name={name}",
                    resource_version=body["metadata"]["resourceVersion"],
                    timeout_seconds=max(1, math.ceil(remaining)),
                    _request_timeout=remaining + 30):
                body = event["object"] if event["type"] != "DELETED" else None
                found = _ended(kind, body, request_id)
                if found is not None or body is None:
                    break
        except ApiException as exc:
            if exc.status != 410:
                raise
            body = objects.get("workflows", namespace, name)  # watched too long: read anew
            found = _ended(kind, body, request_id)
    if found is not None:
        return found
    if body is None:
        raise RequestTimedOut(f"Workflow {namespace}/{name} was deleted before {kind.what}"
                              f" {request_id} ended")
    current = kind.current(WorkflowStatus.of(body))
    where = ("still " + current.result.value if current is not None and current.id == request_id
             else "not taken up by the operator yet")
    raise RequestTimedOut(f"{kind.what} {request_id} of Workflow {namespace}/{name} did not"
                          f" end within {timeout:.0f} s ({where}); see `kubectl describe"
                          f" workflow {name}` and the {kind.what} Job's log")


def _ended(kind: RequestKind[SummaryT], body: dict[str, Any] | None, request_id: str
           ) -> SummaryT | None:
    found = kind.current(WorkflowStatus.of(body))
    return found if found is not None and found.id == request_id \
        and found.result not in ACTIVE_RESULTS else None
