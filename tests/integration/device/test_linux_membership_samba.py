"""What a Linux workstation's membership needs after a move, against two real Samba AD
domains: the keytab an offline join leaves for the first start with network, winbindd
following every change of domain, and a rollback when the kept source account's password
was changed since the move."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.device.conftest import MoveLab
from tests.integration.device.device_agents import DeviceAgentProcess
from tests.integration.device.test_domain_move_samba import (
    Device,
    _ou,
    _stage_offline,
    _testjoin,
)
from tests.integration.gateway.harness import start_gateway
from tests.support.polling import eventually

from ferry.lab import LabDomain, workstations
from ferry.lab.workstations import Workstation
from ferry.state.rows import DevicePlan, PlannedAction
from ferry.state.store import StateStore
from ferry_agent.directory.session import DirectorySession

pytestmark = pytest.mark.lab

MIGRATION = "it/linux-membership"


def _wbinfo(ws: Workstation, *words: str) -> subprocess.CompletedProcess[str]:
    """wbinfo against the workstation's own winbindd."""
    return subprocess.run(ws.wb("wbinfo", *words), capture_output=True, text=True,
                          check=False, timeout=60)


def _own_domain(ws: Workstation) -> str:
    return _wbinfo(ws, "--own-domain").stdout.strip()


def _staged_password(domain: LabDomain, ou: str, ws: Workstation, device: Device) -> str:
    """A one-time password staged on WS$ in `domain` (creating or resetting the account)."""
    session = DirectorySession(domain.endpoint())
    try:
        staged = session.stage_computer(ws.name, ou, domain.dns_domain, "password", device.pem)
    finally:
        session.close()
    return device.open(staged, ws.name).decode()


def _offline_join(move_lab: MoveLab, ws: Workstation) -> None:
    """Stage WS$ on TGT for an offline join and apply the blob with no network at all, as
    the device agent's backend does (its lab INI's settings)."""
    device = Device()
    blob = device.open(_stage_offline(move_lab, ws.name, _ou(move_lab.tgt, "Workstations"),
                                      device), ws.name)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from ferry.lab.workstations import Workstation\n"
        f"ws = Workstation({ws.name!r}, {ws.ip!r}, Path({str(ws.folder)!r}))\n"
        "o = ws.backend().offline_join(sys.stdin.buffer.read())\n"
        "print(o.message)\n"
        "sys.exit(0 if o.ok else 1)\n")
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", script], input=blob,
                          capture_output=True, check=False, timeout=180)
    assert done.returncode == 0, (done.stdout + done.stderr)[-2000:]
    assert "keytab is made at the first start with network" in done.stdout.decode()


def _kinit(ws: Workstation, realm: str, cache: Path) -> str:
    """kinit with the keytab as WS$ against the realm's KDC; the principal klist shows."""
    env = {**ws.env(), "KRB5CCNAME": f"FILE:{cache}"}
    kinit = subprocess.run(["kinit", "-k", "-t", str(ws.keytab), f"{ws.name}$@{realm}"],
                           capture_output=True, text=True, check=False, timeout=60, env=env)
    assert kinit.returncode == 0, kinit.stderr
    klist = subprocess.run(["klist"], capture_output=True, text=True, check=True, env=env)
    return klist.stdout.split("Default principal: ", 1)[1].split()[0]


def test_an_offline_join_makes_its_keytab_at_the_first_start_with_network(
        move_lab: MoveLab, lab_workstation: Workstation, tmp_path: Path) -> None:
    ws, tgt = lab_workstation, move_lab.tgt
    workstations.start_winbindd(ws)      # a member's winbindd, running for SRC
    _offline_join(move_lab, ws)
    assert not ws.keytab.exists(), "offline, Samba makes no keytab"

    # The first start with network (the agent calls this each turn the gateway answers).
    backend = ws.backend()
    outcome = backend.resume()
    assert outcome is not None and outcome.ok, outcome
    assert str(ws.keytab) in outcome.message
    assert _kinit(ws, tgt.realm, tmp_path / "ccache") == f"{ws.name}$@{tgt.realm}"
    assert _testjoin(ws, tgt).returncode == 0
    # winbindd, restarted by the join (with no network) and again now, speaks for TGT; it
    # started offline (it remembers being so) and goes online by itself (every 30 s).
    assert _own_domain(ws) == tgt.netbios
    eventually(lambda: _wbinfo(ws, "-t").returncode == 0, "winbindd online for TGT",
               timeout=150)
    assert backend.resume() is None, "done once: nothing is left for the next start"


