"""AD to AD through the `ferry` CLI against real Samba: the foundation's user-visible promises.

The tests run in file order as one migration story on their own SRC/TGT pair: plan, first
run, second run, one change, rename and move, deletes, the threshold. The SIGKILL test uses
its own target OU and state.
"""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import ldap3
import pytest

from ferry.lab.samba import DomainSpec, Lab, LabDomain, free_addresses
from ferry.lab.seed import seed
from ferry_agent.directory.connection import DirectoryEndpoint, connect
from ferry_agent.directory.errors import DirectoryConnectionError
from ferry_agent.dn import parent_dn, rdn_value, same_dn, split_dn

from .scenario import (
    CONTACTS,
    GROUPS,
    INITIAL_PASSWORD,
    USERS,
    Scenario,
    objects,
    snapshot,
    write_manifests,
)

pytestmark = pytest.mark.lab

TARGET_OU = "OU=Migrated,DC=tgt,DC=test"
N_USERS, N_GROUPS, N_CONTACTS = 1000, 50, 100


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("sync-lab")
    src_ip, tgt_ip = free_addresses(2, first=20)
    lab = Lab(max_runtime=4 * 3600)  # a killed session's DCs end themselves
    src, tgt = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", src_ip),
                                     DomainSpec("TGT.TEST", "TGT", tgt_ip)])
    try:
        seeded = seed(src, users=N_USERS, groups=N_GROUPS, contacts=N_CONTACTS, seed=3)
        folder = root / "work"
        write_manifests(folder / "manifests", src, tgt, target_ou=TARGET_OU)
        yield Scenario(src, tgt, seeded, folder, root / "lab" / "secrets")
    finally:
        lab.down(root / "lab")


def _counts(plan: dict, key: str) -> dict[str, int]:
    return {t: c[key] for t, c in plan["counts"].items()}


def _total(plan: dict, key: str) -> int:
    return sum(_counts(plan, key).values())


def test_plan_leaves_target_exactly_as_it_was(scenario: Scenario) -> None:
    before = snapshot(scenario.tgt, scenario.tgt.base_dn)
    done, plan = scenario.run_json("plan")
    after = snapshot(scenario.tgt, scenario.tgt.base_dn)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "plan (test mode, nothing written)" in done.stdout
    total = sum(len(p["operations"]) for p in plan["pairs"])
    assert done.stdout.count("\n  create ") == 40
    assert f"... and {total - 40} more operations in the plan file" in done.stdout
    assert before == after
    assert _counts(plan, "created") == {"user": N_USERS - 2, "group": N_GROUPS,
                                        "contact": N_CONTACTS}
    # Test mode writes nothing anywhere: not even run history.
    runs = scenario.ferry("runs")
    assert "ad-to-ad" not in runs.stdout


