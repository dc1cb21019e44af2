"""Migration runs through real agents: `ferry plan` and `ferry run` with a Template that keeps
source SIDs (sidHistory), a source agent that only reads and a target agent on the target DC
([dc] smb_conf), as an administrator would check afterwards: with ldapsearch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from tests.integration.agent.test_agent_runs import AgentFleet, ferry_run, manifests
from tests.integration.agent.test_agent_runs import fleet as fleet
from tests.integration.agent.test_sid_history_samba import ldapsearch, object_sid

from ferry_agent.directory import add_members, create
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab

SID_HISTORY = "  sidHistory:\n    enabled: true\n"


def seed(lab: Any, ou: str, users: int) -> list[str]:
    """Users and a group of them in SRC below ou; their sAMAccountNames, the group's last."""
    conn = lab.src.connect()
    names, members = [], []
    for i in range(users):
        sam = f"sh{uuid.uuid4().hex[:10]}"
        dn = build_dn(f"History User {i} {sam}", ou)
        create(conn, "user", dn, {"sAMAccountName": [sam], "givenName": ["History"],
                                  "sn": [f"User {i}"], "userPrincipalName": [f"{sam}@src.test"]})
        names.append(sam)
        members.append(dn)
    group = f"shg{uuid.uuid4().hex[:8]}"
    create(conn, "group", build_dn(group, ou), {"sAMAccountName": [group]})
    add_members(conn, build_dn(group, ou), members)
    conn.unbind()
    return [*names, group]


def with_sid_history(folder: Path) -> Path:
    template = folder / "template.yaml"
    template.write_text(template.read_text().rstrip("\n") + "\n" + SID_HISTORY)
    return folder


