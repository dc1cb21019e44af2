"""Waiting in tests: poll a condition until a deadline, never a bare sleep."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(check: Callable[[], T | None], what: str, timeout: float = 60) -> T:
    """Poll check until it returns a truthy value; fail naming what was awaited."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.3)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


def never(check: Callable[[], bool], what: str, window: float = 4.0) -> None:
    """Watch for window seconds that check stays false."""
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        assert not check(), what
        time.sleep(0.3)
