"""The Microsoft Graph + Entra sign-in emulator (tests/support/graph_emulator) for this folder.

Fixtures:
    graph_emulator  one emulator process for the session (HTTPS on 127.0.0.121, any free port)
    tenant_app      a fresh tenant with a verified domain and an app holding the usual
                    application permissions and a client secret (helpers.TenantApp)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.integration.graph.helpers import TenantApp, new_tenant
from tests.support.graph_emulator.fixture import GraphEmulator


@pytest.fixture(scope="session")
def graph_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path_factory.mktemp("graph-emulator")) as emulator:
        yield emulator


@pytest.fixture
def tenant_app(graph_emulator: GraphEmulator) -> Iterator[TenantApp]:
    yield new_tenant(graph_emulator)
    graph_emulator.admin.clear_faults()  # a test's leftover rules must not hit the next one
