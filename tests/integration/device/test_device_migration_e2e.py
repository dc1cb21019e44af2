"""Issue 13 end to end, as a migration engineer checks it, with real processes only: a real
`ferry gateway`, real `ferry-agent run` directory agents for SRC and TGT, a real
`ferry-agent device run` per lab workstation, `ferry run -f DIR` for the Workflow and
`ferry devices run -f DIR` for the DeviceMigration, against this module's own Samba DCs (the
cached logon check stops TGT's DC).

Users and a group are synced SRC -> TGT by the Workflow (their RIDs differ: TGT has padding
users first), which keeps the SID table. Two workstations joined to SRC, each with its own
files on the lab file server (NT ACLs naming SRC users), a SOFTWARE hive with alice's
ProfileList entry, her NTUSER.DAT and a SRC group in BUILTIN\\Administrators, move in two
waves: WS1 (wave "pilot", selected by its label) at once, WS2 (wave "second") at a cutover
the engineer brings forward once it is Ready. Afterwards each is joined to TGT, its files,
profile and local group carry the TGT SIDs (read by smbd, libregf, Samba's profiles tool and
`net groupmap`), it rebooted after the delay and sent its log; a device agent killed with a
finished but unreported ReACL resumes without running it again; WS2 rolled back is a SRC
member again; a cached logon works with TGT's DC down; nothing secret is written anywhere.

Mode add (not replace): the source SIDs stay valid beside the target ones, so users keep
their access through the coexistence period and a rollback has nothing to undo.
"""

from __future__ import annotations

import base64
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.agent.test_agent_runs import AgentFleet, ferry_run, manifests
from tests.integration.conftest import LabDomains
from tests.integration.device.conftest import MoveLab
from tests.integration.device.device_agents import DeviceAgentProcess
from tests.integration.device.hive_readers import key_acls, libregf_read
from tests.integration.gateway.harness import RunningGateway, start_gateway
from tests.support.polling import eventually

from ferry.lab import Lab, workstations
from ferry.lab.fileserver import FileServer, seed_tree, smbcacls
from ferry.lab.hives import PROFILE_LIST, key_security, ntuser_hive, software_hive
from ferry.lab.samba import LDAPS_PORT, DomainSpec, LabDomain, _stop, free_addresses
from ferry.lab.services import port_open
from ferry.lab.workstations import Workstation
from ferry.state.store import StateStore
from ferry.sync.pairs import pair_key
from ferry_agent.directory import ensure_ou
from ferry_agent.directory.write import add_members, create
from ferry_agent.sid import parse_sid, sid_from_bytes

pytestmark = pytest.mark.lab

MIGRATION = "default/move-workstations"
ACTIONS = ["1-ReACL", "2-DomainJoin", "3-CacheCredentials", "4-Reboot", "5-UploadLogs"]
REBOOT_DELAY = 3
ADMINISTRATORS = "S-1-5-32-544"
SRC_PASSWORDS = {"alice": "Src!Pass-alice-1", "bob": "Src!Pass-bob-1"}
ALICE_TGT_PASSWORD = "Tgt!Pass-alice-1"      # what the helpdesk gave alice in TGT
# While this trigger exists the gateway cannot record WS2's results (the INSERT fails at run
# time, not as a constraint: a 500, not "already recorded"), so "journaled but not yet
# reported" is a state the test holds, not a moment it must hit. WS1's go through.
HOLD_WS2 = ("CREATE TRIGGER hold_ws2 BEFORE INSERT ON device_results WHEN NEW.device = 'WS2'"
            " BEGIN SELECT json('held by the test'); END")


@dataclass
class Device:
    """A lab workstation with what the test gave it and the agent that moves it."""

    ws: Workstation
    wave: str
    agent: DeviceAgentProcess
    files: list[Path]            # its file tree on the file server, top first
    software: Path
    ntuser: Path
    notices: Path                # one line per notice: "<epoch> <text>"
    marker: Path                 # one line per reboot command run: "<epoch>"

    @property
    def name(self) -> str:
        return self.ws.name


