"""Workflows through real agents: a real `ferry gateway`, real `ferry-agent` processes enrolled
with single-use tokens, and the Samba lab. Both environments use `connection: agent`, so every
read and write of the run travels job -> gateway -> agent -> domain controller and back."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.integration.gateway.harness import RunningGateway, lab_directory, start_gateway
from tests.support.connect_proxy import ConnectProxy
from tests.support.polling import eventually

from ferry_agent.directory import DirectoryError, create, ensure_ou
from ferry_agent.directory.read import ReadScope, read_full
from ferry_agent.directory.write import add_members, delete, update
from ferry_agent.dn import build_dn, split_dn

pytestmark = pytest.mark.lab

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"
ATTRIBUTES = ["mail", "userPrincipalName", "displayName", "description", "employeeType",
              "givenName", "sn"]


@dataclass
class AgentFleet:
    gateway: RunningGateway
    folder: Path
    lab: Any
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, environment: str, name: str, proxy: str | None = None,
              write_subtrees: str | None = None, on_dc: bool = False,
              password_changes: bool = False) -> subprocess.Popen[bytes]:
        """Enroll an agent for environment (via the CLI, token by env var) and run it;
        with proxy, both go through that HTTPS_PROXY. TGT's agents may write anywhere in
        the domain unless write_subtrees says otherwise; SRC's only read. `on_dc`: the agent
        runs on the domain's DC ([dc] smb_conf), as sIDHistory needs; `password_changes`: it
        also sends the DC's password changes (DCAgent password sync)."""
        domain = self.lab.src if environment == "src" else self.lab.tgt
        directory = lab_directory(domain, self.lab.root)
        if write_subtrees is None and environment == "tgt":
            write_subtrees = domain.base_dn
        if write_subtrees:
            directory["write_subtrees"] = write_subtrees
        env = {k: v for k, v in os.environ.items() if k not in ("NO_PROXY", "no_proxy")}
        if proxy:
            env["HTTPS_PROXY"] = proxy
        dc = {"smb_conf": str(domain.smb_conf)} if on_dc or password_changes else None
        if dc is not None and password_changes:
            dc.update({"password_changes": "true", "gnupg_home": str(domain.gnupg_home)})
        process = self.gateway.start_agent(environment, name, self.folder / name, directory,
                                           env, dc)
        self.processes[name] = process
        return process

    def kill(self, name: str) -> None:
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait(timeout=10)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()

    def log(self, name: str) -> str:
        return (self.folder / name / "agent.log").read_text(errors="replace")


