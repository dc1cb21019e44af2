"""Send a Workflow's Pending alerts (status.alerts) and record how each went.

The entry is in status (Pending) before anything is sent, and Sent once it was: an
operator restart sends only what is still Pending. A crash between sending and recording
sends that one again; receivers drop the repeat by its id (X-Ferry-Delivery, Message-ID).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.alerts.attempts import attempt_due, attempted
from ferry.alerts.delivery import AlertNotSent, send
from ferry.alerts.message import AlertMessage
from ferry.api.events import EventReason, EventType
from ferry.api.status import AlertDelivery, AlertState, RunSummary, WorkflowStatus
from ferry.api.workflow import WorkflowSpec
from ferry.controller.events import EventRecorder
from ferry.kube import ApiSecretResolver, FerryObjects, retry_conflicts, status_changes

log = structlog.get_logger("ferry.operator")


def deliveries_due(status: WorkflowStatus, now: datetime) -> bool:
    return any(attempt_due(d, now) for d in status.alerts)


class AlertSender:
    def __init__(self, api: client.ApiClient, objects: FerryObjects, events: EventRecorder,
                 clock: Callable[[], datetime]):
        self._api = api
        self._objects = objects
        self._events = events
        self._clock = clock

    def deliver(self, namespace: str, name: str) -> None:
        """Try each Pending alert whose time has come once, then record the results."""
        body = self._objects.get("workflows", namespace, name)
        if body is None:
            return
        status = WorkflowStatus.of(body)
        now = self._clock()
        todo = [d for d in status.alerts if attempt_due(d, now)]
        if not todo:
            return
        try:
            spec: WorkflowSpec | None = WorkflowSpec.model_validate(body.get("spec") or {})
        except ValidationError:
            spec = None
        secrets = ApiSecretResolver(self._api, namespace)
        runs = {r.id: r for r in [*status.history, *([status.last_run] if status.last_run
                                                        else [])]}
        done = [attempted(d, self._attempt(spec, secrets, namespace, name, d,
                                           runs.get(d.run)), now) for d in todo]
        retry_conflicts(lambda: self._record(namespace, name, done))
        for delivery in done:
            self._report(body, delivery)

    def _attempt(self, spec: WorkflowSpec | None, secrets: ApiSecretResolver, namespace: str,
                 workflow: str, delivery: AlertDelivery, run: RunSummary | None) -> str | None:
        """None when sent, else why not."""
        alerts = spec.alerts if spec is not None else []
        index = next((i for i, a in enumerate(alerts) if a.name == delivery.alert), None)
        if index is None:
            return f"spec.alerts has no alert {delivery.alert!r} any more"
        if run is None:
            return f"run {delivery.run} is no longer in status.history"
        message = AlertMessage(
            alert=delivery.alert,
            workflow=workflow, namespace=namespace, run=run.id, outcome=delivery.outcome,
            result=run.result, message=run.message,
            counts=run.counts.model_dump(by_alias=True), start_time=run.start_time,
            completion_time=run.completion_time)
        try:
            send(alerts[index], message, secrets, f"Workflow/{workflow}: spec.alerts[{index}]")
        except AlertNotSent as exc:
            log.warning("alert.not_sent", workflow=f"{namespace}/{workflow}",
                        alert=delivery.alert, run=run.id, outcome=delivery.outcome,
                        attempt=delivery.attempts + 1, error=str(exc))
            return str(exc)
        log.info("alert.sent", workflow=f"{namespace}/{workflow}", alert=delivery.alert,
                 run=run.id, outcome=delivery.outcome)
        return None

    def _record(self, namespace: str, name: str, done: list[AlertDelivery]) -> None:
        body = self._objects.get("workflows", namespace, name)
        if body is None:
            return
        status = WorkflowStatus.of(body)
        after = {(d.alert, d.run, d.outcome): d for d in done}
        changed = status.model_copy(deep=True)
        changed.alerts = [after.get((d.alert, d.run, d.outcome), d) for d in status.alerts]
        changes = status_changes(status, changed)
        if changes:
            self._objects.patch_status("workflows", body, changes)

    def _report(self, body: dict[str, Any], delivery: AlertDelivery) -> None:
        about = f"alert {delivery.alert} ({delivery.outcome} of run {delivery.run})"
        if delivery.state == AlertState.SENT:
            self._events.post(body, EventType.NORMAL, EventReason.ALERT_SENT, f"{about} sent")
        elif delivery.state == AlertState.FAILED:
            self._events.post(body, EventType.WARNING, EventReason.ALERT_FAILED,
                              f"{about} not sent after {delivery.attempts} attempts:"
                              f" {delivery.message}")
