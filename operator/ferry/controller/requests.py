"""`ferry run --in-cluster`: ask the operator for a run and, optionally, wait for its end."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from kubernetes import client

from ferry.api.base import API_GROUP, API_VERSION
from ferry.api.status import RunSummary, Trigger, WorkflowStatus
from ferry.controller.runs import RUN_REQUEST_ANNOTATION, run_id_for
from ferry.errors import FerryError
from ferry.kube import FerryObjects


class RunRequestError(FerryError):
    """The run could not be requested or did not finish in time; the message says why."""


def request_run(api: client.ApiClient, namespace: str, name: str) -> str:
    """Annotate the Workflow with a new request; returns the run id the operator will use."""
    objects = FerryObjects(api)
    body = objects.get("workflows", namespace, name)
    if body is None:
        raise RunRequestError(f"Workflow {namespace}/{name} not found")
    value = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    client.CustomObjectsApi(api).patch_namespaced_custom_object(
        API_GROUP, API_VERSION, namespace, "workflows", name,
        {"metadata": {"annotations": {RUN_REQUEST_ANNOTATION: value}}})
    return run_id_for(body["metadata"]["uid"], Trigger.MANUAL, value)


def wait_for_run(api: client.ApiClient, namespace: str, name: str, run_id: str,
                 timeout: float, poll: float = 2.0) -> RunSummary:
    """The run's summary from status once it is finished."""
    objects = FerryObjects(api)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = WorkflowStatus.of(objects.get("workflows", namespace, name))
        for run in [status.last_run, *status.history]:
            if run is not None and run.id == run_id:
                return run
        time.sleep(poll)
    raise RunRequestError(f"run {run_id} of Workflow {namespace}/{name} did not finish within"
                          f" {timeout:.0f} s; see `kubectl describe workflow {name}`")
