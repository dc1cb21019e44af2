"""When an Environment is discovered (inventoried) and what its discovery Job did. Pure.

The first discovery starts as soon as the Environment is Ready and reads everything; later ones
start spec.discovery.intervalMinutes after the previous one started and read only changes. A
new value of the ferry.dev/reset-watermark annotation starts a full discovery (and makes the
workflows reading this environment read it in full next time)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from ferry.api.base import ObjectMeta
from ferry.api.events import EventReason, EventType
from ferry.api.status import DiscoveryRun, EnvironmentStatus, RunResult, Trigger, k8s_time
from ferry.controller.run_tracking import Decision, Event, StartJob, track
from ferry.controller.runs import RESET_WATERMARK_ANNOTATION, job_name, run_id_for

if TYPE_CHECKING:
    from kubernetes.client import V1Job


def decide_discovery(meta: ObjectMeta, status: EnvironmentStatus, jobs: list[V1Job], *,
                     interval_minutes: int, ready: bool,
                     now: datetime) -> Decision[EnvironmentStatus]:
    decision = Decision(status.model_copy(deep=True))
    status = decision.status
    tracking = track(status.active_discovery, jobs, now, DiscoveryRun)
    status.active_discovery = active = tracking.active
    if tracking.finished is not None:
        done = status.discovery = tracking.finished
        if done.result == RunResult.SUCCEEDED:
            decision.events.append(Event(EventType.NORMAL, EventReason.DISCOVERED, done.message
                                         or f"discovery {done.id} finished"))
        else:
            decision.events.append(Event(EventType.WARNING, EventReason.DISCOVERY_FAILED,
                                         done.message or f"discovery {done.id} failed"))
    if tracking.create_job and active is not None:
        decision.start = StartJob.of(active, Trigger.SCHEDULE)
        return decision

    interval = timedelta(minutes=interval_minutes)
    last_start = status.discovery.start_time if status.discovery else None
    status.next_discovery_time = last_start + interval if last_start else None
    if active is not None or not ready:
        return decision
    trigger: tuple[Trigger, str, bool] | None = None
    reset = meta.annotations.get(RESET_WATERMARK_ANNOTATION)
    if reset and reset != status.last_watermark_reset:
        status.last_watermark_reset = reset
        trigger = (Trigger.RESET, reset, True)
    elif last_start is None:
        trigger = (Trigger.INITIAL, "initial", True)
    elif now >= last_start + interval:
        trigger = (Trigger.SCHEDULE, k8s_time(last_start + interval), False)
    if trigger is None:
        return decision
    kind, key, full = trigger
    assert meta.uid is not None  # the API server gives every object one
    run_id = run_id_for(meta.uid, f"Discovery{kind}", key)
    status.active_discovery = DiscoveryRun(
        id=run_id, job_name=job_name(f"{meta.name}-discovery", run_id), trigger=kind,
        full=full, start_time=now, result=RunResult.PENDING)
    decision.start = StartJob.of(status.active_discovery, kind)
    return decision
