"""The ferry.dev/trace-requested annotation: what it holds, and how `ferry trace --in-cluster`
sets it and waits for the trace Job's report in status.lastTrace."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass

from kubernetes import client

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.status import RunResult, TraceSummary, WorkflowStatus
from ferry.errors import FerryError, InvalidInput
from ferry.kube import FerryObjects

TRACE_REQUEST_ANNOTATION = "ferry.dev/trace-requested"
TRACE_LABEL = "ferry.dev/traced-workflow"  # not ferry.dev/workflow: a trace is not a run
MAX_OBJECT_LENGTH = 1024
ACTIVE_RESULTS = frozenset({RunResult.PENDING, RunResult.RUNNING})
_ID = re.compile(r"^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$")
_FORMS = ("give '<id>;<object>' or '<id>;<object>;apply' (id: up to 16 lowercase letters,"
          ' digits and dashes), or JSON {"id": ..., "object": ..., "apply": false}')


class TraceRequestInvalid(InvalidInput):
    """The annotation's value is not a trace request; the message says what to give."""


class TraceRequestError(FerryError):
    """The trace could not be requested or did not end in time; the message says why."""


@dataclass(frozen=True)
class TraceRequest:
    id: str
    object: str
    apply: bool = False

    def annotation(self) -> str:
        """The annotation's value, as the CLI writes it."""
        return json.dumps({"id": self.id, "object": self.object, "apply": self.apply},
                          separators=(",", ":"))


def parse_request(value: str) -> TraceRequest:
    """The request an annotation value holds (JSON, or the short form for kubectl)."""
    where = f"annotation {TRACE_REQUEST_ANNOTATION}"
    if value.lstrip().startswith("{"):
        try:
            data = json.loads(value)
        except ValueError as exc:
            raise TraceRequestInvalid(f"{where}: not JSON ({exc}); {_FORMS}") from None
        unknown = sorted(set(data) - {"id", "object", "apply"})
        if unknown:
            raise TraceRequestInvalid(f"{where}: unknown key(s) {', '.join(unknown)}; {_FORMS}")
        trace_id, key, apply = data.get("id"), data.get("object"), data.get("apply", False)
        if not isinstance(trace_id, str) or not isinstance(key, str) \
                or not isinstance(apply, bool):
            raise TraceRequestInvalid(f"{where}: id and object must be strings, apply true or"
                                      f" false; {_FORMS}")
    else:
        trace_id, _, key = value.partition(";")
        apply = key.endswith(";apply")
        key = key.removesuffix(";apply") if apply else key
    if not _ID.match(trace_id):
        raise TraceRequestInvalid(f"{where}: id {trace_id[:40]!r} is not a valid id; {_FORMS}")
    if not key.strip() or len(key) > MAX_OBJECT_LENGTH:
        raise TraceRequestInvalid(f"{where}: the object must be 1 to {MAX_OBJECT_LENGTH}"
                                  f" characters (a DN, UPN, mail, sAMAccountName or"
                                  f" objectGUID); {_FORMS}")
    return TraceRequest(trace_id, key, apply)


def invalid_request_id(value: str) -> str:
    """The id an unparseable value is recorded under, so it is refused once."""
    return "invalid-" + hashlib.sha256(value.encode()).hexdigest()[:8]


def request_trace(api: client.ApiClient, namespace: str, name: str, key: str,
                  apply: bool) -> TraceRequest:
    """Annotate the Workflow with a new trace request (a fresh id); returns it."""
    if not key.strip() or len(key) > MAX_OBJECT_LENGTH:
        raise InvalidInput(f"OBJECT must be 1 to {MAX_OBJECT_LENGTH} characters")
    if FerryObjects(api).get("workflows", namespace, name) is None:
        raise TraceRequestError(f"Workflow {namespace}/{name} not found")
    request = TraceRequest(secrets.token_hex(5), key, apply)
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "workflows", name,
        {"metadata": {"annotations": {TRACE_REQUEST_ANNOTATION: request.annotation()}}})
    return request


def wait_for_trace(api: client.ApiClient, namespace: str, name: str, trace_id: str,
                   timeout: float, poll: float = 1.0) -> TraceSummary:
    """status.lastTrace once it is this trace's and has ended."""
    objects = FerryObjects(api)
    deadline = time.monotonic() + timeout
    while True:
        trace = WorkflowStatus.of(objects.get("workflows", namespace, name)).last_trace
        if trace is not None and trace.id == trace_id and trace.result not in ACTIVE_RESULTS:
            return trace
        if time.monotonic() >= deadline:
            break
        time.sleep(poll)
    where = ("still " + trace.result.value if trace is not None and trace.id == trace_id
             else "not taken up by the operator yet")
    raise TraceRequestError(f"trace {trace_id} of Workflow {namespace}/{name} did not end"
                            f" within {timeout:.0f} s ({where}); see `kubectl describe"
                            f" workflow {name}` and the trace Job's log")
