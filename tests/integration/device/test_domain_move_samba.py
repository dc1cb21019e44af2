"""Moving a Linux workstation between two real Samba AD domains: the directory agent stages
the computer account (DirectorySession.stage_computer), the device backend joins with the
sealed secret, a rollback restores the source, and cached logons survive a DC outage."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.integration.device.conftest import MoveLab
from tests.support.polling import eventually

from ferry.lab import workstations
from ferry.lab.samba import LabDomain, _stop
from ferry.lab.workstations import Workstation
from ferry_agent.directory import ensure_ou
from ferry_agent.directory.computers import StageError, find_computer
from ferry_agent.directory.session import DirectorySession
from ferry_agent.directory.subtrees import WriteSubtrees
from ferry_agent.directory.write import create, delete
from ferry_agent.sealed import Recipient, device_binding, ephemeral_key, key_id, open_sealed

pytestmark = pytest.mark.lab


class Device:
    """The device agent's key: what a staged secret is sealed to."""

    def __init__(self) -> None:
        self.key = ephemeral_key()
        self.pem = Recipient(key_id(self.key.public_key()), self.key.public_key()).pem()

    def open(self, staged: dict[str, object], name: str) -> bytes:
        sealed = staged["sealed"]
        assert isinstance(sealed, dict)
        return open_sealed(sealed, self.key, device_binding(name))


def _ou(domain: LabDomain, name: str) -> str:
    dn = f"OU={name},{domain.base_dn}"
    conn = domain.connect()
    ensure_ou(conn, dn)
    conn.unbind()
    return dn


def _session(domain: LabDomain, subtrees: str) -> DirectorySession:
    return DirectorySession(domain.endpoint(), WriteSubtrees.parse(subtrees, "agent.ini"))


def _computers(domain: LabDomain, name: str) -> list[str]:
    """What ldapsearch shows for the computer: DN lines."""
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", f"ldaps://{domain.ip}",
         "-D", domain.admin_user, "-y", str(domain.password_file), "-b", domain.base_dn,
         f"(sAMAccountName={name}$)", "dn", "userAccountControl"],
        capture_output=True, text=True, check=True,
        env={"LDAPTLS_CACERT": str(domain.ca_file), "PATH": "/usr/bin:/bin"})
    return [line[4:] for line in done.stdout.splitlines() if line.startswith("dn: ")]


def _testjoin(ws: Workstation, domain: LabDomain) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["adcli", "testjoin", f"--domain={domain.dns_domain}",
                           f"--domain-controller={domain.ip}", f"--host-keytab={ws.keytab}"],
                          capture_output=True, text=True, check=False, env=ws.env())


def test_a_workstation_moves_to_the_target_and_back(move_lab: MoveLab,
                                                    lab_workstation: Workstation) -> None:
    ws, tgt = lab_workstation, move_lab.tgt
    ou = _ou(tgt, "Workstations")
    device = Device()
    session = _session(tgt, ou)
    staged = session.stage_computer(ws.name, ou, tgt.dns_domain, "password", device.pem)
    assert staged["dn"] == f"CN={ws.name},{ou}"
    backend = ws.backend()
    assert backend.facts()["domain"] == "src.test"

    started = time.monotonic()
    outcome = backend.join(tgt.dns_domain, tgt.ip, ws.name,
                           device.open(staged, ws.name).decode())
    took = time.monotonic() - started
    assert outcome.ok, outcome.message
    print(f"join SRC->TGT: {took:.1f} s")
    assert _computers(tgt, ws.name) == [f"CN={ws.name},{ou}"]
    assert _testjoin(ws, tgt).returncode == 0
    assert backend.facts()["domain"] == "tgt.test"
    assert (ws.state_dir / "source-backup").stat().st_mode & 0o777 == 0o700

    started = time.monotonic()
    back = backend.rejoin_source()
    print(f"rollback to SRC: {time.monotonic() - started:.1f} s")
    assert back.ok, back.message
    assert _testjoin(ws, move_lab.src).returncode == 0
    assert backend.facts()["domain"] == "src.test"


