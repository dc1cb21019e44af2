"""`ferry check` against emulator tenants: each credential kind signs in and reads; a missing
Graph permission is named, in the CLI and in the operator's Connected check."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.integration.entra.tenants import ferry, new_tenant
from tests.support.graph_emulator.fixture import GraphEmulator
from tests.support.graph_emulator.keys import AppCertificate, FederatedIssuer

from ferry.api.loader import load_manifests
from ferry.controller.environments import check_connection
from ferry.secrets import SecretResolver
from ferry.settings import OperatorSettings

SUBJECT = "system:serviceaccount:ferry:ferry-sync"


@pytest.mark.parametrize("kind", ["secret", "certificate", "workload"])
def test_each_credential_kind_signs_in_and_reads(kind: str, entra_emulator: GraphEmulator,
                                                 tmp_path: Path) -> None:
    tenant = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All", "Group.Read.All"))
    entra_emulator.admin.seed(tenant.tenant_id, users=[
        {"userPrincipalName": f"someone@{tenant.domain}"}])
    client_id, credentials = tenant.client_id, ""
    if kind == "certificate":
        certificate = AppCertificate.create()
        client_id = entra_emulator.admin.register_app(
            tenant.tenant_id, certificates=[certificate.cert_pem],
            roles=["User.Read.All", "Group.Read.All"])["clientId"]
        pem = certificate.write(tmp_path / "app.pem")
        credentials = f"      certificate:\n        pem:\n          file: {pem}\n"
    elif kind == "workload":
        issuer = FederatedIssuer.create()
        client_id = entra_emulator.admin.register_app(
            tenant.tenant_id, roles=["User.Read.All", "Group.Read.All"],
            federated_credentials=[{"issuer": issuer.issuer, "subject": SUBJECT,
                                    "publicKeys": [issuer.public_key_pem]}])["clientId"]
        token = issuer.write_token(tmp_path / "sa-token", SUBJECT)
        credentials = f"      workloadIdentity:\n        tokenFile: {token}\n"
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "env.yaml").write_text(
        tenant.environment("cloud", client_id=client_id, credentials=credentials))
    done = ferry(tmp_path, "check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ok" in done.stdout and "users readable" in done.stdout
    assert "User.Read.All" in done.stdout


def test_missing_permissions_are_named(entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    tenant = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All",))
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "env.yaml").write_text(tenant.environment("fabrikam"))
    # A second tenant environment to read from: the same app will do.
    (folder / "rest.yaml").write_text(tenant.environment("other") + """---
apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {name: guests}
spec:
  guests: {createUnmatchedAsGuests: true}
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {name: in}
spec:
  steps:
    - {name: read, readFrom: {environments: [other, fabrikam]}}
    - name: stage
      stageData:
        template: guests
        pairs: [{source: other, target: fabrikam, objectTypes: [users, groups]}]
    - {name: write, writeTo: {environments: [fabrikam]}}
""")
    done = ferry(tmp_path, "check", "--environment", "fabrikam")
    assert done.returncode == 1, done.stdout + done.stderr
    text = " ".join(done.stdout.split())
    # User.ReadWrite.All also allows invitations, Group.ReadWrite.All memberships.
    assert "Group.ReadWrite.All (to write groups), User.ReadWrite.All (to write users)" in text
    assert "User.Read.All (" not in text  # granted already
    assert "grant them with admin consent" in text

    # The operator's Connected check names what reading the scope needs.
    manifests = load_manifests([folder])
    result = check_connection(manifests.environments["fabrikam"],
                              SecretResolver.from_environment(None, folder), OperatorSettings())
    assert (result.status, result.reason) == (False, "ConnectionFailed")
    assert "lacks the Graph application permission(s) Group.Read.All (to read groups);" \
        in result.message
