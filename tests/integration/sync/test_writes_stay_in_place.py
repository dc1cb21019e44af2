"""Writes stay where they belong, through the `ferry` CLI against real Samba: a delete
threshold holds back everything that follows from the deletions it holds back, and a member
outside the pair's scope is reported as such, run after run, never as deferred."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ferry.lab.seed import SeedSummary
from ferry_agent.directory import ensure_ou
from ferry_agent.directory.write import add_members, create, delete
from ferry_agent.dn import build_dn

from .scenario import GROUPS, Scenario, objects, snapshot, write_manifests

pytestmark = pytest.mark.lab


def _scenario(lab: Any, src_ou: str, tgt_ou: str, folder: Path, threshold: int) -> Scenario:
    """examples/ad-to-ad reading only src_ou and writing only tgt_ou, full runs."""
    manifests = write_manifests(folder / "manifests", lab.src, lab.tgt, target_ou=tgt_ou,
                                changed_only=False, threshold=threshold)
    env = manifests / "environments.yaml"
    env.write_text(env.read_text().replace("OU=Corp,DC=src,DC=test", src_ou))
    seeded = SeedSummary(lab.src.base_dn, src_ou, lab.src.dns_domain)
    return Scenario(lab.src, lab.tgt, seeded, folder, lab.root / "secrets")


def _user(conn: Any, name: str, container: str, **extra: list[str]) -> str:
    sam = f"{name.split()[0].lower()}{uuid.uuid4().hex[:6]}"
    dn = build_dn(name, container)
    create(conn, "user", dn, {"sAMAccountName": [sam], "givenName": [name.split()[0]],
                              "sn": [name.split()[-1]], "mail": [f"{sam}@src.test"],
                              "userPrincipalName": [f"{sam}@src.test"], **extra},
           password="Src-Pw-1234!ab", enabled=True)
    return dn


def _members(scenario: Scenario, tgt_ou: str, cn: str) -> list[str]:
    [group] = objects(scenario.tgt, tgt_ou, f"(&{GROUPS}(cn={cn}))", ["member"])
    return sorted(str(m).lower() for m in group.get("member") or [])


@pytest.fixture
def outside_ou(lab: Any) -> Iterator[str]:
    """An OU on SRC that no Environment's scope covers."""
    dn = f"OU=Outside-{uuid.uuid4().hex[:8]},{lab.src.base_dn}"
    conn = lab.src.connect()
    ensure_ou(conn, dn)
    try:
        yield dn
    finally:
        delete(conn, dn, tree=True)
        conn.unbind()


def test_a_held_back_deletion_keeps_group_members_and_managers(
        lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    scenario = _scenario(lab, src_ou, tgt_ou, tmp_path, threshold=3)
    conn = lab.src.connect()
    people = [_user(conn, f"Held{i} Person", src_ou) for i in range(4)]
    people.append(_user(conn, "Kept Person", src_ou, manager=[people[0]]))
    team = build_dn("Held Team", src_ou)
    create(conn, "group", team, {"sAMAccountName": [f"team{uuid.uuid4().hex[:6]}"]})
    add_members(conn, team, people)
    done = scenario.ferry("run")
    assert done.returncode == 0, done.stdout[-3000:]
    assert len(_members(scenario, tgt_ou, "Held Team")) == 5
    [kept] = objects(scenario.tgt, tgt_ou, "(cn=Kept Person)", ["manager"])
    assert str(kept["manager"]).lower().startswith("cn=held0 person,")

    # A bad source: four accounts vanish (AD takes them out of the group and clears the
    # manager that pointed at one), one more than the threshold allows.
    for dn in people[:4]:
        delete(conn, dn)
    conn.unbind()
    before = snapshot(scenario.tgt, tgt_ou)
    done, plan = scenario.run_json("run")
    assert done.returncode == 3, done.stdout[-3000:]
    assert "delete threshold" in done.stdout and "nothing was deleted" in " ".join(
        done.stdout.split())
    assert plan["pairs"][0]["operations"] == []
    # Nothing in the target changed: the group keeps its members, the accounts (USNs too)
    # are as they were, the kept user keeps her manager.
    assert snapshot(scenario.tgt, tgt_ou) == before
    assert len(_members(scenario, tgt_ou, "Held Team")) == 5


def test_a_member_outside_the_scope_is_reported_as_out_of_scope_on_every_run(
        lab: Any, src_ou: str, tgt_ou: str, outside_ou: str, tmp_path: Path) -> None:
    scenario = _scenario(lab, src_ou, tgt_ou, tmp_path, threshold=10)
    conn = lab.src.connect()
    inside = _user(conn, "Inside Member", src_ou)
    outsider = _user(conn, "Outside Member", outside_ou)
    mixed = build_dn("Mixed Team", src_ou)
    create(conn, "group", mixed, {"sAMAccountName": [f"mixed{uuid.uuid4().hex[:6]}"]})
    add_members(conn, mixed, [inside, outsider])
    conn.unbind()

    for attempt in ("first", "second"):
        done, plan = scenario.run_json("run")
        assert done.returncode == 0, f"{attempt} run: {done.stdout[-3000:]}"
        groups = plan["counts"]["group"]
        assert (groups["outOfScope"], groups["deferred"]) == (1, 0), (attempt, groups)
        [reported] = plan["pairs"][0]["outOfScope"]
        assert reported["attribute"] == "member"
        assert reported["reference_dn"].lower() == outsider.lower()
        shown = " ".join(done.stdout.split())
        assert "out of scope:" in shown and outsider in shown, shown[-3000:]
        assert "Mixed Team" in reported["message"] and outsider in reported["message"]

        results = scenario.ferry("runs", "--run", plan["runId"])
        listing = " ".join(results.stdout.split())
        assert "outOfScope" in listing and "Mixed Team" in listing, listing
    assert _members(scenario, tgt_ou, "Mixed Team") == [
        build_dn("Inside Member", tgt_ou).lower()]
    assert plan["pairs"][0]["operations"] == []  # the second run: nothing to do
