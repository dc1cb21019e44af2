"""Changed-objects-only runs against real Samba read what changed, not the whole target.

One SRC/TGT pair, in file order: a first run (full), then changed runs whose plan files
say what each side was read (`reads`), and what the DCs end up holding.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import ldap3
import pytest

from ferry.lab.samba import DomainSpec, Lab, free_addresses
from ferry.lab.seed import seed

from .scenario import Scenario, objects, write_manifests

pytestmark = pytest.mark.lab

TARGET_OU = "OU=Migrated,DC=tgt,DC=test"
N_USERS, N_GROUPS, N_CONTACTS = 200, 10, 20


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("changed-lab")
    src_ip, tgt_ip = free_addresses(2, first=20)
    lab = Lab(max_runtime=4 * 3600)  # a killed session's DCs end themselves
    src, tgt = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", src_ip),
                                     DomainSpec("TGT.TEST", "TGT", tgt_ip)])
    try:
        seeded = seed(src, users=N_USERS, groups=N_GROUPS, contacts=N_CONTACTS, seed=5)
        folder = root / "work"
        write_manifests(folder / "manifests", src, tgt, target_ou=TARGET_OU)
        yield Scenario(src, tgt, seeded, folder, root / "lab" / "secrets")
    finally:
        lab.down(root / "lab")


def _reads(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["role"]: r for r in plan["reads"]}


def _total(plan: dict[str, Any], key: str) -> int:
    return sum(c[key] for c in plan["counts"].values())


def _run(scenario: Scenario) -> dict[str, Any]:
    done, plan = scenario.run_json("run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return plan


def _modify(conn: ldap3.Connection, dn: str, **values: str) -> None:
    conn.modify(dn, {k: [(ldap3.MODIFY_REPLACE, [v])] for k, v in values.items()})
    assert conn.result["result"] == 0, conn.result


def _add_user(conn: ldap3.Connection, dn: str, sam: str, **values: str) -> None:
    conn.add(dn, ["top", "person", "organizationalPerson", "user"],
             {"sAMAccountName": sam, **values})
    assert conn.result["result"] == 0, conn.result


def test_first_run_reads_both_sides_in_full(scenario: Scenario) -> None:
    plan = _run(scenario)
    reads = _reads(plan)
    assert reads["source"]["full"] and reads["target"]["full"]
    assert reads["target"]["reason"] == "a source was read in full"
    assert _total(plan, "created") >= N_USERS
    # The target's OU did not exist when it was read: it had nothing to take a watermark
    # of, so the first changed run reads it in full, saying so, and takes one.
    plan = _run(scenario)
    reads = _reads(plan)
    assert not reads["source"]["full"] and reads["target"]["full"], reads
    assert "no target watermark" in reads["target"]["reason"]


def test_one_source_change_reads_neither_side_whole(scenario: Scenario) -> None:
    total = len(objects(scenario.tgt, TARGET_OU, "(|(objectClass=user)(objectClass=group)"
                                                "(objectClass=contact))"))
    conn = scenario.src.connect()
    _modify(conn, scenario.seeded.special["zoe"], title="Harbour Master")
    conn.unbind()
    plan = _run(scenario)
    reads = _reads(plan)
    assert plan["mode"] == "changed"
    assert not reads["source"]["full"] and not reads["target"]["full"], reads
    # The one change (and what the DC itself touched meanwhile, such as logon times).
    assert reads["source"]["objects"] < N_USERS / 10, reads
    # Not the whole target: what the change touches, and the groups each run retries (the
    # seed's conflicting users are members, so those groups wait for them); their members
    # are known to exist, not read.
    assert reads["target"]["objects"] < total / 4, reads
    assert [(op["kind"], op["changes"]) for op in plan["pairs"][0]["operations"]] == [
        ("update", {"title": "Harbour Master"})]
    (zoe,) = objects(scenario.tgt, TARGET_OU, "(cn=Zoë Ångström)")
    assert zoe["title"] == "Harbour Master"
    # Once this run's own write has been seen, a run with nothing new reads next to nothing.
    plan = _run(scenario)
    reads = _reads(plan)
    assert reads["source"]["objects"] < N_USERS / 10, reads
    assert reads["target"]["objects"] < total / 4 and reads["target"]["deltaObjects"] <= 1, reads
    assert plan["pairs"][0]["operations"] == []


def test_a_target_edited_by_someone_else_is_put_back_by_the_next_changed_run(
        scenario: Scenario) -> None:
    (zoe,) = objects(scenario.tgt, TARGET_OU, "(cn=Zoë Ångström)")
    conn = scenario.tgt.connect()
    _modify(conn, zoe["dn"], title="Someone Else Was Here")
    conn.unbind()
    plan = _run(scenario)
    reads = _reads(plan)
    assert not reads["target"]["full"] and reads["target"]["deltaObjects"] >= 1, reads
    assert [(op["kind"], op["changes"]) for op in plan["pairs"][0]["operations"]] == [
        ("update", {"title": "Harbour Master"})]
    (zoe,) = objects(scenario.tgt, TARGET_OU, "(cn=Zoë Ångström)")
    assert zoe["title"] == "Harbour Master"


def test_a_new_source_user_joins_the_unjoined_target_its_match_rule_finds(
        scenario: Scenario) -> None:
    tgt = scenario.tgt.connect()
    _add_user(tgt, f"CN=Nell Existing,{TARGET_OU}", "nell.existing", employeeID="E-900001")
    tgt.unbind()
    (existing,) = objects(scenario.tgt, TARGET_OU, "(employeeID=E-900001)")
    src = scenario.src.connect()
    _add_user(src, f"CN=Nell Newcomer,{scenario.seeded.corp_dn}", "nell.newcomer",
              employeeID="E-900001", mail="nell.newcomer@src.test")
    src.unbind()
    plan = _run(scenario)
    assert not _reads(plan)["target"]["full"], plan["reads"]
    assert _total(plan, "created") == 0, plan["counts"]
    (joined,) = objects(scenario.tgt, TARGET_OU, "(employeeID=E-900001)")
    assert joined["objectGUID"] == existing["objectGUID"]
    assert joined["employeeType"] == "EMP-E-900001"   # the template's mapping, written


def test_a_new_source_user_with_two_candidates_is_a_conflict(scenario: Scenario) -> None:
    tgt = scenario.tgt.connect()
    for name in ("Twin One", "Twin Two"):
        _add_user(tgt, f"CN={name},{TARGET_OU}", name.lower().replace(" ", "."),
                  employeeID="E-900002")
    tgt.unbind()
    src = scenario.src.connect()
    _add_user(src, f"CN=Tess Twinned,{scenario.seeded.corp_dn}", "tess.twinned",
              employeeID="E-900002")
    src.unbind()
    plan = _run(scenario)
    assert not _reads(plan)["target"]["full"], plan["reads"]
    # (The seed's two users sharing a mail are retried, and still conflict, every run.)
    (conflict,) = [c for c in plan["pairs"][0]["conflicts"] if "Tess" in c["source_dn"]]
    assert sorted(conflict["candidates"]) == [f"CN=Twin One,{TARGET_OU}",
                                              f"CN=Twin Two,{TARGET_OU}"], conflict
    assert _total(plan, "created") == 0 and _total(plan, "updated") == 0, plan["counts"]
    twins = objects(scenario.tgt, TARGET_OU, "(employeeID=E-900002)")
    assert sorted(t["sAMAccountName"] for t in twins) == ["twin.one", "twin.two"]
    assert all("employeeType" not in t for t in twins)


def test_a_store_without_a_target_watermark_reads_the_target_in_full_and_says_why(
        scenario: Scenario) -> None:
    with sqlite3.connect(scenario.state) as db:   # a store written before target deltas
        gone = db.execute("DELETE FROM watermarks WHERE workflow LIKE '%#target'").rowcount
    assert gone == 1
    conn = scenario.src.connect()
    _modify(conn, scenario.seeded.special["zoe"], title="Lighthouse Keeper")
    conn.unbind()
    plan = _run(scenario)
    reads = _reads(plan)
    assert not reads["source"]["full"]
    assert reads["target"]["full"] and "no target watermark" in reads["target"]["reason"]
    assert [(op["kind"], op["changes"]) for op in plan["pairs"][0]["operations"]] == [
        ("update", {"title": "Lighthouse Keeper"})]
    assert "full_because" in scenario.outputs[-1]
    plan = _run(scenario)   # and the next one is partial again
    assert not _reads(plan)["target"]["full"], plan["reads"]


def test_a_changed_run_killed_half_way_then_run_again_writes_everything_once(
        scenario: Scenario) -> None:
    src = scenario.src.connect()
    for index in range(60):
        _add_user(src, f"CN=Kill Test {index},{scenario.seeded.corp_dn}", f"kill.test{index}",
                  mail=f"kill.test{index}@src.test", title="Before The Kill")
    src.unbind()
    process = scenario.ferry("run", wait=False)
    deadline = time.monotonic() + 300
    while len(objects(scenario.tgt, TARGET_OU, "(sAMAccountName=kill.test*)", ["1.1"])) < 10:
        assert process.poll() is None, "the run finished before it could be killed"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    plan = _run(scenario)
    assert not _reads(plan)["target"]["full"], plan["reads"]
    assert _total(plan, "errors") == 0, plan["counts"]
    made = objects(scenario.tgt, TARGET_OU, "(sAMAccountName=kill.test*)", ["sAMAccountName"])
    assert sorted(u["sAMAccountName"] for u in made) == sorted(
        f"kill.test{i}" for i in range(60))
    plan = _run(scenario)
    for key in ("created", "updated", "moved", "deleted", "errors"):
        assert _total(plan, key) == 0, (key, plan["counts"])
