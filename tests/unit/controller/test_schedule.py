from datetime import UTC, datetime, timedelta

import pytest

from ferry.api.workflow import Schedule
from ferry.controller.schedule import ScheduleError, describe, due_slot, next_run

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)


def test_interval_is_due_one_interval_after_the_anchor_and_collapses_missed_slots() -> None:
    every = Schedule(interval_minutes=60)
    assert due_slot(every, T0, T0 + timedelta(minutes=59)) is None
    assert due_slot(every, T0, T0 + timedelta(minutes=61)) == T0 + timedelta(hours=1)
    # five missed hours: one run, at the latest slot
    assert due_slot(every, T0, T0 + timedelta(hours=5, minutes=3)) == T0 + timedelta(hours=5)
    assert next_run(every, T0 + timedelta(hours=5), T0 + timedelta(hours=5, minutes=3)) == \
        T0 + timedelta(hours=6)


def test_time_of_day_in_a_time_zone() -> None:
    daily = Schedule(time_of_day="02:30", time_zone="Europe/Berlin")
    before = datetime(2026, 11, 21, 1, 0, tzinfo=UTC)       # 02:00 in Berlin
    after = datetime(2026, 11, 21, 1, 31, tzinfo=UTC)       # 02:31 in Berlin
    anchor = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert due_slot(daily, anchor, before) is None
    slot = due_slot(daily, anchor, after)
    assert slot is not None and slot.astimezone(UTC) == datetime(2026, 11, 21, 1, 30, tzinfo=UTC)
    assert next_run(daily, slot, after).astimezone(UTC) == \
        datetime(2026, 11, 22, 1, 30, tzinfo=UTC)
    # already ran at today's slot: nothing more is due today
    assert due_slot(daily, slot, after + timedelta(hours=3)) is None


def test_manual_and_descriptions() -> None:
    assert due_slot(Schedule(), T0, T0 + timedelta(days=9)) is None
    assert next_run(Schedule(), T0, T0) is None
    assert describe(Schedule()) == "manual"
    assert describe(Schedule(interval_minutes=30)) == "every 30m"
    assert describe(Schedule(interval_minutes=30), suspended=True) == "every 30m (suspended)"
    assert describe(Schedule(time_of_day="02:30")) == "daily 02:30 UTC"


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(ScheduleError, match="unknown time zone 'Mars/Olympus'"):
        next_run(Schedule(time_of_day="02:30", time_zone="Mars/Olympus"), T0, T0)