def test_stage_is_repeat_safe(move_lab: MoveLab) -> None:
    tgt = move_lab.tgt
    ou = _ou(tgt, "Workstations")
    device = Device()
    session = _session(tgt, ou)
    first = session.stage_computer("WSREPEAT", ou, tgt.dns_domain, "password", device.pem)
    second = session.stage_computer("WSREPEAT", ou, tgt.dns_domain, "password", device.pem)
    assert first["dn"] == second["dn"] and first["sid"] == second["sid"]
    assert device.open(first, "WSREPEAT") != device.open(second, "WSREPEAT")
    assert _computers(tgt, "WSREPEAT") == [f"CN=WSREPEAT,{ou}"]
    # bound to the name: the secret of WSREPEAT does not open as another device's
    with pytest.raises(Exception, match="sealed for another object"):
        device.open(second, "WSOTHER")
    disabled = session.disable_computer("WSREPEAT")
    assert disabled == {"dn": f"CN=WSREPEAT,{ou}", "disabled": True}
    again = session.stage_computer("WSREPEAT", ou, tgt.dns_domain, "password", device.pem)
    found = find_computer(session.conn, "WSREPEAT")
    assert found is not None and not found.uac & 0x2, "a re-stage enables the account"
    assert again["dn"] == first["dn"]


def test_stage_outside_write_subtrees_or_of_a_protected_account_is_refused(
        move_lab: MoveLab) -> None:
    tgt = move_lab.tgt
    allowed = _ou(tgt, "Workstations")
    elsewhere = _ou(tgt, "Servers")
    device = Device()
    session = _session(tgt, allowed)
    with pytest.raises(StageError, match="outside this agent's write_subtrees"):
        session.stage_computer("WSOUT", elsewhere, tgt.dns_domain, "password", device.pem)
    assert _computers(tgt, "WSOUT") == []
    # the DC's own account, even with the whole domain writable
    whole = _session(tgt, tgt.base_dn)
    with pytest.raises(StageError, match="domain controller"):
        whole.stage_computer("DC1", allowed, tgt.dns_domain, "password", device.pem)
    with pytest.raises(StageError, match="domain controller"):
        whole.disable_computer("DC1")
    with pytest.raises(StageError, match="not a computer name"):
        whole.stage_computer("no such name!", allowed, tgt.dns_domain, "password", device.pem)


def _stage_offline(move_lab: MoveLab, name: str, ou: str, device: Device) -> dict[str, object]:
    """stage_computer(mode offline) as a directory agent runs it: in its own process, on a
    host whose resolver knows the DC's name (net offlinejoin looks it up)."""
    tgt = move_lab.tgt
    script = (
        "import json, sys\n"
        "from ferry_agent.directory.connection import DirectoryEndpoint\n"
        "from ferry_agent.directory.session import DirectorySession\n"
        "from ferry_agent.directory.subtrees import WriteSubtrees\n"
        "a = json.load(sys.stdin)\n"
        "s = DirectorySession(DirectoryEndpoint(**a['endpoint']),"
        " WriteSubtrees.parse(a['ou'], 'agent.ini'))\n"
        "print(json.dumps(s.stage_computer(a['name'], a['ou'], a['dns'], 'offline', a['pem'])))\n")
    ep = tgt.endpoint()
    arguments = {"endpoint": {"host": ep.host, "bind_user": ep.bind_user,
                              "password": ep.password, "base_dn": ep.base_dn,
                              "ca_file": ep.ca_file},
                 "ou": ou, "name": name, "dns": tgt.dns_domain, "pem": device.pem}
    done = subprocess.run(workstations.with_lab_names([sys.executable, "-c", script],
                                                      move_lab.hosts),
                          input=json.dumps(arguments), capture_output=True, text=True,
                          check=False, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    staged: dict[str, object] = json.loads(done.stdout)
    return staged


def test_offline_join_needs_no_network(move_lab: MoveLab,
                                      lab_workstation: Workstation) -> None:
    ws, tgt = lab_workstation, move_lab.tgt
    ou = _ou(tgt, "Workstations")
    device = Device()
    staged = _stage_offline(move_lab, ws.name, ou, device)
    blob = device.open(staged, ws.name)
    assert _computers(tgt, ws.name) == [f"CN={ws.name},{ou}"]
    # The device side alone, in a network namespace with nothing in it (lo down).
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from ferry_agent.device.linux import LinuxBackend\n"
        "from ferry_agent.device.linux_settings import LinuxSettings\n"
        f"c = LinuxSettings(smb_conf=Path({str(ws.smb_conf)!r}),"
        f" krb5_conf=Path({str(ws.krb5_conf)!r}), keytab=Path({str(ws.keytab)!r}))\n"
        "t = time.monotonic()\n"
        f"o = LinuxBackend(c, Path({str(ws.state_dir)!r})).offline_join(sys.stdin.buffer.read())\n"
        "print(o.ok, round(time.monotonic() - t, 2), o.message)\n"
        "sys.exit(0 if o.ok else 1)\n")
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", script], input=blob,
                          capture_output=True, check=False, timeout=120)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    print(f"offline join (no network): {done.stdout.decode().split()[1]} s")
    # Back on the network ("the next boot"): the machine account and password work.
    test = subprocess.run(["net", "ads", "testjoin", "-s", str(ws.smb_conf), "-S", tgt.ip],
                          capture_output=True, text=True, check=False, env=ws.env())
    assert test.returncode == 0, test.stdout + test.stderr
    assert ws.backend().facts()["domain"] == "tgt.test"


