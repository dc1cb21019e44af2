"""An agent's write_subtrees: what is inside compares RDN by RDN, and the INI setting is read
with clear errors (the integration test in tests/integration/agent runs it on Samba)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry_agent.cli import write_subtrees
from ferry_agent.directory.subtrees import WriteSubtrees, within

CORP = "OU=Corp,DC=tgt,DC=test"


@pytest.mark.parametrize("dn", [
    CORP,
    "CN=Ada,OU=Corp,DC=tgt,DC=test",
    "cn=Ada , ou=CORP,dc=TGT,dc=test",          # AD compares case- and space-insensitively
    "CN=Smith\\, John,OU=Sub,OU=Corp,DC=tgt,DC=test",
])
def test_objects_in_the_subtree_are_within(dn: str) -> None:
    assert within(dn, CORP)


@pytest.mark.parametrize("dn", [
    "OU=Admins,DC=tgt,DC=test",
    "CN=Ada,OU=Corporate,DC=tgt,DC=test",        # a longer name is not a child
    "CN=x,OU=evil\\,OU=Corp,DC=tgt,DC=test",      # one OU named "evil,OU=Corp" under the root
    "CN=x,OU=evil\\2COU=Corp,DC=tgt,DC=test",     # the same, hex-escaped
    "CN=a+OU=Corp,DC=tgt,DC=test",               # a multi-valued RDN directly under the root
    "DC=tgt,DC=test",
    "not a dn",
])
def test_names_that_only_look_inside_are_not(dn: str) -> None:
    assert not within(dn, CORP)


def test_the_setting_takes_several_dns_and_refuses_a_bad_one(tmp_path: Path) -> None:
    ini = tmp_path / "ad.ini"
    ini.write_text("[directory]\nhost = dc1\nwrite_subtrees = OU=Corp,DC=tgt,DC=test;"
                   " OU=Staging,DC=tgt,DC=test\n   OU=100%,DC=tgt,DC=test\n")
    assert write_subtrees(ini).bases == (CORP, "OU=Staging,DC=tgt,DC=test",
                                         "OU=100%,DC=tgt,DC=test")
    ini.write_text("[directory]\nhost = dc1\nwrite_subtrees = OU=Corp,DC=tgt; ===\n")
    with pytest.raises(ValueError, match=rf"\[directory\] of {ini}: write_subtrees: '==='"):
        write_subtrees(ini)


def test_a_refusal_names_the_dn_and_the_setting() -> None:
    subtrees = WriteSubtrees.parse(CORP, "[directory] of /etc/ferry-agent/ad.ini")
    assert subtrees.refusal("move", [f"CN=a,{CORP}", f"CN=a,{CORP}"]) is None
    error = subtrees.refusal("move", [f"CN=a,{CORP}", "CN=a,OU=Admins,DC=tgt,DC=test"])
    assert error is not None and error.code == 50
    assert str(error) == ('move "CN=a,OU=Admins,DC=tgt,DC=test" failed: insufficientAccessRights'
                          " (50): outside this agent's write_subtrees (OU=Corp,DC=tgt,DC=test)"
                          " set in [directory] of /etc/ferry-agent/ad.ini")


def test_without_the_setting_the_agent_writes_nowhere(tmp_path: Path) -> None:
    ini = tmp_path / "ad.ini"
    ini.write_text("[directory]\nhost = dc1\n")
    error = write_subtrees(ini).refusal("create", [f"CN=a,{CORP}"])
    assert error is not None
    assert f"read-only: write_subtrees is not set in [directory] of {ini}" in str(error)
