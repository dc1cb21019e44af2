"""What a run records of Graph's throttling (status, then ferry_graph_* metrics): the 429s it
waited out and every request it sent again, counted by the connector against the emulator's
injected faults over real HTTPS."""

from __future__ import annotations

from pathlib import Path

from tests.integration.entra.tenants import new_tenant
from tests.support.graph_emulator.fixture import GraphEmulator

from ferry.api.loader import load_manifests
from ferry.connectors.base import Throttled
from ferry.connectors.factory import open_connector
from ferry.engine.records import ObjectType
from ferry.secrets import SecretResolver
from ferry.settings import RunSettings


def test_the_connector_counts_429s_and_requests_sent_again(
        entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    tenant = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All",))
    entra_emulator.admin.seed(tenant.tenant_id, users=[
        {"userPrincipalName": f"{n}@{tenant.domain}", "displayName": n} for n in ("ann", "bob")])
    (tmp_path / "env.yaml").write_text(tenant.environment("cloud", object_types="[users]"))
    env = load_manifests([tmp_path / "env.yaml"]).environments["cloud"]
    connector = open_connector(env, SecretResolver.from_environment(None, tmp_path),
                               RunSettings())
    try:
        assert isinstance(connector, Throttled)
        assert connector.throttling() == (0, 0)
        admin = entra_emulator.admin
        admin.inject_fault(r"^/v1\.0/users", method="GET", count=2, status=429, retry_after=1)
        admin.inject_fault(r"^/v1\.0/users", method="GET", count=1, status=503)
        read = connector.read([ObjectType.USER], [])
        assert all(rule["remaining"] == 0 for rule in admin.faults()), admin.faults()
        assert sorted(str(r.attributes["displayName"]) for r in read.records) == ["ann", "bob"]
        assert connector.throttling() == (2, 3)   # two 429s; those and the 503 sent again
    finally:
        connector.close()
