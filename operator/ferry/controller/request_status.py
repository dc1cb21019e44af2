"""A request's Job: its work between Running and its end, and its status entry written
whole, each time, while it is still that request's; and how the CLI waits for that end."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

import structlog
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.events import EventReason, EventType
from ferry.api.status import RequestSummary, RunResult, WorkflowStatus
from ferry.controller.events import EventRecorder
from ferry.controller.job_requests import ACTIVE_RESULTS, RequestKind, summary_patch
from ferry.errors import ExitCode, FerryError, InvalidInput
from ferry.kube import FerryObjects, retry_conflicts
from ferry.secrets import SecretsMissing

log = structlog.get_logger("ferry.request_job")
SummaryT = TypeVar("SummaryT", bound=RequestSummary)


class RequestTimedOut(FerryError):
    """The request did not end in time; the message says where it was."""


class RequestFailed(FerryError):
    """The request ended Failed (exit 1); the message is its status entry's."""


class RequestRefused(InvalidInput):
    """The request's input was refused (exit 2), by the operator or its Job, naming it."""


def failure(kind: RequestKind[SummaryT], summary: SummaryT) -> FerryError:
    """The error a CLI ends with for a request that ended with a non-zero exit code: its
    message, and its code as far as exit codes go (2 for refused input, else 1)."""
    message = summary.message or f"{kind.what} {summary.id} {summary.result.value}"
    return RequestRefused(message) if summary.exit_code == ExitCode.INVALID_INPUT \
        else RequestFailed(message)


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


@dataclass(frozen=True)
class RequestEnd(Generic[SummaryT]):
    """How a request's work ended: what its status entry records (its own fields by change)."""

    result: RunResult
    exit_code: int
    message: str
    change: Callable[[SummaryT], None] = lambda _: None


def serve_request(kind: RequestKind[SummaryT], api: client.ApiClient, namespace: str,
                  name: str, request_id: str,
                  work: Callable[[dict[str, Any], SummaryT], RequestEnd[SummaryT]]
                  ) -> ExitCode:
    """A request's Job around its work: only while it is the active request (never twice),
    Running, then its end in status and an Event, whatever broke. Exit 0 once the end is
    recorded (the request's own code is its entry's exitCode), 2 when there is none to do."""
    objects = FerryObjects(api)
    events = EventRecorder(api, f"ferry-{kind.infix}-job")
    body = objects.get("workflows", namespace, name)
    current = kind.active(WorkflowStatus.of(body))
    if body is None or current is None or current.id != request_id:
        # Another request is current, or this one has ended.
        log.error("request_job.not_active", kind=kind.what, request=request_id,
                  current=current and current.id)
        return ExitCode.INVALID_INPUT
    if not report_request(kind, objects, namespace, name, request_id, _running):
        return ExitCode.INVALID_INPUT
    label = f"{kind.what} {request_id}{kind.describe(current)}"
    try:
        end = work(body, current)
        said = f"{label}: {end.message}"
    except FerryError as exc:  # refused input, a directory that cannot be read (named)
        message = "; ".join(exc.problems) if isinstance(exc, SecretsMissing) else str(exc)
        log.error("request_job.failed", kind=kind.what, request=request_id, problem=message)
        if isinstance(exc, InvalidInput):
            events.post(body, EventType.WARNING, EventReason.INVALID_INPUT, message)
        end, said = RequestEnd(RunResult.FAILED, exc.exit_code, message), \
            f"{label} failed: {message}"
    except Exception as exc:  # the request must end recorded, whatever broke
        log.exception("request_job.broke", kind=kind.what, request=request_id)
        message = f"{type(exc).__name__}: {exc}"
        end, said = RequestEnd(RunResult.FAILED, ExitCode.FAILED, message), \
            f"{label} failed: {message}"
    report_request(kind, objects, namespace, name, request_id, partial(_ended_as, end))
    events.post(body, EventType.NORMAL if end.result == RunResult.SUCCEEDED
                else EventType.WARNING, kind.finished, said[:1024])
    return ExitCode.OK


def _running(summary: RequestSummary) -> None:
    summary.result = RunResult.RUNNING


def _ended_as(end: RequestEnd[SummaryT], summary: SummaryT) -> None:
    summary.result, summary.exit_code = end.result, int(end.exit_code)
    summary.message, summary.completed_at = end.message[:4096], datetime.now(UTC)
    end.change(summary)