def test_the_device_agent_makes_the_keytab_when_it_starts(
        move_lab: MoveLab, lab_workstation: Workstation, tmp_path: Path) -> None:
    """A real `ferry-agent device run` started after the offline join (the next boot)."""
    ws, tgt = lab_workstation, move_lab.tgt
    _offline_join(move_lab, ws)
    gateway = start_gateway(tmp_path / "gateway", "127.0.0.1")
    agent = DeviceAgentProcess(ws, gateway)
    try:
        token = gateway.cli("devices", "token", "create", MIGRATION, "--single-use", "--ttl",
                            "1h")
        assert token.returncode == 0, token.stderr
        enrolled = agent.enroll(token.stdout.strip())
        assert enrolled.returncode == 0, enrolled.stderr
        with StateStore(gateway.state) as store:
            store.devices.set_plans(MIGRATION, [DevicePlan(
                migration=MIGRATION, device=ws.name, wave="w1", generation=1, state="run",
                source="src", target="tgt", sid_table_version="",
                actions=(PlannedAction("1-UploadLogs", "UploadLogs", {}),))])
        agent.start()

        def uploaded() -> bool:
            agent.alive()
            with StateStore(gateway.state) as store:
                return any(r.ok for r in store.devices.results(MIGRATION))

        eventually(uploaded, "the UploadLogs result", timeout=120)
        assert ws.keytab.is_file(), agent.output()[-3000:]
        assert "OfflineDomainJoin (next start): keytab" in agent.output()
        assert _kinit(ws, tgt.realm, tmp_path / "ccache") == f"{ws.name}$@{tgt.realm}"
    finally:
        agent.stop()
        gateway.stop()


def test_winbindd_follows_a_join_and_a_rollback(move_lab: MoveLab,
                                               lab_workstation: Workstation) -> None:
    ws, src, tgt = lab_workstation, move_lab.src, move_lab.tgt
    workstations.start_winbindd(ws)
    assert _own_domain(ws) == src.netbios
    backend = ws.backend()
    password = _staged_password(tgt, _ou(tgt, "Workstations"), ws, Device())
    outcome = backend.join(tgt.dns_domain, tgt.ip, ws.name, password)
    assert outcome.ok, outcome.message
    assert _own_domain(ws) == tgt.netbios
    trust = _wbinfo(ws, "-t")
    assert trust.returncode == 0 and tgt.netbios in trust.stdout, trust.stdout + trust.stderr

    back = backend.rejoin_source()
    assert back.ok, back.message
    assert _own_domain(ws) == src.netbios
    trust = _wbinfo(ws, "-t")
    assert trust.returncode == 0 and src.netbios in trust.stdout, trust.stdout + trust.stderr


def test_a_rollback_after_the_source_password_changed(move_lab: MoveLab,
                                                      lab_workstation: Workstation) -> None:
    ws, src, tgt = lab_workstation, move_lab.src, move_lab.tgt
    device = Device()
    backend = ws.backend()
    joined = backend.join(tgt.dns_domain, tgt.ip, ws.name,
                          _staged_password(tgt, _ou(tgt, "Workstations"), ws, device))
    assert joined.ok, joined.message
    # An admin stages the kept source account again: its password is not the backed-up one.
    again = _staged_password(src, f"CN=Computers,{src.base_dn}", ws, device)

    refused = backend.rejoin_source()
    assert not refused.ok
    assert f"the machine password of {ws.name}$ in {src.dns_domain} changed" in refused.message
    assert "one-time password staged on that account" in refused.message
    assert f"adcli join --domain={src.dns_domain}" in refused.message
    assert _testjoin(ws, src).returncode != 0

    back = backend.rejoin_source(again, src.ip)
    assert back.ok, back.message
    assert "joined again with the one-time password" in back.message
    assert _testjoin(ws, src).returncode == 0
    assert backend.facts()["domain"] == src.dns_domain
