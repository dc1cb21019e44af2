"""Kubernetes Events about ferry.dev objects, posted by the operator and by sync Jobs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.api.conditions import Reason
from ferry.api.events import EventReason, EventType

log = structlog.get_logger("ferry.events")


class EventRecorder:
    """Posts core/v1 Events; a failure to post is logged, never raised."""

    def __init__(self, api: client.ApiClient, component: str):
        self._core = client.CoreV1Api(api)
        self._component = component

    def post(self, obj: dict[str, Any], type_: EventType, reason: EventReason | Reason,
             message: str) -> None:
        meta = obj["metadata"]
        now = datetime.now(UTC)
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                "namespace": meta["namespace"], "uid": meta.get("uid"),
                "resourceVersion": meta.get("resourceVersion"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": self._component},
            "reportingComponent": f"ferry.dev/{self._component}",
            "reportingInstance": self._component,
            "firstTimestamp": now.isoformat(),
            "lastTimestamp": now.isoformat(),
            "count": 1,
        }
        try:
            self._core.create_namespaced_event(meta["namespace"], event)
        except ApiException as exc:
            log.warning("event.not_posted", reason=reason, status=exc.status)
        log.info("event", object=f"{obj['kind']}/{meta['name']}", type=type_, reason=reason,
                 message=message)
