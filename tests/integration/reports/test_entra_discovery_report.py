"""`ferry discover` and `ferry report discovery` of an Entra ID Environment (the Graph
emulator): what Graph has is filled in, and no account is called stale for lack of a logon
time Graph was not asked for."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.entra.tenants import new_tenant
from tests.integration.reports.lab_reports import Ferry
from tests.support.graph_emulator.fixture import GraphEmulator

READER = ("User.Read.All", "Group.Read.All", "OrgContact.Read.All")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path_factory.mktemp("report-emulator"), address="127.0.0.122") as em:
        yield em


def test_an_entra_environment_reports_what_graph_has(emulator: GraphEmulator,
                                                     tmp_path: Path) -> None:
    tenant = new_tenant(emulator, tmp_path, roles=READER)
    upn = f"ann@{tenant.domain}"
    emulator.admin.seed(tenant.tenant_id, users=[
        {"userPrincipalName": upn, "displayName": "Ann", "mail": upn},
        {"userPrincipalName": f"bob@{tenant.domain}", "displayName": "Bob",
         "accountEnabled": False}],
        groups=[{"displayName": "Team", "mail": f"team@{tenant.domain}", "members": [upn]}])
    ferry = Ferry(tmp_path, tmp_path)
    ferry.manifests.mkdir()
    (ferry.manifests / "cloud.yaml").write_text(tenant.environment("cloud"))
    assert "full discovery: 3 objects (1 groups, 2 users)" in ferry.ok(
        "discover", "-f", str(ferry.manifests))
    out = tmp_path / "report"
    ferry.ok("report", "discovery", "cloud", "--out", str(out))
    users = {r["userPrincipalName"]: r for r in csv.DictReader(
        io.StringIO((out / "users.csv").read_text()))}
    ann, bob = users[upn], users[f"bob@{tenant.domain}"]
    assert (ann["name"], ann["mail"], ann["enabled"], ann["logon"]) == ("Ann", upn, "true", "")
    assert (bob["enabled"], bob["logon"], bob["lastLogon"]) == ("false", "", "")
    [team] = csv.DictReader(io.StringIO((out / "groups.csv").read_text()))
    assert (team["name"], team["members"], team["mail"]) == ("Team", "1",
                                                             f"team@{tenant.domain}")
    page = (out / "summary.html").read_text()
    assert "does not report logon times here" in page and ">never logged on<" not in page