def test_full_run_creates_users_groups_and_contacts_with_mapped_attributes(
        scenario: Scenario) -> None:
    done, plan = scenario.run_json("run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert _counts(plan, "created") == {"user": N_USERS - 2, "group": N_GROUPS,
                                        "contact": N_CONTACTS}
    assert _total(plan, "errors") == 0
    tgt = scenario.tgt
    users = {u["dn"]: u for u in objects(tgt, TARGET_OU, USERS)}
    assert len(users) == N_USERS - 2
    assert len(objects(tgt, TARGET_OU, GROUPS)) == N_GROUPS
    assert len(objects(tgt, TARGET_OU, CONTACTS)) == N_CONTACTS

    source = {u["sAMAccountName"]: u for u in objects(scenario.src, scenario.seeded.corp_dn,
                                                        USERS)}
    by_sam = {u["sAMAccountName"]: u for u in users.values()}
    for sam, s in source.items():
        if s["mail"] == scenario.seeded.shared_mail:
            assert sam not in by_sam
            continue
        t = by_sam[sam]
        for attribute in ("givenName", "sn", "displayName", "department", "title",
                          "employeeID"):
            assert t.get(attribute) == s.get(attribute), (sam, attribute)
        assert t["userPrincipalName"] == s["userPrincipalName"].replace("@src.test",
                                                                        "@tgt.test")
        assert t["mail"] == s["mail"].replace("@src.test", "@tgt.test")
        assert f"SMTP:{t['mail']}" in t["proxyAddresses"]
        assert t["employeeType"] == f"EMP-{s['employeeID']}"
        assert t["description"] == f"Migrated from SRC: {sam}"
        department_ou = split_dn(parent_dn(s["dn"]))[0]   # OU=Sales etc.
        expected_parent = (f"{department_ou},{TARGET_OU}"
                           if department_ou in ("OU=Sales", "OU=Engineering") else TARGET_OU)
        assert same_dn(parent_dn(t["dn"]), expected_parent), t["dn"]
        disabled_source = int(s["userAccountControl"]) & 2
        assert int(t["userAccountControl"]) & 2 == disabled_source, sam

    # Names that need escaping and non-ASCII names arrived intact.
    names = {u["cn"] for u in users.values()}
    assert {"Smith, John", "A+B", "#Hash", '"Quoted"', "Zoë Ångström", "Łukasz Żółć"} <= names

    # Manager references point at the joined target objects.
    # (a manager that is one of the conflicting users is not synced, so neither is the link).
    by_dn = {u["dn"].lower(): u for u in source.values()}
    managed = [(s, by_sam[sam]) for sam, s in source.items() if s.get("manager")
               and sam in by_sam and by_dn[s["manager"].lower()]["sAMAccountName"] in by_sam]
    assert len(managed) > 10
    for s, t in managed:
        manager_sam = by_dn[s["manager"].lower()]["sAMAccountName"]
        assert t["manager"].lower() == by_sam[manager_sam]["dn"].lower()

    # Memberships, nested included, mirror SRC (members that were not synced aside).
    src_groups = {g["cn"]: g for g in objects(scenario.src, scenario.seeded.corp_dn, GROUPS)}
    tgt_groups = {g["cn"]: g for g in objects(tgt, TARGET_OU, GROUPS)}
    src_cn = {o["dn"].lower(): o["cn"] for o in objects(scenario.src, scenario.seeded.corp_dn,
                                                        "(cn=*)", ["cn"])}
    tgt_cn = {o["dn"].lower(): o["cn"] for o in objects(tgt, TARGET_OU, "(cn=*)",
                                                        ["cn"])}
    conflicts = {"Chris Taylor", "Christopher Taylor"}
    for name, group in src_groups.items():
        want = {src_cn[m.lower()] for m in group.get("member", [])} - conflicts
        have = {tgt_cn[m.lower()] for m in tgt_groups[name].get("member", [])}
        assert len(want) > 0 or name == "All Departments", name
        assert have == want, name
    outer, inner = (rdn_value(dn) for dn in scenario.seeded.nested)
    assert any(tgt_cn[m.lower()] == inner for m in tgt_groups[outer]["member"])


def test_users_sharing_a_mail_are_a_conflict_and_nothing_is_written_for_them(
        scenario: Scenario) -> None:
    shared = scenario.seeded.shared_mail.replace("@src.test", "@tgt.test")
    assert objects(scenario.tgt, TARGET_OU, f"(mail={shared})") == []
    last = scenario.outputs[-1]
    assert "conflict:" in last and "Chris Taylor" in last and "Christopher Taylor" in last


def test_second_run_changes_nothing(scenario: Scenario) -> None:
    before = snapshot(scenario.tgt, TARGET_OU)
    for extra in (("--full",), ()):   # a full re-read and a changed-objects-only run
        done, plan = scenario.run_json("run", *extra)
        assert done.returncode == 0, done.stdout[-2000:]
        for key in ("created", "updated", "moved", "deleted", "errors"):
            assert _total(plan, key) == 0, (extra, key, plan["counts"])
        assert plan["pairs"][0]["operations"] == []
    assert snapshot(scenario.tgt, TARGET_OU) == before


def _source_user(scenario: Scenario, label: str) -> str:
    return scenario.seeded.special[label]