@pytest.fixture
def fleet(lab: Any, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[AgentFleet]:
    """A gateway on 127.0.0.102 with short leases, and agents to start; a test marked
    `long_poll` gets a gateway without the work stream (as behind a proxy that blocks it).

    15 s: a killed agent's work comes back soon, while a live agent (heartbeating every
    15/4 s) keeps its leases through any stall of less than about 10 s."""
    extra = ("--no-agent-stream",) if request.node.get_closest_marker("long_poll") else ()
    gateway = start_gateway(tmp_path / "gateway", "127.0.0.102", "--lease-seconds", "15",
                            "--agent-timeout", "15", *extra)
    agents = AgentFleet(gateway, tmp_path / "agents", lab)
    try:
        yield agents
    finally:
        agents.stop()
        gateway.stop()


def seed_source(lab: Any, ou: str, users: int) -> None:
    conn = lab.src.connect()
    members = []
    for i in range(users):
        sam = f"ag{uuid.uuid4().hex[:10]}"
        dn = build_dn(f"Agent User {i:03d} {sam}", ou)
        create(conn, "user", dn, {"sAMAccountName": [sam], "givenName": ["Agent"],
                                  "sn": [f"User {i:03d}"], "mail": [f"{sam}@src.test"],
                                  "userPrincipalName": [f"{sam}@src.test"],
                                  "employeeID": [f"E{i:05d}"]})
        members.append(dn)
    group = build_dn(f"Agent Group {uuid.uuid4().hex[:6]}", ou)
    create(conn, "group", group, {})
    add_members(conn, group, members)
    conn.unbind()


def manifests(folder: Path, lab: Any, src_ou: str, tgt_ou: str, connection: str) -> Path:
    """examples/ad-to-ad on this lab; agent mode drops credentials (agents hold their own)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(EXAMPLES / "template.yaml", folder)
    shutil.copy(EXAMPLES / "workflow.yaml", folder)
    text = (folder / "template.yaml").read_text().replace("OU=Migrated,DC=tgt,DC=test", tgt_ou)
    (folder / "template.yaml").write_text(text)
    blocks = []
    for name, domain, ou in (("src", lab.src, src_ou), ("tgt", lab.tgt, tgt_ou)):
        if connection == "agent":
            directory = f"    host: {domain.ip}\n    baseDN: {domain.base_dn}\n"
        else:
            directory = (f"    host: {domain.ip}\n    baseDN: {domain.base_dn}\n"
                         f"    tls:\n      ca:\n        secretKeyRef: "
                         f"{{name: {domain.secret_name}, key: ca.pem}}\n"
                         f"    credentials:\n      username: {domain.admin_user}\n"
                         f"      password:\n        secretKeyRef: "
                         f"{{name: {domain.secret_name}, key: password}}\n")
        blocks.append(
            f"apiVersion: ferry.dev/v1alpha1\nkind: Environment\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: ActiveDirectory\n  connection: {connection}\n"
            f"  activeDirectory:\n{directory}"
            f"  scope:\n    ous: [\"{ou}\"]\n    objectTypes: [users, groups, contacts]\n")
    (folder / "environments.yaml").write_text("---\n".join(blocks))
    return folder


def ferry_run(folder: Path, fleet: AgentFleet | None, state: Path, lab: Any,
              wait: bool = True) -> Any:
    env = {**os.environ, "FERRY_SECRETS_DIR": str(lab.root / "secrets"), "COLUMNS": "200"}
    if fleet is not None:
        token_file = state.parent / "job-credential"   # as `ferry job-credential create` makes
        token_file.write_text(fleet.gateway.credential("src", "tgt", subject=state.name))
        env.update({"FERRY_GATEWAY_URL": fleet.gateway.url,
                    "FERRY_GATEWAY_CA": str(fleet.gateway.ca_file),
                    "FERRY_GATEWAY_TOKEN_FILE": str(token_file)})
    command = [sys.executable, "-m", "ferry", "run", "-f", str(folder), "--state", str(state),
               "-v"]
    if not wait:
        log = (state.parent / "run.log").open("w")
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                cwd=state.parent)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                          check=False, cwd=state.parent)


def wait_for_progress(run: subprocess.Popen[bytes], lab: Any, tgt_ou: str, log: Path,
                      objects: int = 20) -> None:
    """Until the background run has written some objects into TGT."""
    deadline = time.monotonic() + 300
    while len(contents(lab, tgt_ou)) < objects:
        assert run.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, "the run never got going"
        time.sleep(0.2)


def totals(state: Path) -> list[dict[str, int]]:
    """Created/updated/deleted of each recorded run, newest first."""
    from ferry.state.store import StateStore

    with StateStore(str(state)) as store:
        return [{k: sum(c.get(k, 0) for c in run.counts.values())
                 for k in ("created", "updated", "deleted")} for run in store.runs.recent(None, 10)]


def contents(lab: Any, ou: str) -> dict[str, dict[str, Any]]:
    """TGT below ou, keyed by DN relative to ou: attributes and members, also relative."""
    conn = lab.tgt.connect()
    found = {}
    suffix = "," + ou.lower()
    for entry in read_full(conn, ReadScope([ou], ["user", "group", "contact"]), ATTRIBUTES):
        relative = entry.dn.lower().removesuffix(suffix)
        found[relative] = {
            "type": entry.object_type,
            "attributes": {k: sorted(v) for k, v in entry.attributes.items()
                           if k in ATTRIBUTES},
            "members": sorted(m.lower().removesuffix(suffix) for m in entry.members),
            "enabled": entry.enabled,
        }
    conn.unbind()
    return found


def test_a_run_through_agents_gives_exactly_the_direct_result(
        fleet: AgentFleet, lab: Any, src_ou: str, tmp_path: Path) -> None:
    seed_source(lab, src_ou, users=12)
    # Direct run first, into its own OU; its objects are removed again (sAMAccountName and
    # UPN are unique per domain), then the agents do the same run into a second OU.
    conn = lab.tgt.connect()
    direct_ou = f"OU=Direct-{uuid.uuid4().hex[:6]},{lab.tgt.base_dn}"
    agent_ou = f"OU=Agents-{uuid.uuid4().hex[:6]},{lab.tgt.base_dn}"
    ensure_ou(conn, direct_ou)
    ensure_ou(conn, agent_ou)
    try:
        direct = ferry_run(manifests(tmp_path / "direct", lab, src_ou, direct_ou, "direct"),
                           None, tmp_path / "direct.sqlite", lab)
        assert direct.returncode == 0, direct.stdout + direct.stderr
        expected = contents(lab, direct_ou)
        assert len(expected) == 13
        delete(conn, direct_ou, tree=True)

        # The source's agents sit behind a web proxy that wants credentials.
        with ConnectProxy("site-proxy", "pr0xy:p@ss") as proxy:
            for n in (1, 2):
                fleet.start("src", f"src-agent-{n}", proxy=proxy.url)
                fleet.start("tgt", f"tgt-agent-{n}")
            through = ferry_run(manifests(tmp_path / "agents", lab, src_ou, agent_ou, "agent"),
                                fleet, tmp_path / "agents.sqlite", lab)
            assert proxy.tunnels >= 4 and proxy.refused == 0  # 2 enrollments + 2 agents
        fleet.stop()
        fleet.processes.clear()
        for n in (1, 2):
            fleet.start("src", f"src-again-{n}")
            fleet.start("tgt", f"tgt-again-{n}")
        assert through.returncode == 0, through.stdout + through.stderr
        assert contents(lab, agent_ou) == expected
        # The next run reads changed objects only: the DirSync delta comes through an agent.
        workflow = tmp_path / "agents" / "workflow.yaml"
        workflow.write_text(workflow.read_text().replace("changedObjectsOnly: false",
                                                         "changedObjectsOnly: true"))
        source = lab.src.connect()
        changed = next(iter(read_full(source, ReadScope([src_ou], ["user"]), ["sn"])))
        update(source, changed.dn, {"sn": ["Changed Through A Delta"]})
        source.unbind()
        again = ferry_run(tmp_path / "agents", fleet, tmp_path / "agents.sqlite", lab)
        assert again.returncode == 0, again.stdout + again.stderr
        assert totals(tmp_path / "agents.sqlite") == [
            {"created": 0, "updated": 1, "deleted": 0},
            {"created": 13, "updated": 0, "deleted": 0}]
        assert any(": read_changes " in fleet.log(name) for name in fleet.processes
                   if name.startswith("src-again"))
        worked = [name for name in fleet.processes if "work " in fleet.log(name)]
        assert len(worked) >= 2, {name: fleet.log(name)[-500:] for name in fleet.processes}
        # An agent that had no work may still be starting when the run ends: wait for it.
        eventually(lambda: all("work stream open" in fleet.log(name)
                               for name in fleet.processes), "every agent's work stream")
        assert "p@ss" not in "".join(fleet.log(name) for name in fleet.processes)
    finally:
        for ou in (direct_ou, agent_ou):
            with contextlib.suppress(DirectoryError):
                delete(conn, ou, tree=True)
        conn.unbind()


def test_killing_an_agent_mid_run_loses_and_duplicates_nothing(
        fleet: AgentFleet, lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    users = 120
    seed_source(lab, src_ou, users=users)
    fleet.start("src", "src-agent-1")
    fleet.start("tgt", "tgt-agent-1")
    fleet.start("tgt", "tgt-agent-2")
    folder = manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent")
    state = tmp_path / "state.sqlite"
    run = ferry_run(folder, fleet, state, lab, wait=False)
    try:
        # The creates travel as one batch: kill the agent at its first object, so that the
        # batch is still under way however fast the directory writes.
        wait_for_progress(run, lab, tgt_ou, tmp_path / "run.log", objects=1)
        busy = [name for name in ("tgt-agent-1", "tgt-agent-2")
                if fleet.log(name).rstrip().endswith("write (attempt 1)")]
        assert len(busy) == 1, {name: fleet.log(name)[-500:] for name in fleet.processes}
        [other] = {"tgt-agent-1", "tgt-agent-2"} - set(busy)
        busy_name = busy[0]
        fleet.kill(busy_name)
        assert run.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-3000:]
    finally:
        if run.poll() is None:
            run.kill()
    # The batch's lease ran out and the other agent carried it out again, checking first.
    assert "write (attempt 2)" in fleet.log(other)
    found = contents(lab, tgt_ou)
    names = [split_dn(dn)[0] for dn in found]
    assert len(found) == users + 1 and len(set(names)) == len(names)
    # the run counted every object once, the retried ones included
    assert totals(state) == [{"created": users + 1, "updated": 0, "deleted": 0}]
    # and a second run finds everything in place
    again = ferry_run(folder, fleet, state, lab)
    assert again.returncode == 0, again.stdout + again.stderr
    assert totals(state)[0] == {"created": 0, "updated": 0, "deleted": 0}
    assert len(contents(lab, tgt_ou)) == users + 1


@pytest.mark.long_poll
def test_killing_the_gateway_mid_run_fails_cleanly_and_a_rerun_converges(
        fleet: AgentFleet, lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    users = 120
    seed_source(lab, src_ou, users=users)
    fleet.start("src", "src-agent-1")
    fleet.start("tgt", "tgt-agent-1")
    folder = manifests(tmp_path / "m", lab, src_ou, tgt_ou, "agent")
    state = tmp_path / "state.sqlite"
    run = ferry_run(folder, fleet, state, lab, wait=False)
    try:
        wait_for_progress(run, lab, tgt_ou, tmp_path / "run.log")
        fleet.gateway.kill_and_restart()
        code = run.wait(timeout=600)
    finally:
        if run.poll() is None:
            run.kill()
    log = (tmp_path / "run.log").read_text()
    if code != 0:   # failed cleanly: exit 1 with the reason, no traceback
        assert code == 1 and "gateway" in log.lower(), log[-3000:]
    again = ferry_run(folder, fleet, state, lab)
    assert again.returncode == 0, again.stdout + again.stderr
    found = contents(lab, tgt_ou)
    names = [split_dn(dn)[0] for dn in found]
    assert len(found) == users + 1 and len(set(names)) == len(names)
    # This gateway offers no work stream: the agents long-polled instead.
    assert "long-polling for work instead" in fleet.log("tgt-agent-1")
