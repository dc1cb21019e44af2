"""5,000 users into a tenant with its write quota enforced and 429s, 5xx answers and dropped
connections injected: every user is created exactly once and no object fails."""

from __future__ import annotations

from pathlib import Path

from tests.integration.entra.tenants import ferry, member_sync, new_tenant, totals
from tests.support.graph_emulator.fixture import GraphEmulator

USERS = 5000
QUOTA, WINDOW = 2500, 10
# Ferry is told a window 2 s longer than the tenant's, as an operator leaves headroom: a write
# that a loaded machine holds up on its way by up to that long still meets the tenant's quota.
PACED_WINDOW = WINDOW + 2


def test_a_big_run_through_throttling_and_faults_creates_each_user_once(
        entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    source = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All",))
    target = new_tenant(entra_emulator, tmp_path)
    entra_emulator.admin.seed(source.tenant_id, users=[{
        "userPrincipalName": f"user{i:05d}@{source.domain}", "mail": f"user{i:05d}@{source.domain}",
        "displayName": f"User {i:05d}", "mailNickname": f"user{i:05d}", "surname": "Load",
        "accountEnabled": True} for i in range(USERS)])
    entra_emulator.admin.set_write_quota(target.tenant_id, target.client_id, QUOTA, WINDOW)
    quota = f"    writeQuota: {{writes: {QUOTA}, perSeconds: {PACED_WINDOW}}}\n"
    member_sync(tmp_path, source, target, target_extra=quota)
    admin = entra_emulator.admin
    # Each rule takes the next matching requests, so the first creates meet them in a row:
    # the first user's POST sees all four kinds before it goes through.
    admin.inject_fault(r"^/v1\.0/users$", method="POST", count=3, status=503)
    admin.inject_fault(r"^/v1\.0/users$", method="POST", count=3, status=429, retry_after=1)
    admin.inject_fault(r"^/v1\.0/users$", method="POST", count=2, reset=True)
    admin.inject_fault(r"^/v1\.0/users$", method="POST", count=1, status=502)
    # Whole batches lost: their creates are looked up before they are sent again.
    admin.inject_fault(r"^/v1\.0/\$batch$", method="POST", count=2, reset=True)
    admin.inject_fault(r"^/v1\.0/\$batch$", method="POST", count=1, status=504)

    done = ferry(tmp_path, "run")
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert all(rule["remaining"] == 0 for rule in admin.faults()), admin.faults()
    users = admin.users(target.tenant_id)
    names = [u["userPrincipalName"] for u in users]
    assert len(names) == USERS and len(set(names)) == USERS
    assert totals(tmp_path)[0] == {"created": USERS, "updated": 0, "deleted": 0, "errors": 0}
    # Paced under the quota: the tenant never had to throttle Ferry (the 429s were injected).
    assert admin.counters(target.tenant_id)["throttled"] == 0


def test_a_refused_object_is_reported_with_graphs_code_and_the_run_goes_on(
        entra_emulator: GraphEmulator, tmp_path: Path) -> None:
    source = new_tenant(entra_emulator, tmp_path, roles=("User.Read.All",))
    target = new_tenant(entra_emulator, tmp_path)
    entra_emulator.admin.seed(source.tenant_id, users=[
        {"userPrincipalName": f"{n}@{source.domain}", "mail": f"{n}@{source.domain}",
         "mailNickname": n, "displayName": n.title()} for n in ("ann", "bob")])
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "environments.yaml").write_text(
        source.environment("a", object_types="[users]") + "---\n"
        + target.environment("b", object_types="[users]"))
    # No domain mapping: the users keep their source domain, which the target does not own.
    (folder / "sync.yaml").write_text("""apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {name: members}
spec:
  attributeMappings:
    - {target: userPrincipalName, apply: OnCreate, objectTypes: [users], expression:
        "source.mailNickname == 'ann' ? source.mailNickname + '@%s' : source.userPrincipalName"}
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {name: a-to-b}
spec:
  steps:
    - {name: read, readFrom: {environments: [a, b]}}
    - {name: stage, stageData: {template: members, pairs: [{source: a, target: b,
        objectTypes: [users]}]}}
    - {name: write, writeTo: {environments: [b]}}
""" % target.domain)  # noqa: UP031 (YAML braces)
    done = ferry(tmp_path, "run")
    assert done.returncode == 4, done.stdout + done.stderr   # some objects failed
    text = " ".join((done.stdout + done.stderr).split())
    assert f"create CN=bob@{source.domain}: Request_BadRequest:" in text, text[-3000:]
    assert [u["mailNickname"] for u in entra_emulator.admin.users(target.tenant_id)] == ["ann"]
    assert totals(tmp_path)[0] == {"created": 1, "updated": 0, "deleted": 0, "errors": 1}