def test_one_changed_attribute_updates_exactly_that_object(scenario: Scenario) -> None:
    dn = _source_user(scenario, "zoe")
    conn = scenario.src.connect()
    conn.modify(dn, {"title": [(ldap3.MODIFY_REPLACE, ["Chief Cartographer"])]})
    assert conn.result["result"] == 0
    conn.unbind()
    done, plan = scenario.run_json("run")
    assert done.returncode == 0, done.stdout[-2000:]
    assert plan["mode"] == "changed"
    operations = plan["pairs"][0]["operations"]
    assert [(op["kind"], op["changes"]) for op in operations] == [
        ("update", {"title": "Chief Cartographer"})]
    assert _total(plan, "updated") == 1
    (target,) = objects(scenario.tgt, TARGET_OU, "(cn=Zoë Ångström)")
    assert target["title"] == "Chief Cartographer"


def test_rename_and_move_follow_the_joined_object_without_duplicates(
        scenario: Scenario) -> None:
    dn = _source_user(scenario, "jose")   # in OU=Engineering
    (before,) = objects(scenario.tgt, TARGET_OU, "(cn=José Müller)")
    users_before = len(objects(scenario.tgt, TARGET_OU, USERS))
    conn = scenario.src.connect()
    conn.modify_dn(dn, "CN=José Müller-Schmidt",
                   new_superior=f"OU=Sales,{scenario.seeded.corp_dn}")
    assert conn.result["result"] == 0, conn.result
    conn.unbind()
    done, plan = scenario.run_json("run")
    assert done.returncode == 0, done.stdout[-2000:]
    assert _total(plan, "moved") == 1 and _total(plan, "created") == 0
    (after,) = objects(scenario.tgt, TARGET_OU, "(cn=José Müller-Schmidt)")
    assert after["objectGUID"] == before["objectGUID"]
    assert after["dn"] == f"CN=José Müller-Schmidt,OU=Sales,{TARGET_OU}"
    assert objects(scenario.tgt, TARGET_OU, "(cn=José Müller)") == []
    assert len(objects(scenario.tgt, TARGET_OU, USERS)) == users_before


def _delete_source_users(scenario: Scenario, count: int, skip: int) -> list[str]:
    users = sorted(u["sAMAccountName"] for u in objects(
        scenario.src, f"OU=Finance,{scenario.seeded.corp_dn}", USERS))
    chosen = users[skip:skip + count]
    conn = scenario.src.connect()
    for sam in chosen:
        conn.search(scenario.seeded.corp_dn, f"(sAMAccountName={sam})", attributes=["1.1"])
        conn.delete(conn.response[0]["dn"])
        assert conn.result["result"] == 0, conn.result
    conn.unbind()
    return chosen


def test_deleting_five_source_users_deletes_their_joined_objects(scenario: Scenario) -> None:
    gone = _delete_source_users(scenario, 5, skip=0)
    users_before = len(objects(scenario.tgt, TARGET_OU, USERS))
    done, plan = scenario.run_json("run")
    assert done.returncode == 0, done.stdout[-2000:]
    assert _counts(plan, "deleted").get("user") == 5
    for sam in gone:
        assert objects(scenario.tgt, TARGET_OU, f"(sAMAccountName={sam})") == []
    assert len(objects(scenario.tgt, TARGET_OU, USERS)) == users_before - 5


def test_deletes_above_the_threshold_delete_nothing_and_exit_3(scenario: Scenario) -> None:
    _delete_source_users(scenario, 11, skip=5)
    before = snapshot(scenario.tgt, TARGET_OU)
    done, plan = scenario.run_json("run")
    assert done.returncode == 3, done.stdout[-2000:]
    assert "delete threshold" in done.stdout and "11" in done.stdout
    assert _total(plan, "deleted") == 0
    after = snapshot(scenario.tgt, TARGET_OU)
    assert set(after) == set(before)


