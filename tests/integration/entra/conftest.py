"""Sync runs into Entra ID tenants of the Graph emulator (tests/support/graph_emulator)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.support.graph_emulator.fixture import GraphEmulator


@pytest.fixture(scope="session")
def entra_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path_factory.mktemp("entra-emulator"), address="127.0.0.122") as em:
        yield em
