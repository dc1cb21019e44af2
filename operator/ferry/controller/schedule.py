"""When a Workflow runs next: pure time arithmetic over its schedule, no clocks read here."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ferry.api.workflow import Schedule
from ferry.errors import InvalidInput


class ScheduleError(InvalidInput, ValueError):
    """The schedule cannot be evaluated (an unknown time zone)."""


def describe(schedule: Schedule, suspended: bool = False) -> str:
    """The schedule in words for status and `kubectl get`."""
    if schedule.interval_minutes is not None:
        words = f"every {schedule.interval_minutes}m"
    elif schedule.time_of_day is not None:
        words = f"daily {schedule.time_of_day} {schedule.time_zone}"
    else:
        words = "manual"
    return f"{words} (suspended)" if suspended and words != "manual" else words


def is_manual(schedule: Schedule) -> bool:
    return schedule.interval_minutes is None and schedule.time_of_day is None


def due_slot(schedule: Schedule, anchor: datetime, now: datetime) -> datetime | None:
    """The latest scheduled time after anchor (the last scheduled run, or creation) and not
    after now; None when nothing is due. Missed slots collapse into one run."""
    if schedule.interval_minutes is not None:
        step = timedelta(minutes=schedule.interval_minutes)
        if now < anchor + step:
            return None
        return anchor + step * ((now - anchor) // step)
    if schedule.time_of_day is not None:
        zone = _zone(schedule)
        local_now = now.astimezone(zone)
        slot = _at(local_now.date(), schedule.time_of_day, zone)
        if slot > local_now:
            slot = _at(local_now.date() - timedelta(days=1), schedule.time_of_day, zone)
        return slot if slot > anchor else None
    return None


def next_run(schedule: Schedule, anchor: datetime, now: datetime) -> datetime | None:
    """The first scheduled time after both anchor and now; None for manual schedules."""
    if schedule.interval_minutes is not None:
        step = timedelta(minutes=schedule.interval_minutes)
        if now < anchor + step:
            return anchor + step
        return anchor + step * ((now - anchor) // step + 1)
    if schedule.time_of_day is not None:
        zone = _zone(schedule)
        start = max(anchor, now).astimezone(zone)
        slot = _at(start.date(), schedule.time_of_day, zone)
        return slot if slot > start else _at(start.date() + timedelta(days=1),
                                             schedule.time_of_day, zone)
    return None


def _zone(schedule: Schedule) -> ZoneInfo:
    try:
        return ZoneInfo(schedule.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {schedule.time_zone!r}; use an IANA name such"
                            " as Europe/Berlin or UTC") from None


def _at(day: object, hhmm: str, zone: ZoneInfo) -> datetime:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes), tzinfo=zone)  # type: ignore[arg-type]
