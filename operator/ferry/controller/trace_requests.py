"""The ferry.dev/trace-requested annotation: what it holds, and how `ferry trace --in-cluster`
sets it (the trace Job's report comes back in status.lastTrace)."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from kubernetes import client

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.events import EventReason
from ferry.api.status import TraceSummary
from ferry.controller.job_requests import REQUEST_ID, RequestKind
from ferry.errors import FerryError, InvalidInput
from ferry.kube import FerryObjects

TRACE_REQUEST_ANNOTATION = "ferry.dev/trace-requested"
TRACE_LABEL = "ferry.dev/traced-workflow"  # not ferry.dev/workflow: a trace is not a run
TRACE = RequestKind[TraceSummary](
    what="trace", annotation=TRACE_REQUEST_ANNOTATION, label=TRACE_LABEL, infix="trace",
    key="lastTrace", current=lambda status: status.last_trace,
    finished=EventReason.TRACE_FINISHED,
    describe=lambda t: f" of {t.object!r}" + (" (apply)" if t.apply else ""))
MAX_OBJECT_LENGTH = 1024
_FORMS = ("give '<id>;<object>' or '<id>;<object>;apply' (id: up to 16 lowercase letters,"
          ' digits and dashes), or JSON {"id": ..., "object": ..., "apply": false}')


class TraceRequestInvalid(InvalidInput):
    """The annotation's value is not a trace request; the message says what to give."""


class TraceRequestError(FerryError):
    """The trace could not be requested; the message says why."""


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
    if not REQUEST_ID.match(trace_id):
        raise TraceRequestInvalid(f"{where}: id {trace_id[:40]!r} is not a valid id; {_FORMS}")
    if not key.strip() or len(key) > MAX_OBJECT_LENGTH:
        raise TraceRequestInvalid(f"{where}: the object must be 1 to {MAX_OBJECT_LENGTH}"
                                  f" characters (a DN, UPN, mail, sAMAccountName or"
                                  f" objectGUID); {_FORMS}")
    return TraceRequest(trace_id, key, apply)


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
