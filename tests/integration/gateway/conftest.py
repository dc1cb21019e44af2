"""Fixtures: one real `ferry gateway` for the session (see harness.py), fresh names per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from tests.integration.gateway.harness import RunningGateway, start_gateway


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """One gateway for the session, default leases, on 127.0.0.100."""
    running = start_gateway(tmp_path_factory.mktemp("gateway"), "127.0.0.100")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def environment() -> str:
    """A fresh environment name, so tests sharing the gateway never see each other's work."""
    return f"env-{uuid.uuid4().hex[:8]}"

