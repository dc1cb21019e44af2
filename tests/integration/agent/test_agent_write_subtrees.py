"""A real ferry-agent on the Samba lab refuses, per object, every write outside the subtrees
its INI file names, whatever a job sends it; reads outside them still work, and an agent
without the setting writes nothing at all."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.gateway.harness import RunningGateway, lab_directory, start_gateway

from ferry.connectors.agent_session import RemoteDirectory
from ferry.settings import GatewaySettings
from ferry_agent.directory import create, ensure_ou
from ferry_agent.directory.batch import Write
from ferry_agent.directory.write import delete
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path / "gateway", "127.0.0.106")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def outside(lab: Any) -> Iterator[str]:
    """An OU beside the agent's subtree, with a user and a group in it."""
    conn = lab.tgt.connect()
    ou = f"OU=Admins-{uuid.uuid4().hex[:6]},{lab.tgt.base_dn}"
    ensure_ou(conn, ou)
    create(conn, "user", build_dn("Admin One", ou),
           {"sAMAccountName": [f"a{uuid.uuid4().hex[:8]}"]})
    create(conn, "group", build_dn("Domain Power", ou), {})
    conn.unbind()
    try:
        yield ou
    finally:
        conn = lab.tgt.connect()
        delete(conn, ou, tree=True)
        conn.unbind()


def start_agent(gateway: RunningGateway, lab: Any, folder: Path, name: str,
                write_subtrees: str | None) -> subprocess.Popen[bytes]:
    """A real agent of TGT; without write_subtrees it may write nowhere."""
    subtrees = {"write_subtrees": write_subtrees} if write_subtrees else {}
    return gateway.start_agent("tgt", name, folder,
                               {**lab_directory(lab.tgt, lab.root), **subtrees})


def names_in(lab: Any, ou: str) -> set[str]:
    conn = lab.tgt.connect()
    conn.search(ou, "(|(objectClass=user)(objectClass=group)(objectClass=organizationalUnit))",
                attributes=["description", "member"])
    found = set()
    for entry in conn.entries:
        values = entry.entry_attributes_as_dict
        found.add(f"{entry.entry_dn}|{sorted(values.get('description', []))}"
                  f"|{sorted(values.get('member', []))}")
    conn.unbind()
    return found


def test_writes_outside_the_agents_subtrees_are_refused_per_object(
        gateway: RunningGateway, lab: Any, tgt_ou: str, outside: str, tmp_path: Path) -> None:
    agent = start_agent(gateway, lab, tmp_path / "agent", "tgt-agent",
                        f"{tgt_ou}; OU=Nowhere,{lab.tgt.base_dn}")
    remote = RemoteDirectory(GatewaySettings(url=gateway.url, ca_file=str(gateway.ca_file),
                                             token=gateway.credential("tgt")),
                             "tgt", call_timeout=120)
    inside_user = build_dn("Inside User", tgt_ou)
    before = names_in(lab, outside)
    try:
        results = remote.write([
            Write("create", inside_user, object_type="user",
                  attributes={"sAMAccountName": [f"i{uuid.uuid4().hex[:8]}"]}),
            Write("create", build_dn("Planted", outside), object_type="user",
                  attributes={"sAMAccountName": [f"p{uuid.uuid4().hex[:8]}"]}),
            Write("update", build_dn("Admin One", outside), attributes={"description": ["x"]}),
            Write("members", build_dn("Domain Power", outside), add=[inside_user]),
            Write("move", inside_user, new_dn=build_dn("Inside User", outside)),
            Write("move", build_dn("Admin One", outside), new_dn=build_dn("Admin One", tgt_ou)),
            Write("create", build_dn("In A New OU", f"OU=New,{outside}"), object_type="user",
                  parent=f"OU=New,{outside}"),
            Write("delete", build_dn("Admin One", outside)),
            # a value that only looks like it ends inside the subtree
            Write("create", build_dn("x", f"OU=evil\\,{tgt_ou}"), object_type="contact"),
            Write("update", inside_user, attributes={"description": ["still mine"]}),
        ])
        assert results[0].ok and results[-1].ok, [r.error for r in results]
        refused = results[1:-1]
        assert all(r.error is not None and r.error.code == 50 for r in refused), refused
        assert str(refused[0].error).startswith(f'create "{build_dn("Planted", outside)}"')
        assert "outside this agent's write_subtrees" in str(refused[0].error)
        assert f"[directory] of {tmp_path / 'agent' / 'ad.ini'}" in str(refused[0].error)
        assert str(refused[3].error).startswith(
            f'move "{build_dn("Inside User", outside)}" failed')   # the destination
        assert str(refused[4].error).startswith(
            f'move "{build_dn("Admin One", outside)}" failed')     # the source
        assert names_in(lab, outside) == before
        # Reads are not limited.
        assert remote.exists(build_dn("Admin One", outside))
    finally:
        remote.close()
        agent.terminate()
        agent.wait(timeout=15)
    log = (tmp_path / "agent" / "agent.log").read_text()
    assert f"writes allowed under: {tgt_ou}; OU=Nowhere" in log


def test_an_agent_without_write_subtrees_only_reads(
        gateway: RunningGateway, lab: Any, tgt_ou: str, tmp_path: Path) -> None:
    agent = start_agent(gateway, lab, tmp_path / "agent", "read-only", None)
    remote = RemoteDirectory(GatewaySettings(url=gateway.url, ca_file=str(gateway.ca_file),
                                             token=gateway.credential("tgt")),
                             "tgt", call_timeout=120)
    try:
        [result] = remote.write([Write("create", build_dn("Anyone", tgt_ou),
                                       object_type="contact")])
        assert result.error is not None and "this agent is read-only: write_subtrees is not" \
            f" set in [directory] of {tmp_path / 'agent' / 'ad.ini'}" in str(result.error)
        assert names_in(lab, tgt_ou) == {f"{tgt_ou}|[]|[]"}
        assert remote.exists(tgt_ou)
    finally:
        remote.close()
        agent.terminate()
        agent.wait(timeout=15)