@dataclass
class Moved:
    """The migration once both devices are Done, and what was seen on the way."""

    lab: MoveLab
    domains: LabDomains
    gateway: RunningGateway
    fleet: AgentFleet
    fileserver: FileServer
    folder: Path                 # the manifests: Environments, Template, Workflow, migration
    sids: dict[str, tuple[str, str]]          # alice, bob, Finance: (SRC SID, TGT SID)
    devices: dict[str, Device]
    tokens: list[str]
    outputs: dict[str, str] = field(default_factory=dict)   # command -> what it printed
    ready_before_cutover: str = ""
    final: subprocess.CompletedProcess[str] | None = None
    machine_passwords: dict[str, str] = field(default_factory=dict)   # device: TGT's, joined


# -- the directories ---------------------------------------------------------------------------

def ldap(domain: LabDomain, search: str, *attributes: str) -> list[dict[str, str]]:
    """ldapsearch as Administrator over LDAPS: one {attribute: value} per entry ("dn" too)."""
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", f"ldaps://{domain.ip}",
         "-D", domain.admin_user, "-y", str(domain.password_file), "-b", domain.base_dn,
         search, *attributes],
        capture_output=True, text=True, check=True,
        env={"LDAPTLS_CACERT": str(domain.ca_file), "PATH": "/usr/bin:/bin"})
    entries: list[dict[str, str]] = []
    for line in done.stdout.splitlines():
        if line.startswith("#"):   # referrals to the configuration partition
            continue
        name, _, value = line.partition(": ")
        if name == "dn":
            entries.append({"dn": value})
        elif entries and name:
            entries[-1][name.rstrip(":")] = value
    return entries


def object_sid(domain: LabDomain, sam: str) -> str:
    (entry,) = ldap(domain, f"(sAMAccountName={sam})", "objectSid")
    sid, _ = sid_from_bytes(base64.b64decode(entry["objectSid"]))
    return str(sid)


def set_password(domain: LabDomain, sam: str, password: str) -> None:
    (entry,) = ldap(domain, f"(sAMAccountName={sam})", "dn")
    conn = domain.connect()
    assert conn.extend.microsoft.modify_password(entry["dn"], password), conn.result
    conn.unbind()


def seed_directories(lab: MoveLab) -> None:
    """SRC: alice, bob and Finance (alice in it) in OU=People; TGT: padding users first, so
    the synced objects get other RIDs there, the OUs users and computers go to."""
    src = lab.src.connect()
    people = f"OU=People,{lab.src.base_dn}"
    ensure_ou(src, people)
    for sam, given in (("alice", "Alice"), ("bob", "Bob")):
        create(src, "user", f"CN={given} Example,{people}", {
            "sAMAccountName": [sam], "givenName": [given], "sn": ["Example"],
            "mail": [f"{sam}@src.test"], "userPrincipalName": [f"{sam}@src.test"]},
            password=SRC_PASSWORDS[sam])
    create(src, "group", f"CN=Finance,{people}", {"sAMAccountName": ["Finance"]})
    add_members(src, f"CN=Finance,{people}", [f"CN=Alice Example,{people}"])
    src.unbind()
    tgt = lab.tgt.connect()
    for n in range(1, 4):
        create(tgt, "user", f"CN=pad{n},CN=Users,{lab.tgt.base_dn}",
               {"sAMAccountName": [f"pad{n}"]})
    for ou in ("Migrated", "Workstations"):
        ensure_ou(tgt, f"OU={ou},{lab.tgt.base_dn}")
    tgt.unbind()


# -- the workstations -----------------------------------------------------------------------

def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    path.chmod(0o755)
    return path