def test_created_users_can_bind_with_the_password_ferry_set_which_is_stored_nowhere(
        scenario: Scenario) -> None:
    (user,) = objects(scenario.tgt, TARGET_OU, "(cn=Smith, John)")
    endpoint = DirectoryEndpoint(host=scenario.tgt.ip, bind_user=user["userPrincipalName"],
                                 password=INITIAL_PASSWORD, base_dn=scenario.tgt.base_dn,
                                 ca_file=str(scenario.tgt.ca_file))
    connect(endpoint).unbind()     # raises if the password was not set
    with pytest.raises(DirectoryConnectionError):
        connect(DirectoryEndpoint(host=scenario.tgt.ip, bind_user=user["userPrincipalName"],
                                  password="wrong-" + INITIAL_PASSWORD,
                                  base_dn=scenario.tgt.base_dn,
                                  ca_file=str(scenario.tgt.ca_file)))
    assert scenario.outputs
    for output in scenario.outputs:
        assert INITIAL_PASSWORD not in output
    for plan_file in scenario.folder.glob("*.json"):
        assert INITIAL_PASSWORD not in plan_file.read_text()
    for file in scenario.folder.glob("state.sqlite*"):
        assert INITIAL_PASSWORD.encode() not in file.read_bytes()
        assert INITIAL_PASSWORD.encode("utf-16-le") not in file.read_bytes()
    with sqlite3.connect(scenario.state) as db:
        for (table,) in db.execute("select name from sqlite_master where type='table'"):
            for row in db.execute(f"select * from {table}"):
                assert INITIAL_PASSWORD not in repr(row)


@pytest.fixture
def fresh_tgt(scenario: Scenario, tmp_path: Path) -> Iterator[tuple[LabDomain, Path]]:
    """An empty TGT.TEST of its own (account names are unique per domain, so a second copy
    of SRC cannot go into the scenario's TGT), and a secrets folder for it and SRC."""
    (ip,) = free_addresses(1, first=20)
    lab = Lab(max_runtime=4 * 3600)  # a killed session's DCs end themselves
    (tgt,) = lab.up(tmp_path / "lab", [DomainSpec("TGT.TEST", "TGT", ip)])
    secrets = tmp_path / "secrets"
    shutil.copytree(scenario.secrets_dir / scenario.src.secret_name,
                    secrets / scenario.src.secret_name)
    shutil.copytree(tmp_path / "lab" / "secrets" / tgt.secret_name, secrets / tgt.secret_name)
    try:
        yield tgt, secrets
    finally:
        lab.down(tmp_path / "lab")


def test_sigkill_half_way_then_rerun_leaves_every_object_exactly_once(
        scenario: Scenario, fresh_tgt: tuple[LabDomain, Path], tmp_path: Path) -> None:
    tgt, secrets = fresh_tgt
    ou = TARGET_OU
    manifests = write_manifests(tmp_path / "m", scenario.src, tgt, target_ou=ou,
                                changed_only=False)
    state = tmp_path / "state.sqlite"
    process = scenario.ferry("run", manifests=manifests, state=state, secrets_dir=secrets,
                             wait=False)
    deadline = time.monotonic() + 300
    while len(objects(tgt, ou, USERS, ["1.1"])) < 300:
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    partial = len(objects(tgt, ou, "(objectClass=*)", ["1.1"]))

    done = scenario.ferry("run", "--out", str(tmp_path / "rerun.json"), manifests=manifests,
                          state=state, secrets_dir=secrets)
    assert done.returncode == 0, done.stdout[-3000:]
    rerun = json.loads((tmp_path / "rerun.json").read_text())
    assert _total(rerun, "errors") == 0

    expected_users = len(objects(scenario.src, scenario.seeded.corp_dn, USERS)) - 2
    users = objects(tgt, ou, USERS, ["sAMAccountName"])
    assert len(users) == expected_users
    assert len({u["sAMAccountName"] for u in users}) == expected_users
    assert len(objects(tgt, ou, GROUPS, ["1.1"])) == N_GROUPS
    assert len(objects(tgt, ou, CONTACTS, ["1.1"])) == N_CONTACTS
    assert partial < expected_users + N_GROUPS + N_CONTACTS
    _, third = scenario.run_json("run", manifests=manifests, state=state, secrets_dir=secrets)
    for key in ("created", "updated", "moved", "deleted", "errors"):
        assert _total(third, key) == 0, (key, third["counts"])
