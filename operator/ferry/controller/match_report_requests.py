"""The ferry.dev/match-report-requested annotation (its value: the request's id) and how
`ferry report matches --in-cluster` checks the Workflow and sets it; the report Job's counts
come back in status.lastMatchReport, its rows go to the state store."""

from __future__ import annotations

import secrets

from kubernetes import client

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.conditions import ConditionType
from ferry.api.events import EventReason
from ferry.api.status import ConditionStatus, MatchReportSummary, WorkflowStatus
from ferry.controller.job_requests import REQUEST_ID, RequestKind
from ferry.errors import InvalidInput
from ferry.kube import FerryObjects

MATCH_REPORT_ANNOTATION = "ferry.dev/match-report-requested"
MATCH_REPORT_LABEL = "ferry.dev/match-reported-workflow"  # not ferry.dev/workflow: no run
MATCH_REPORT = RequestKind[MatchReportSummary](
    what="match report", annotation=MATCH_REPORT_ANNOTATION, label=MATCH_REPORT_LABEL,
    infix="matches", key="lastMatchReport", current=lambda status: status.last_match_report,
    finished=EventReason.MATCH_REPORT_FINISHED)


class MatchReportRequestInvalid(InvalidInput):
    """The annotation's value is not a request id; the message says what to give."""


def parse_request(value: str) -> str:
    """The request id an annotation value holds."""
    if not REQUEST_ID.match(value):
        raise MatchReportRequestInvalid(
            f"annotation {MATCH_REPORT_ANNOTATION}: {value[:40]!r} is not a request id; give"
            " up to 16 lowercase letters, digits and dashes, a new one for each report")
    return value


def request_match_report(api: client.ApiClient, namespace: str, name: str) -> str:
    """Annotate a Ready Workflow with a new match report request; returns its id."""
    body = FerryObjects(api).get("workflows", namespace, name)
    if body is None:
        raise InvalidInput(f"Workflow {namespace}/{name} not found; give NAMESPACE/NAME of a"
                           f" Workflow (`kubectl get workflows -A`)")
    ready = next((c for c in WorkflowStatus.of(body).conditions
                  if c.type == ConditionType.READY), None)
    if ready is None or ready.status != ConditionStatus.TRUE:
        why = f": {ready.message}" if ready is not None and ready.message else \
            " (the operator has not checked it yet)" if ready is None else ""
        raise InvalidInput(f"Workflow {namespace}/{name} is not Ready{why}; fix what it names"
                           f" (`kubectl describe workflow -n {namespace} {name}`), then ask"
                           " again")
    request_id = secrets.token_hex(5)
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "workflows", name,
        {"metadata": {"annotations": {MATCH_REPORT_ANNOTATION: request_id}}})
    return request_id