def file_acls(alice: str, bob: str, finance: str) -> tuple[str, str]:
    """(folder ACL, file ACL) in smbcacls syntax: alice full control, Finance change, bob
    read; owned by alice, group SRC's Domain Users (no match in TGT: reported, left)."""
    domain = alice.rsplit("-", 1)[0]
    common = (f"REVISION:1,OWNER:{alice},GROUP:{domain}-513,"
              "ACL:S-1-5-18:ALLOWED/0x0/FULL,ACL:S-1-5-32-544:ALLOWED/0x0/FULL")
    return (f"{common},ACL:{alice}:ALLOWED/OI|CI/FULL,ACL:{finance}:ALLOWED/OI|CI/CHANGE,"
            f"ACL:{bob}:ALLOWED/OI|CI/READ",
            f"{common},ACL:{alice}:ALLOWED/I/FULL,ACL:{finance}:ALLOWED/I/CHANGE,"
            f"ACL:{bob}:ALLOWED/I/READ")


def make_device(lab: MoveLab, server: FileServer, gateway: RunningGateway, name: str,
                wave: str, sids: dict[str, tuple[str, str]]) -> Device:
    """A workstation joined to SRC, its files, hives and local group naming SRC's SIDs,
    winbindd running, and the device agent's INI."""
    (ip,) = free_addresses(1)
    ws = workstations.create(lab.root, name, ip, [lab.src, lab.tgt], lab.src)
    alice, bob, finance = (sids[n][0] for n in ("alice", "bob", "Finance"))
    files = seed_tree(server, f"{name.lower()}/files", file_acls(alice, bob, finance), 2, 3)
    users = server.share / name.lower() / "Users"
    (users / "alice").mkdir(parents=True)
    ntuser = users / "alice" / "NTUSER.DAT"
    ntuser_hive(ntuser, alice, "alice")
    software = ws.folder / "SOFTWARE"
    software_hive(software, {alice: "alice"},
                  key_security(ADMINISTRATORS, ["S-1-5-18", ADMINISTRATORS, finance]))
    for words in (["groupmap", "add", f"sid={ADMINISTRATORS}", "unixgroup=root",
                   "type=builtin", "ntgroup=Administrators"],
                  ["groupmap", "addmem", ADMINISTRATORS, finance]):
        subprocess.run(["net", "-s", str(ws.smb_conf), *words], capture_output=True,
                       check=True)
    notices, marker = ws.folder / "notices", ws.folder / "rebooted"
    notify = script(ws.folder / "notify", f'echo "$(date +%s.%N) $*" >> {notices}')
    reboot = script(ws.folder / "reboot", f"date +%s.%N >> {marker}")
    workstations.write_ini(ws, str(reboot), labels=f"ring={wave}", linux={
        "file_roots": str(files[0]), "software_hive": str(software),
        "profiles_root": str(users), "notice_command": str(notify)})
    workstations.start_winbindd(ws)
    return Device(ws, wave, DeviceAgentProcess(ws, gateway), files, software, ntuser,
                  notices, marker)


def machine_password(ws: Workstation, workgroup: str) -> str:
    """The machine password the workstation holds for `workgroup` (secrets.tdb, by tdbdump:
    not Ferry's code), set by the join from the staged one-time password."""
    done = subprocess.run(["tdbdump", "-k", f"SECRETS/MACHINE_PASSWORD/{workgroup}",
                           str(ws.folder / "private" / "secrets.tdb")],
                          capture_output=True, check=True)
    raw = re.sub(rb"\\([0-9A-F]{2})", lambda m: bytes([int(m.group(1), 16)]),
                 done.stdout.strip())
    return raw.rstrip(b"\0").decode("utf-8")


def logon(device: Device, user: str, password: str) -> subprocess.CompletedProcess[str]:
    """The user logs on at the workstation (winbind's PAM logon, in winbindd's namespace)."""
    return subprocess.run(device.ws.wb("wbinfo", f"--pam-logon={user}%{password}"),
                          capture_output=True, text=True, check=False, timeout=120)


def log_on_when_asked(device: Device) -> None:
    """alice answers CacheCredentials' notice: she logs on once, against TGT."""
    eventually(lambda: device.agent.alive() or "please log on to it once as: alice" in
               (device.notices.read_text() if device.notices.exists() else ""),
               f"{device.name}'s notice asking alice to log on once", timeout=300)
    done = logon(device, "alice", ALICE_TGT_PASSWORD)
    assert done.returncode == 0, done.stdout + done.stderr