def plan(folder: Path, fleet: AgentFleet, state: Path, lab: Any, out: Path
         ) -> subprocess.CompletedProcess[str]:
    token_file = state.parent / "job-credential"
    token_file.write_text(fleet.gateway.credential("src", "tgt", subject=state.name))
    env = {**os.environ, "FERRY_SECRETS_DIR": str(lab.root / "secrets"),
           "FERRY_GATEWAY_URL": fleet.gateway.url, "FERRY_GATEWAY_CA": str(fleet.gateway.ca_file),
           "FERRY_GATEWAY_TOKEN_FILE": str(token_file)}
    return subprocess.run([sys.executable, "-m", "ferry", "plan", "-f", str(folder), "--state",
                           str(state), "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=900, check=False, cwd=state.parent)


def sid_histories(lab: Any, names: list[str]) -> dict[str, list[str]]:
    return {name: ldapsearch(lab.tgt, f"(sAMAccountName={name})", "sIDHistory")
            for name in names}


def counted(state: Path, key: str) -> list[int]:
    from ferry.state.store import StateStore

    with StateStore(str(state), read_only=True) as store:
        return [sum(c.get(key, 0) for c in run.counts.values())
                for run in store.runs.recent(None, 10)]


def test_sid_history_is_set_once_and_only_once(fleet: AgentFleet, lab: Any, src_ou: str,
                                               tgt_ou: str, tmp_path: Path) -> None:
    names = seed(lab, src_ou, 3)
    unmatched = f"shx{uuid.uuid4().hex[:8]}"   # a target user no source object joins
    conn = lab.tgt.connect()
    create(conn, "user", build_dn(unmatched, tgt_ou), {"sAMAccountName": [unmatched]})
    conn.unbind()
    folder = with_sid_history(manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent"))
    fleet.start("src", "src-agent")
    fleet.start("tgt", "tgt-dc-agent", write_subtrees=tgt_ou, on_dc=True)
    state = tmp_path / "state" / "state.sqlite"
    state.parent.mkdir()
    expected = {name: [object_sid(lab.src, name)] for name in names}

    planned = plan(folder, fleet, state, lab, tmp_path / "plan.json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    lines = [a for p in json.loads((tmp_path / "plan.json").read_text())["pairs"]
             for a in p["sidHistory"]]
    assert sorted(a["sid"] for a in lines) == sorted(s for (s,) in expected.values())
    assert {a["message"] for a in lines} == {f"sIDHistory would get {s}"
                                             for (s,) in expected.values()}
    assert not state.exists(), "test mode writes no state"

    first = ferry_run(folder, fleet, state, lab)
    assert first.returncode == 0, first.stdout + first.stderr
    assert sid_histories(lab, names) == expected
    assert sid_histories(lab, [unmatched]) == {unmatched: []}
    assert counted(state, "sidHistory") == [len(names)]

    again = ferry_run(folder, fleet, state, lab)
    assert again.returncode == 0, again.stdout + again.stderr
    assert sid_histories(lab, names) == expected
    assert counted(state, "sidHistory") == [0, len(names)]


def test_an_agent_off_the_dc_says_what_to_configure(fleet: AgentFleet, lab: Any, src_ou: str,
                                                    tgt_ou: str, tmp_path: Path) -> None:
    names = seed(lab, src_ou, 1)
    folder = with_sid_history(manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent"))
    fleet.start("src", "src-agent")
    fleet.start("tgt", "tgt-agent", write_subtrees=tgt_ou)   # not on the DC: no [dc]
    state = tmp_path / "state" / "state.sqlite"
    state.parent.mkdir()
    run = ferry_run(folder, fleet, state, lab)
    assert run.returncode != 0
    assert "[dc] smb_conf" in run.stdout + run.stderr
    assert sid_histories(lab, names[:1]) == {names[0]: []}


# -- passwords ---------------------------------------------------------------------------

PASSWORD_SYNC = "    sync:\n      mode: Replication\n"


def with_password_sync(folder: Path) -> Path:
    template = folder / "template.yaml"
    text = template.read_text().replace("    mustChangeAtNextLogon: true\n", PASSWORD_SYNC)
    assert PASSWORD_SYNC in text
    template.write_text(text)
    return folder


def signs_in(lab: Any, sam: str, password: str, tmp_path: Path) -> dict[str, bool]:
    """Whether `password` works for TGT\\sam by LDAPS simple bind, NTLM (SAMR over SMB with
    rpcclient) and Kerberos (kinit against TGT's KDC)."""
    import ldap3
    from tests.integration.lab.clients import Clients, require_tools

    require_tools()
    folder = tmp_path / f"signin-{uuid.uuid4().hex[:6]}"
    clients = Clients(lab.root, folder)
    tls = ldap3.Tls(ca_certs_file=str(lab.tgt.ca_file))
    server = ldap3.Server(lab.tgt.ip, port=636, use_ssl=True, tls=tls)
    conn = ldap3.Connection(server, f"{sam}@{lab.tgt.dns_domain}", password)
    ldaps = bool(conn.bind())
    conn.unbind()
    ntlm = clients.rpcclient(f"ncacn_np:{lab.tgt.ip}", "getusername", domain=lab.tgt,
                             user=sam, password=password).returncode == 0
    kerberos = clients.kinit(f"{sam}@{lab.tgt.realm}", password).returncode == 0
    return {"ldaps": ldaps, "ntlm": ntlm, "kerberos": kerberos}


WORKS = {"ldaps": True, "ntlm": True, "kerberos": True}


def seed_with_passwords(lab: Any, ou: str, count: int) -> dict[str, str]:
    conn = lab.src.connect()
    users = {}
    for i in range(count):
        sam = f"pw{uuid.uuid4().hex[:10]}"
        password = f"Src!{uuid.uuid4().hex[:12]}a{i}"
        create(conn, "user", build_dn(f"Password User {i} {sam}", ou),
               {"sAMAccountName": [sam], "userPrincipalName": [f"{sam}@src.test"],
                "givenName": ["Password"], "sn": [f"User {i}"]}, password=password)
        users[sam] = password
    conn.unbind()
    return users


def set_source_password(lab: Any, sam: str, password: str) -> None:
    from ldap3 import MODIFY_REPLACE

    conn = lab.src.connect()
    conn.search(lab.src.base_dn, f"(sAMAccountName={sam})", attributes=["cn"])
    (entry,) = conn.entries
    assert conn.modify(entry.entry_dn, {"unicodePwd": [(MODIFY_REPLACE, [
        f'"{password}"'.encode("utf-16-le")])]}), conn.result
    conn.unbind()


def files_holding(root: Path, secrets: list[bytes]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {s[:4]!r}..." for s in secrets if s in data]
    return found


def nt_hash(password: str) -> bytes:
    from Cryptodome.Hash import MD4

    return MD4.new(password.encode("utf-16-le")).digest()


def test_passwords_follow_users_to_the_target(fleet: AgentFleet, lab: Any, src_ou: str,
                                              tgt_ou: str, tmp_path: Path) -> None:
    users = seed_with_passwords(lab, src_ou, 3)
    unmatched, unmatched_password = f"pwx{uuid.uuid4().hex[:8]}", "Tgt!Untouched-123"
    conn = lab.tgt.connect()
    create(conn, "user", build_dn(unmatched, tgt_ou), {"sAMAccountName": [unmatched]},
           password=unmatched_password)
    conn.unbind()
    folder = with_password_sync(manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent"))
    fleet.start("src", "src-agent")
    fleet.start("tgt", "tgt-agent", write_subtrees=tgt_ou)
    state = tmp_path / "state" / "state.sqlite"
    state.parent.mkdir()

    planned = plan(folder, fleet, state, lab, tmp_path / "plan.json")
    assert planned.returncode == 0, planned.stdout + planned.stderr
    lines = [u for p in json.loads((tmp_path / "plan.json").read_text())["pairs"]
             for u in p["passwords"]]
    assert len(lines) == len(users)
    assert {u["message"] for u in lines} == {"password would be synced"}

    first = ferry_run(folder, fleet, state, lab)
    assert first.returncode == 0, first.stdout + first.stderr
    for sam, password in users.items():
        assert signs_in(lab, sam, password, tmp_path) == WORKS, sam
    assert signs_in(lab, unmatched, unmatched_password, tmp_path) == WORKS
    assert counted(state, "passwords") == [len(users)]

    changed, old = next(iter(users.items()))
    new = f"Changed!{uuid.uuid4().hex[:10]}"
    set_source_password(lab, changed, new)
    # Kept as it stands now: the state a run killed after its sets (before the watermark
    # moved) leaves behind.
    before = state.read_bytes()
    second = ferry_run(folder, fleet, state, lab)
    assert second.returncode == 0, second.stdout + second.stderr
    assert signs_in(lab, changed, new, tmp_path) == WORKS
    # NTLM (and so Samba's LDAP simple bind) still take the previous password for the DC's
    # "old password allowed period" (60 min by default), as Windows does; Kerberos does not.
    assert signs_in(lab, changed, old, tmp_path)["kerberos"] is False
    assert counted(state, "passwords") == [1, len(users)]

    state.write_bytes(before)   # the killed run, repeated: same change, same result
    repeated = ferry_run(folder, fleet, state, lab)
    assert repeated.returncode == 0, repeated.stdout + repeated.stderr
    assert signs_in(lab, changed, new, tmp_path) == WORKS
    assert counted(state, "passwords") == [1, len(users)]

    secrets = [s for p in [*users.values(), new] for s in
               (p.encode(), p.encode("utf-16-le"), nt_hash(p), nt_hash(p).hex().encode())]
    assert files_holding(tmp_path, secrets) == []
    assert files_holding(fleet.gateway.folder, secrets) == []


def ferry_check(folder: Path, fleet: AgentFleet, lab: Any, tmp_path: Path) -> tuple[int, str]:
    """`ferry check -f folder` through the fleet's gateway: exit code and output, one line."""
    token_file = tmp_path / "check-credential"
    token_file.write_text(fleet.gateway.credential("src", "tgt", subject="check"))
    env = {**os.environ, "FERRY_SECRETS_DIR": str(lab.root / "secrets"), "COLUMNS": "300",
           "FERRY_GATEWAY_URL": fleet.gateway.url, "FERRY_GATEWAY_CA": str(fleet.gateway.ca_file),
           "FERRY_GATEWAY_TOKEN_FILE": str(token_file)}
    checked = subprocess.run([sys.executable, "-m", "ferry", "check", "-f", str(folder)],
                             env=env, capture_output=True, text=True, timeout=600, check=False)
    return checked.returncode, " ".join((checked.stdout + checked.stderr).split())


def test_ferry_check_names_what_password_sync_and_sid_history_need(
        fleet: AgentFleet, lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    folder = with_sid_history(with_password_sync(
        manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent")))
    fleet.start("src", "src-agent")
    fleet.start("tgt", "tgt-agent", write_subtrees=tgt_ou)   # not on the DC
    code, output = ferry_check(folder, fleet, lab, tmp_path)
    assert code == 1, output
    # The lab's agents bind as Administrator: the rights are there, the DC is not.
    assert "DS-Replication-Get-Changes" in output or "Replicating Directory Changes" in output
    assert "[dc] smb_conf" in output
    assert "135" in output and "445" in output


def test_dc_agent_relays(  # short: the watcher's socket path is bounded (107 bytes)
        fleet: AgentFleet, lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    """DCAgent mode: a source password change reaches the target within seconds, no run."""
    from tests.support.polling import eventually

    users = seed_with_passwords(lab, src_ou, 2)
    folder = manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent")
    template = folder / "template.yaml"
    template.write_text(template.read_text().replace(
        "    mustChangeAtNextLogon: true\n", "    sync:\n      mode: DCAgent\n"))
    fleet.start("src", "dca", password_changes=True)
    fleet.start("tgt", "tgt-agent", write_subtrees=tgt_ou)
    # The gateway relays along the routes and joins runs keep: one state store for both,
    # as in the chart.
    state = Path(fleet.gateway.state)
    code, output = ferry_check(folder, fleet, lab, tmp_path)
    assert code == 0, output
    assert "password changes: running (syncpasswords pid" in output
    first = ferry_run(folder, fleet, state, lab)   # joins the users, publishes the route
    assert first.returncode == 0, first.stdout + first.stderr
    for sam, password in users.items():   # replicated on the run, as in Replication mode
        assert signs_in(lab, sam, password, tmp_path)["kerberos"], sam

    changed = next(iter(users))
    new = f"Agent!{uuid.uuid4().hex[:10]}"
    set_source_password(lab, changed, new)
    # No run in between: the DC agent's change, relayed by the gateway to TGT's agent.
    eventually(lambda: signs_in(lab, changed, new, tmp_path)["kerberos"], timeout=120,
               what="the new password to work on TGT")
    assert signs_in(lab, changed, new, tmp_path) == WORKS
    log = fleet.log("dca")
    assert "notJoined" not in log and f"password change of {changed}" in log
    secrets = [s for p in [*users.values(), new] for s in
               (p.encode(), p.encode("utf-16-le"), nt_hash(p), nt_hash(p).hex().encode())]
    assert files_holding(tmp_path, secrets) == []
    assert files_holding(fleet.gateway.folder, secrets) == []


def test_a_run_killed_while_it_sets_passwords_is_repeated_without_harm(
        fleet: AgentFleet, lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    from tests.support.polling import eventually

    users = seed_with_passwords(lab, src_ou, 3)
    folder = with_password_sync(manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent"))
    fleet.start("src", "src-agent")
    fleet.start("tgt", "tgt-agent", write_subtrees=tgt_ou)
    state = tmp_path / "state" / "state.sqlite"
    state.parent.mkdir()
    run = ferry_run(folder, fleet, state, lab, wait=False)
    eventually(lambda: '"operation": "set_passwords"' in fleet.gateway.log_text()
               or run.poll() is not None, timeout=600, what="the run to send passwords")
    run.kill()   # SIGKILL, as the passwords are on their way to the target's agent
    assert run.wait(timeout=30) == -9, "the run ended before it was killed"

    again = ferry_run(folder, fleet, state, lab)
    assert again.returncode == 0, again.stdout + again.stderr
    for sam, password in users.items():
        assert signs_in(lab, sam, password, tmp_path) == WORKS, sam
    conn = lab.tgt.connect()
    conn.search(tgt_ou, "(objectClass=user)", attributes=["sAMAccountName"])
    found = sorted(e["raw_attributes"]["sAMAccountName"][0].decode() for e in conn.response
                   if e.get("type") == "searchResEntry")
    conn.unbind()
    assert found == sorted(users)   # each user once
