"""read_by_values (the agent's equality read behind `ferry trace`) against Samba."""

from __future__ import annotations

import pytest
from tests.integration.conftest import LabDomains

from ferry_agent.directory import create
from ferry_agent.directory.read import ReadScope, read_by_values

pytestmark = pytest.mark.lab


def test_read_by_values_finds_by_name_guid_and_dn_inside_the_scope_only(
        lab: LabDomains, src_ou: str) -> None:
    conn = lab.src.connect()
    try:
        dn = f"CN=rbv-ann,{src_ou}"
        create(conn, "user", dn, {"sAMAccountName": ["rbv-ann"], "mail": ["RBV@src.test"]})
        scope = ReadScope([src_ou], ["user", "group"])
        found = list(read_by_values(conn, "mail", ["rbv@SRC.test"], ["mail"], scope))
        assert [e.dn.lower() for e in found] == [dn.lower()]   # the directory's comparison
        guid = found[0].guid
        assert [e.dn for e in read_by_values(conn, "objectGUID", [guid], [], scope)] \
            == [found[0].dn]
        assert len(list(read_by_values(conn, "distinguishedName", [dn], [], scope))) == 1
        assert list(read_by_values(conn, "sAMAccountName", ["rbv-(ann)*"], [], scope)) == []
        elsewhere = ReadScope([f"CN=Users,{lab.src.base_dn}"], ["user"])
        assert list(read_by_values(conn, "sAMAccountName", ["rbv-ann"], [], elsewhere)) == []
    finally:
        conn.unbind()
