"""When an Environment is discovered (inventoried) and what its discovery Job did. Pure.

The first discovery starts as soon as the Environment is Ready and reads everything; later ones
start spec.discovery.intervalMinutes after the previous one started and read only changes. A
new value of the ferry.dev/reset-watermark annotation starts a full discovery (and makes the
workflows reading this environment read it in full next time)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from ferry.api.status import RunResult
from ferry.controller.run_tracking import Event, iso, parse_time, track
from ferry.controller.runs import RESET_WATERMARK_ANNOTATION, job_name, run_id_for


@dataclass(frozen=True)
class StartDiscovery:
    run_id: str
    job_name: str
    trigger: str
    full: bool


@dataclass
class DiscoveryDecision:
    status: dict[str, Any]
    start: StartDiscovery | None = None
    events: list[Event] = field(default_factory=list)


def decide_discovery(environment: dict[str, Any], jobs: list[dict[str, Any]], *,
                     interval_minutes: int, ready: bool, now: datetime) -> DiscoveryDecision:
    meta = environment["metadata"]
    status: dict[str, Any] = dict(environment.get("status") or {})
    decision = DiscoveryDecision(status)
    tracking = track(status.get("activeDiscovery"), jobs, iso(now))
    status["activeDiscovery"] = tracking.active
    if tracking.finished is not None:
        done = tracking.finished
        status["discovery"] = done
        if done["result"] == RunResult.SUCCEEDED.value:
            decision.events.append(Event("Normal", "Discovered", done.get("message")
                                         or f"discovery {done['id']} finished"))
        else:
            decision.events.append(Event("Warning", "DiscoveryFailed", done.get("message")
                                         or f"discovery {done['id']} failed"))
    active = tracking.active
    if tracking.create_job and active is not None:
        decision.start = StartDiscovery(active["id"], active["jobName"],
                                        active.get("trigger") or "Schedule",
                                        bool(active.get("full")))
        return decision

    interval = timedelta(minutes=interval_minutes)
    last_start = parse_time((status.get("discovery") or {}).get("startTime"))
    status["nextDiscoveryTime"] = iso(last_start + interval) if last_start else None
    if active is not None or not ready:
        return decision
    trigger: tuple[str, str, bool] | None = None
    reset = (meta.get("annotations") or {}).get(RESET_WATERMARK_ANNOTATION)
    if reset and reset != status.get("lastWatermarkReset"):
        status["lastWatermarkReset"] = reset
        trigger = ("Reset", reset, True)
    elif last_start is None:
        trigger = ("Initial", "initial", True)
    elif now >= last_start + interval:
        trigger = ("Schedule", iso(last_start + interval), False)
    if trigger is None:
        return decision
    kind, key, full = trigger
    run_id = run_id_for(meta["uid"], f"Discovery{kind}", key)
    name = job_name(f"{meta['name']}-discovery", run_id)
    status["activeDiscovery"] = {"id": run_id, "jobName": name, "trigger": kind, "full": full,
                                 "startTime": iso(now), "result": RunResult.PENDING.value}
    decision.start = StartDiscovery(run_id, name, kind, full)
    return decision