def test_secrets_travel_by_stdin_and_files_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command of the join paths gets the password or blob on stdin or in a 0600 file:
    no argument of any command the code builds holds it (checked on the code path)."""
    from ferry_agent.device import domain

    seen: list[tuple[list[str], str]] = []
    real = subprocess.run

    def spy(command: list[str], *args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        seen.append((list(command), str(kwargs.get("input") or "")))
        return real(["true"], capture_output=True, text=True, check=False)

    secret = "Sup3r!secret-one-time"
    monkeypatch.setattr(domain.subprocess, "run", spy)
    with pytest.raises(domain.DomainJoinError):   # nothing real answers: it stops early
        domain.join_with_password(domain.Membership(Path("/nonexistent/smb.conf"),
                                                    Path("/nonexistent/krb5.conf"),
                                                    Path("/nonexistent/keytab"),
                                                    Path("/nonexistent/state")),
                                  "tgt.test", "127.0.0.1", "WS1", secret)
    adcli = [(c, i) for c, i in seen if c[0] == "adcli"]
    assert adcli and adcli[0][1] == secret
    assert not any(secret in word for command, _ in seen for word in command)


def test_cached_logons_survive_the_dc_going_away(own_move_lab: MoveLab,
                                                  own_workstation: Workstation,
                                                  tmp_path: Path) -> None:
    lab, tgt = own_move_lab, own_move_lab.tgt
    ou = _ou(tgt, "People")
    conn = tgt.connect()
    for user in ("alice", "bob"):
        create(conn, "user", f"CN={user},{ou}", {"sAMAccountName": [user]},
               password="Us3r!Pass-" + user)
    ws = own_workstation
    try:
        device = Device()
        wsou = _ou(tgt, "Workstations")
        staged = _session(tgt, wsou).stage_computer(ws.name, wsou, tgt.dns_domain,
                                                    "password", device.pem)
        notices = tmp_path / "notices"
        backend = ws.backend(notice_command=("sh", "-c", f'echo "$0" >> {notices}'))
        workstations.start_winbindd(ws)   # the member's winbindd, serving SRC
        assert backend.join(tgt.dns_domain, tgt.ip, ws.name,
                            device.open(staged, ws.name).decode()).ok
        # The join restarted it (restart_command): the cached logon action works right away.
        result: list[object] = []
        waiter = threading.Thread(target=lambda: result.append(
            backend.cache_credentials(["alice"], 120)))
        waiter.start()
        eventually(lambda: notices.is_file() and "alice" in notices.read_text(),
                   "the notice asking alice to log on once")

        def logon(user: str, password: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(ws.wb("wbinfo", f"--pam-logon={user}%{password}"),
                                  capture_output=True, text=True, check=False)

        assert logon("alice", "Us3r!Pass-alice").returncode == 0
        waiter.join(timeout=150)
        outcome = result[0]
        assert getattr(outcome, "ok", False), outcome
        assert getattr(outcome, "details", {})["cached"] == ["alice"]

        _stop(tgt.folder)
        subprocess.run(ws.wb("smbcontrol", "-s", str(ws.smb_conf), "winbindd", "offline"),
                       capture_output=True, check=False)
        assert logon("alice", "Us3r!Pass-alice").returncode == 0, "cached logon, DC down"
        assert logon("alice", "wrong").returncode != 0
        assert logon("bob", "Us3r!Pass-bob").returncode != 0, "never cached: no logon"
    finally:
        workstations.stop_winbindd(ws)
        from ferry.lab import Lab
        from ferry.lab.samba import DomainSpec

        Lab().up(tgt.folder.parent, [DomainSpec(d.realm, d.netbios, d.ip)
                                     for d in (lab.src, tgt)])
        conn = tgt.connect()
        for user in ("alice", "bob"):
            delete(conn, f"CN={user},{ou}")
