"""Fixtures of the CLI tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.bad_input import Listener


@pytest.fixture
def listener() -> Iterator[Listener]:
    """A loopback port that shows whether a command tried to reach a directory."""
    port = Listener()
    yield port
    port.close()
