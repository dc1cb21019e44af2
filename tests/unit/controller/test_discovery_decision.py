from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import V1Job, V1JobCondition, V1JobStatus, V1ObjectMeta

from ferry.api.base import ObjectMeta
from ferry.api.status import EnvironmentStatus
from ferry.controller.discovery_decision import decide_discovery as decide_typed
from ferry.controller.run_tracking import Decision
from ferry.controller.runs import RUN_LABEL

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def env(status: dict[str, Any] | None = None, reset: str | None = None) -> dict[str, Any]:
    annotations = {"ferry.dev/reset-watermark": reset} if reset else {}
    return {"metadata": {"name": "src", "namespace": "ns", "uid": "u-1",
                         "annotations": annotations}, "status": status or {}}


def decide_discovery(environment: dict[str, Any], jobs: list[V1Job],
                     **kwargs: Any) -> Decision[EnvironmentStatus]:
    """decide_discovery() on an Environment as the API server sends it."""
    return decide_typed(ObjectMeta.model_validate(environment["metadata"]),
                        EnvironmentStatus.model_validate(environment["status"]), jobs, **kwargs)


def wire(decision: Decision[EnvironmentStatus]) -> dict[str, Any]:
    """The decided status as written to the API server."""
    return decision.status.dump()


def finished(run_id: str) -> V1Job:
    return V1Job(metadata=V1ObjectMeta(name=f"src-discovery-{run_id}",
                                       labels={RUN_LABEL: run_id}),
                 status=V1JobStatus(conditions=[V1JobCondition(type="Complete", status="True")],
                                    completion_time=datetime(2026, 11, 21, 10, 2, tzinfo=UTC)))


def test_first_discovery_is_full_and_waits_for_ready() -> None:
    assert decide_discovery(env(), [], interval_minutes=60, ready=False, now=T0).start is None
    first = decide_discovery(env(), [], interval_minutes=60, ready=True, now=T0)
    assert first.start is not None and first.start.full and first.start.trigger == "Initial"
    assert wire(first)["activeDiscovery"]["result"] == "Pending"


def test_next_discovery_is_a_delta_one_interval_after_the_last_start() -> None:
    first = decide_discovery(env(), [], interval_minutes=60, ready=True, now=T0)
    assert first.start is not None
    active = {**wire(first)["activeDiscovery"], "result": "Succeeded", "message": "4 objects"}
    done = decide_discovery(env({"activeDiscovery": active}), [finished(first.start.run_id)],
                            interval_minutes=60, ready=True, now=T0 + timedelta(minutes=2))
    assert done.start is None and wire(done).get("activeDiscovery") is None
    assert wire(done)["discovery"]["result"] == "Succeeded"
    assert wire(done)["nextDiscoveryTime"] == "2026-11-21T11:00:00Z"
    assert [e.reason for e in done.events] == ["Discovered"]
    later = decide_discovery(env(wire(done)), [], interval_minutes=60, ready=True,
                             now=T0 + timedelta(minutes=61))
    assert later.start is not None and not later.start.full
    assert later.start.trigger == "Schedule"


def test_a_new_reset_annotation_starts_a_full_discovery_once() -> None:
    status = {"discovery": {"id": "x", "startTime": "2026-11-21T09:59:00Z",
                            "result": "Succeeded"}}
    reset = decide_discovery(env(status, reset="r1"), [], interval_minutes=60, ready=True,
                             now=T0)
    assert reset.start is not None and reset.start.full and reset.start.trigger == "Reset"
    assert wire(reset)["lastWatermarkReset"] == "r1"
    again = decide_discovery(env({**wire(reset), "activeDiscovery": None,
                                  "discovery": status["discovery"]}, reset="r1"),
                             [], interval_minutes=60, ready=True, now=T0)
    assert again.start is None