# -- the manifests and the CLI -----------------------------------------------------------------

def write_migration(folder: Path, tgt: LabDomain, cutover: datetime,
                    annotations: dict[str, str] | None = None) -> None:
    lines = "".join(f"    {k}: {v}\n" for k, v in (annotations or {}).items())
    (folder / "devices.yaml").write_text(f"""apiVersion: ferry.dev/v1alpha1
kind: DeviceMigration
metadata:
  name: move-workstations
{"  annotations:" + chr(10) + lines if lines else ""}spec:
  source: src
  target: tgt
  workflow: ad-to-ad
  actions: [ReACL, DomainJoin, CacheCredentials, Reboot, UploadLogs]
  waves:
    - name: pilot
      selector:
        matchLabels: {{ring: pilot}}
    - name: second
      devices: [WS2]
      cutover: "{cutover.isoformat().replace("+00:00", "Z")}"
  options:
    reacl: {{mode: add}}
    join: {{targetOU: "OU=Workstations,{tgt.base_dn}"}}
    cacheCredentials: {{users: [alice], timeoutSeconds: 600}}
    rebootDelaySeconds: {REBOOT_DELAY}
""", encoding="utf-8")


def devices_run(moved: Moved, *args: str) -> subprocess.Popen[str]:
    """`ferry devices run -f DIR --state <the gateway's state>` in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "ferry", "devices", "run", "-f", str(moved.folder), "--state",
         moved.gateway.state, "--interval", "1", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "250"})


def finished(process: subprocess.Popen[str], moved: Moved, what: str,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
        pytest.fail(f"{what} did not end within {timeout:.0f} s:\n{out[-4000:]}\n"
                    + "\n".join(d.agent.output()[-2000:] for d in moved.devices.values()))
    moved.outputs[f"{what} ({len(moved.outputs)})"] = out
    return subprocess.CompletedProcess(process.args, process.returncode, out, "")


def results_of(moved: Moved, device: str) -> dict[str, bool]:
    with StateStore(moved.gateway.state) as store:
        return {r.action_id: r.ok for r in store.devices.results(MIGRATION)
                if r.device == device}


# -- the migration -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def moved(own_move_lab: MoveLab, fileserver: FileServer,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Moved]:
    lab = own_move_lab
    root = Path(tmp_path_factory.mktemp("e2e"))
    domains = LabDomains(lab.src, lab.tgt, lab.src.folder.parent)   # its secrets/ are there
    seed_directories(lab)
    gateway = start_gateway(root / "gateway", "127.0.0.1")
    fleet = AgentFleet(gateway, root / "agents", domains)
    devices: dict[str, Device] = {}
    try:
        fleet.start("src", "src-agent")
        fleet.start("tgt", "tgt-agent", write_subtrees=f"OU=Migrated,{lab.tgt.base_dn};"
                                                       f"OU=Workstations,{lab.tgt.base_dn}")
        moved = Moved(lab, domains, gateway, fleet, fileserver, root / "manifests", {}, devices,
                      [])
        sync(moved)
        for name, wave in (("WS1", "pilot"), ("WS2", "second")):
            devices[name] = make_device(lab, fileserver, gateway, name, wave, moved.sids)
        migrate(moved)
        yield moved
    finally:
        for device in devices.values():
            device.agent.stop()
            workstations.stop(device.ws)
        fleet.stop()
        gateway.stop()


def sync(moved: Moved) -> None:
    """The Workflow, twice: objects created by a run get their SID translation in the next."""
    lab = moved.lab
    folder = manifests(moved.folder, moved.domains, f"OU=People,{lab.src.base_dn}",
                       f"OU=Migrated,{lab.tgt.base_dn}", "agent")
    template = folder / "template.yaml"
    template.write_text(template.read_text().replace("mustChangeAtNextLogon: true",
                                                     "mustChangeAtNextLogon: false"))
    for run in (1, 2):
        done = ferry_run(folder, moved.fleet, Path(moved.gateway.state), moved.domains)
        moved.outputs[f"ferry run {run}"] = done.stdout + done.stderr
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    moved.sids.update({sam: (object_sid(lab.src, sam), object_sid(lab.tgt, sam))
                       for sam in ("alice", "bob", "Finance")})
    set_password(lab.tgt, "alice", ALICE_TGT_PASSWORD)


def migrate(moved: Moved) -> None:
    """Tokens, enrollment, plans; WS2's ReACL result held and its agent killed; both devices
    moved, alice answering each CacheCredentials notice."""
    ws1, ws2 = moved.devices["WS1"], moved.devices["WS2"]
    write_migration(moved.folder, moved.lab.tgt, datetime.now(UTC) + timedelta(hours=1))
    wave = moved.gateway.cli("devices", "token", "create", MIGRATION)
    single = moved.gateway.cli("devices", "token", "create", MIGRATION, "--single-use")
    assert wave.returncode == 0 and single.returncode == 0, wave.stderr + single.stderr
    moved.tokens += [wave.stdout.strip(), single.stdout.strip()]
    for device, token in ((ws1, moved.tokens[0]), (ws2, moved.tokens[1])):
        enrolled = device.agent.enroll(token)
        assert enrolled.returncode == 0, enrolled.stdout + enrolled.stderr
        assert f"enrolled device {device.name} (device-" in enrolled.stdout
    database = sqlite3.connect(moved.gateway.state)
    database.execute(HOLD_WS2)
    database.commit()
    try:
        planned = finished(devices_run(moved, "--once"), moved, "ferry devices run --once")
        assert planned.returncode == 0, planned.stdout
        for device in (ws1, ws2):
            device.agent.start()
        # WS2: ReACL done and journaled; the gateway cannot take its result: killed now.
        eventually(lambda: ws2.agent.alive() or any(
            r["event"] == "finished" and r["action"] == "1-ReACL" for r in ws2.agent.journal()),
            "WS2's ReACL outcome in its journal", timeout=300)
        eventually(lambda: ws2.agent.alive() or "the gateway answered 500" in
                   ws2.agent.output(), "WS2's refused report in its log", timeout=120)
        ws2.agent.kill()
    finally:
        database.execute("DROP TRIGGER IF EXISTS hold_ws2")
        database.commit()
        database.close()
    assert results_of(moved, "WS2") == {}
    ws2.agent.start()

    log_on_when_asked(ws1)
    eventually(lambda: ws1.agent.alive() or ws2.agent.alive() or (
        all(results_of(moved, "WS1").get(a) for a in ACTIONS)
        and results_of(moved, "WS2") == {"1-ReACL": True}),
        "WS1 moved and WS2's ReACL reported", timeout=600)
    ready = finished(devices_run(moved, "--once"), moved, "ferry devices run --once")
    moved.ready_before_cutover = ready.stdout

    # The engineer brings WS2's cutover forward; its agent notices at its next poll.
    write_migration(moved.folder, moved.lab.tgt, datetime.now(UTC) - timedelta(minutes=1))
    run = devices_run(moved, "--timeout", "900")
    log_on_when_asked(ws2)
    moved.final = finished(run, moved, "ferry devices run")
    moved.machine_passwords.update({name: machine_password(device.ws, "TGT")
                                    for name, device in moved.devices.items()})


# -- what the engineer checks ----------------------------------------------------------------

def test_users_and_groups_were_synced_with_a_sid_table_of_differing_rids(moved: Moved) -> None:
    with StateStore(moved.gateway.state) as store:
        table = store.sid_translations.table([pair_key("ad-to-ad", "src", "tgt")]).entries
    for name, (source, target) in moved.sids.items():
        assert table.get(source) == target, name
        assert source.rsplit("-", 1)[1] != target.rsplit("-", 1)[1], f"{name}: same RID"
    dns = [e["dn"] for e in ldap(moved.lab.tgt, "(|(sAMAccountName=alice)(sAMAccountName=bob)"
                                                "(sAMAccountName=Finance))", "dn")]
    assert sorted(dns) == sorted(f"CN={cn},OU=Migrated,{moved.lab.tgt.base_dn}"
                                 for cn in ("Alice Example", "Bob Example", "Finance"))


def test_ferry_devices_run_shows_ws2_ready_before_its_cutover_then_both_done(
        moved: Moved) -> None:
    ready = moved.ready_before_cutover
    assert "Running 1/2 (WS1 Done, WS2 Ready)" in ready, ready
    assert "waiting for the wave's cutover at" in ready, ready
    final = moved.final
    assert final is not None and final.returncode == 0, final and final.stdout
    assert "Completed 2/2 (WS1 Done, WS2 Done)" in final.stdout, final.stdout
    for device in moved.devices.values():
        assert all(results_of(moved, device.name).get(a) for a in ACTIONS), device.name


def adcli_testjoin(device: Device, domain: LabDomain) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["adcli", "testjoin", f"--domain={domain.dns_domain}",
                           f"--domain-controller={domain.ip}",
                           f"--host-keytab={device.ws.keytab}"],
                          capture_output=True, text=True, check=False, env=device.ws.env())


def test_each_workstation_is_a_member_of_the_target_under_the_staged_ou(moved: Moved) -> None:
    tgt = moved.lab.tgt
    for device in moved.devices.values():
        if device.name == "WS2" and rolled_back(moved):
            continue   # the rollback test moved it back
        found = ldap(tgt, f"(sAMAccountName={device.name}$)", "dn", "dNSHostName")
        assert found == [{"dn": f"CN={device.name},OU=Workstations,{tgt.base_dn}",
                          "dNSHostName": f"{device.name.lower()}.{tgt.dns_domain}"}]
        done = adcli_testjoin(device, tgt)
        assert done.returncode == 0, done.stdout + done.stderr


def acl_lines(moved: Moved, path: Path) -> list[str]:
    """What smbd shows for the object: its ACE lines, SIDs numeric."""
    relative = path.relative_to(moved.fileserver.share).as_posix()
    return [line for line in smbcacls(moved.fileserver, relative).splitlines()
            if line.startswith("ACL:")]


def profile_list(hive: Path) -> dict[str, dict[str, str]]:
    prefix = "\\" + "\\".join(PROFILE_LIST) + "\\"
    return {path[len(prefix):]: values for path, values in libregf_read(hive)["keys"].items()
            if path.startswith(prefix)}


def test_files_profiles_and_local_groups_carry_the_target_sids(moved: Moved,
                                                                 tmp_path: Path) -> None:
    (alice, alice_tgt), (bob, bob_tgt), (finance, finance_tgt) = (
        moved.sids[n] for n in ("alice", "bob", "Finance"))
    for device in moved.devices.values():
        for path in device.files:
            acl = acl_lines(moved, path)
            for source, target in ((alice, alice_tgt), (bob, bob_tgt), (finance, finance_tgt)):
                # add mode: each source ACE is followed by its target copy
                at = next(i for i, line in enumerate(acl) if line.startswith(f"ACL:{source}:"))
                assert acl[at + 1] == acl[at].replace(source, target), (path, acl)
        profiles = profile_list(device.software)
        assert {alice, alice_tgt} <= set(profiles), profiles
        assert profiles[alice_tgt]["Sid"] == parse_sid(alice_tgt).to_bytes().hex()
        assert profiles[alice_tgt]["ProfileImagePath"] == profiles[alice]["ProfileImagePath"]
        assert key_acls(device.software, tmp_path)["ROOT"]["dacl"] == [
            "S-1-5-18", ADMINISTRATORS, finance, finance_tgt]
        for acl in key_acls(device.ntuser, tmp_path).values():
            assert alice_tgt in acl["dacl"], acl
        members = subprocess.run(["net", "-s", str(device.ws.smb_conf), "groupmap", "listmem",
                                  ADMINISTRATORS], capture_output=True, text=True, check=True)
        assert {finance, finance_tgt} <= set(members.stdout.split()), members.stdout


def test_each_rebooted_after_the_delay_and_its_log_reached_the_gateway(moved: Moved) -> None:
    for device in moved.devices.values():
        notices = device.notices.read_text().splitlines()
        reboot_notice = next(float(line.split()[0]) for line in notices if "restarts" in line)
        rebooted = float(device.marker.read_text().split()[0])
        assert rebooted - reboot_notice >= REBOOT_DELAY - 0.05, (notices, rebooted)
        with StateStore(moved.gateway.state) as store:
            log = store.devices.log(MIGRATION, device.name)
        assert log is not None and f"4-Reboot: Reboot done: reboot command run after" \
            f" {REBOOT_DELAY} s" in log, log
        assert "2-DomainJoin: DomainJoin done: joined tgt.test (TGT)" in log


def test_a_killed_device_agent_resumed_without_repeating_its_finished_reacl(
        moved: Moved) -> None:
    ws2 = moved.devices["WS2"]
    output = ws2.agent.output()
    assert output.count("1-ReACL: ReACL starts") == 1, output
    assert "generation 1 action 1-ReACL: sending the result recorded before the agent" \
        " stopped" in output, output
    starts = [r for r in ws2.agent.journal() if r["event"] == "started"
              and r["action"] == "1-ReACL"]
    assert [r["attempt"] for r in starts] == [1]
    with StateStore(moved.gateway.state) as store:
        (reacl,) = [r for r in store.devices.results(MIGRATION)
                    if r.device == "WS2" and r.action_id == "1-ReACL"]
    assert reacl.ok and reacl.attempt == 1
    assert reacl.details["files"]["scanned"] == len(ws2.files)


def rolled_back(moved: Moved) -> bool:
    return any("WS2 RolledBack" in out for out in moved.outputs.values())


def rollback_planned(moved: Moved) -> bool:
    with StateStore(moved.gateway.state) as store:
        return any(p.device == "WS2" and p.generation == 2 and p.actions[0].id.startswith("r")
                   for p in store.devices.plans(MIGRATION))


def test_a_device_rolled_back_is_a_member_of_the_source_again(moved: Moved) -> None:
    ws2 = moved.devices["WS2"]
    write_migration(moved.folder, moved.lab.tgt, datetime.now(UTC) - timedelta(minutes=1),
                    {"ferry.dev/rollback-devices": "WS2"})
    run = devices_run(moved, "--timeout", "600")
    eventually(lambda: rollback_planned(moved), "WS2's rollback plan in the store", timeout=300)
    # A done device asks for its runbook every 5 minutes; the user restarting WS2 (its agent
    # starts with the machine) has it ask at once.
    ws2.agent.stop()
    ws2.agent.start()
    done = finished(run, moved, "ferry devices run")
    assert done.returncode == 0, done.stdout
    assert "Completed 1/2 (WS1 Done, WS2 RolledBack)" in done.stdout, done.stdout
    assert "every device done or rolled back: 1 of 2 moved, 1 rolled back" in done.stdout
    joined = adcli_testjoin(ws2, moved.lab.src)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    net = subprocess.run(["net", "ads", "testjoin", "-s", str(ws2.ws.smb_conf), "-S",
                          moved.lab.src.ip], capture_output=True, text=True, check=False,
                         env=ws2.ws.env())
    assert net.returncode == 0, net.stdout + net.stderr
    alice = moved.sids["alice"][0]
    for path in ws2.files:   # add mode: the source SIDs were never taken away
        assert any(line.startswith(f"ACL:{alice}:") for line in acl_lines(moved, path))
    results = results_of(moved, "WS2")
    assert all(results.get(a) for a in ("r1-RestoreSource", "r2-UndoReACL", "r3-Reboot",
                                        "r4-UploadLogs")), results


def roll_forward_planned(moved: Moved) -> bool:
    with StateStore(moved.gateway.state) as store:
        return any(p.device == "WS2" and p.generation == 3 and p.actions[0].id == "1-ReACL"
                   for p in store.devices.plans(MIGRATION))


def test_a_rolled_back_device_named_for_a_retry_is_migrated_again(moved: Moved) -> None:
    ws2 = moved.devices["WS2"]
    if not rolled_back(moved):
        pytest.skip("needs the rollback test before it")
    write_migration(moved.folder, moved.lab.tgt, datetime.now(UTC) - timedelta(minutes=1),
                    {"ferry.dev/retry-devices": "WS2"})
    run = devices_run(moved, "--timeout", "600")
    eventually(lambda: roll_forward_planned(moved), "WS2's roll-forward plan in the store",
               timeout=300)
    ws2.agent.stop()
    ws2.agent.start()
    done = finished(run, moved, "ferry devices run")
    assert done.returncode == 0, done.stdout
    assert "Completed 2/2 (WS1 Done, WS2 Done)" in done.stdout, done.stdout
    joined = adcli_testjoin(ws2, moved.lab.tgt)
    assert joined.returncode == 0, joined.stdout + joined.stderr
    moved.machine_passwords["WS2 again"] = machine_password(ws2.ws, "TGT")
    with StateStore(moved.gateway.state) as store:
        again = {r.action_id for r in store.devices.results(MIGRATION)
                 if r.device == "WS2" and r.generation == 3 and r.ok}
    assert again == set(ACTIONS), again


def test_a_cached_logon_works_with_the_target_dc_down(moved: Moved) -> None:
    ws1, tgt = moved.devices["WS1"], moved.lab.tgt
    _stop(tgt.folder)
    try:
        assert not port_open(tgt.ip, LDAPS_PORT) and not port_open(tgt.ip, 88)
        subprocess.run(ws1.ws.wb("smbcontrol", "-s", str(ws1.ws.smb_conf), "winbindd",
                                 "offline"), capture_output=True, check=False)
        done = logon(ws1, "alice", ALICE_TGT_PASSWORD)
        assert done.returncode == 0, done.stdout + done.stderr
        assert logon(ws1, "alice", "not her password").returncode != 0
        assert logon(ws1, "bob", SRC_PASSWORDS["bob"]).returncode != 0, "bob never logged on"
    finally:
        Lab().up(tgt.folder.parent, [DomainSpec(d.realm, d.netbios, d.ip)
                                     for d in (moved.lab.src, tgt)])
    tgt.connect().unbind()   # back for whoever comes next


def test_nothing_secret_in_any_log_status_or_the_state_store(moved: Moved) -> None:
    secrets = {"SRC's admin password": moved.lab.src.admin_password,
               "TGT's admin password": moved.lab.tgt.admin_password,
               "alice's TGT password": ALICE_TGT_PASSWORD,
               "the file server's password": moved.fileserver.password,
               **{f"{u}'s SRC password": p for u, p in SRC_PASSWORDS.items()},
               **{f"device token {n}": t for n, t in enumerate(moved.tokens)},
               **{f"{d}'s machine password": p for d, p in moved.machine_passwords.items()}}
    assert len(moved.machine_passwords) >= 2 and all(
        len(p) >= 20 for p in moved.machine_passwords.values())
    texts = {name: text for name, text in moved.outputs.items()}
    texts["gateway log"] = moved.gateway.log_text()
    for name in moved.fleet.processes:
        texts[f"{name} log"] = moved.fleet.log(name)
    for device in moved.devices.values():
        texts[f"{device.name} agent output"] = device.agent.output()
        for path in device.ws.state_dir.iterdir():
            if path.is_file() and not path.name.endswith((".key", ".pem", ".crt")):
                texts[str(path)] = path.read_text(errors="replace")
    state = Path(moved.gateway.state)
    plans = sorted((state.parent / ".ferry" / "plans").glob("*.json"))   # ferry run's
    assert plans
    for path in (state, Path(f"{state}-wal"), *plans):
        if path.exists():
            texts[str(path)] = path.read_bytes().decode("latin-1")
    for what, secret in secrets.items():
        leaked = [name for name, text in texts.items() if secret in text]
        assert not leaked, f"{what} found in {leaked}"
    database = sqlite3.connect(moved.gateway.state)
    try:
        assert database.execute("SELECT count(*) FROM device_secrets").fetchone() == (0,)
    finally:
        database.close()

