"""SID history on Samba for real: the agent's local mechanism writes the target DC's sam.ldb,
and ldapsearch over LDAPS (as an administrator would check) shows the result.

The lab's DCs run on this machine, so "the agent on the target DC" is this test process with
the target DC's smb.conf.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.lab import LabDomain
from ferry_agent.dc import (
    LocalDcError,
    LocalSambaDc,
    SidHistoryRefused,
    SidHistoryRequest,
    SidHistoryResult,
    add_sid_histories,
    add_sid_history,
)
from ferry_agent.directory import add_members, create
from ferry_agent.directory.subtrees import WriteSubtrees
from ferry_agent.directory.values import sid_from_bytes

pytestmark = pytest.mark.lab


def ldapsearch(domain: LabDomain, filter_: str, attribute: str) -> list[str]:
    """The attribute's SIDs as ldapsearch prints them (base64 LDIF), decoded to S-1-..."""
    if shutil.which("ldapsearch") is None:
        pytest.skip("ldapsearch is not installed (Debian package ldap-utils)")
    env = {**os.environ, "LDAPTLS_CACERT": str(domain.ca_file)}
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-x", "-H", f"ldaps://{domain.ip}",
         "-D", domain.admin_user, "-y", str(domain.password_file), "-b", domain.base_dn,
         filter_, attribute],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )
    prefix = f"{attribute}:: "
    return [sid_from_bytes(base64.b64decode(line[len(prefix):]))
            for line in done.stdout.splitlines() if line.startswith(prefix)]


def object_sid(domain: LabDomain, sam: str) -> str:
    (sid,) = ldapsearch(domain, f"(sAMAccountName={sam})", "objectSid")
    return sid


@pytest.fixture
def dc(lab) -> LocalSambaDc:
    return LocalSambaDc(lab.tgt.folder / "etc" / "smb.conf")


@pytest.fixture
def subtrees(tgt_ou: str) -> WriteSubtrees:
    return WriteSubtrees((tgt_ou,), "test agent.ini [directory]")


@pytest.fixture
def pair(lab, src_ou: str, tgt_ou: str) -> Iterator[tuple[str, str]]:
    """A user of one name in SRC and in TGT: (sAMAccountName, the SRC user's objectSid)."""
    sam = f"mig{uuid.uuid4().hex[:8]}"
    src, tgt = lab.src.connect(), lab.tgt.connect()
    create(src, "user", f"CN={sam},{src_ou}", {"sAMAccountName": [sam]})
    create(tgt, "user", f"CN={sam},{tgt_ou}", {"sAMAccountName": [sam]})
    src.unbind()
    tgt.unbind()
    yield sam, object_sid(lab.src, sam)


def test_user_gets_the_source_objectsid_once(lab, dc, subtrees, pair) -> None:
    sam, source_sid = pair
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == []

    first = add_sid_history(dc, sam, [source_sid], subtrees=subtrees)
    assert first.changed and first.added == (source_sid,) and first.already_present == ()
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == [source_sid]

    second = add_sid_history(dc, first.dn, [source_sid], subtrees=subtrees)
    assert not second.changed and second.already_present == (source_sid,)
    assert "already holds" in second.describe()
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == [source_sid]


def test_group_gets_the_source_group_objectsid(lab, dc, subtrees, src_ou, tgt_ou) -> None:
    sam = f"grp{uuid.uuid4().hex[:8]}"
    src, tgt = lab.src.connect(), lab.tgt.connect()
    create(src, "group", f"CN={sam},{src_ou}", {"sAMAccountName": [sam]})
    create(tgt, "group", f"CN={sam},{tgt_ou}", {"sAMAccountName": [sam]})
    source_sid = object_sid(lab.src, sam)

    result = add_sid_history(dc, sam, [source_sid], subtrees=subtrees)

    assert result.added == (source_sid,)
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == [source_sid]


def test_protected_accounts_are_refused_and_untouched(lab, dc, subtrees, pair, tgt_ou) -> None:
    sam, source_sid = pair
    admin_like = f"adm{uuid.uuid4().hex[:8]}"
    tgt = lab.tgt.connect()
    admin_dn = f"CN={admin_like},{tgt_ou}"
    create(tgt, "user", admin_dn, {"sAMAccountName": [admin_like]})
    add_members(tgt, f"CN=Domain Admins,CN=Users,{lab.tgt.base_dn}", [admin_dn])
    everywhere = WriteSubtrees((lab.tgt.base_dn,), "test agent.ini [directory]")
    cases = {
        "Administrator": "built-in account",
        "krbtgt": "built-in account",
        "Domain Admins": "built-in account",
        admin_like: "member of Domain Admins",
    }
    for target, why in cases.items():
        with pytest.raises(SidHistoryRefused, match=why):
            add_sid_history(dc, target, [source_sid], subtrees=everywhere)
        assert ldapsearch(lab.tgt, f"(sAMAccountName={target})", "sIDHistory") == []
    # Outside the agent's write subtrees is refused too, even for an ordinary user.
    with pytest.raises(Exception, match="write_subtrees"):
        add_sid_history(dc, sam, [source_sid],
                        subtrees=WriteSubtrees((f"OU=Elsewhere,{lab.tgt.base_dn}",), "agent.ini"))
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == []


def test_sids_of_the_target_domain_or_another_object_are_refused(lab, dc, subtrees, pair) -> None:
    sam, source_sid = pair
    own = object_sid(lab.tgt, "Guest").rsplit("-", 1)[0] + "-1104"
    with pytest.raises(SidHistoryRefused, match="target's own domain"):
        add_sid_history(dc, sam, [own], subtrees=subtrees)
    add_sid_history(dc, sam, [source_sid], subtrees=subtrees)
    other = f"oth{uuid.uuid4().hex[:8]}"
    create(lab.tgt.connect(), "user", f"CN={other},{subtrees.bases[0]}",
           {"sAMAccountName": [other]})
    with pytest.raises(SidHistoryRefused, match="already belongs to"):
        add_sid_history(dc, other, [source_sid], subtrees=subtrees)
    assert ldapsearch(lab.tgt, f"(sAMAccountName={other})", "sIDHistory") == []


def spy_python(folder: Path) -> tuple[str, Path]:
    """An "interpreter" that only records that it was started: the backend never runs."""
    marker = folder / "started"
    script = folder / "python3"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n", encoding="utf-8")
    script.chmod(0o700)
    return str(script), marker


@pytest.mark.parametrize("bad", ["S-1-5-21-1-2-3", "S-1-5-21-1-2-3-4294967296", "S-1-5-32-544",
                                 "S-1-5-21-1-2-3-500", "s-1-5-21-1-2-3-1104 ", "1104", ""])
def test_invalid_sids_are_refused_before_the_database_is_opened(
        lab, subtrees, pair, bad, tmp_path: Path) -> None:
    sam, _ = pair
    python, started = spy_python(tmp_path)
    dc = LocalSambaDc(lab.tgt.folder / "etc" / "smb.conf", python=python)
    with pytest.raises(SidHistoryRefused, match="add SID history: "):
        add_sid_history(dc, sam, [bad], subtrees=subtrees)
    assert not started.exists()
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == []


def test_the_spy_interpreter_is_started_for_a_valid_request(lab, subtrees, tmp_path) -> None:
    """The check above proves something: a valid SID does reach the interpreter."""
    python, started = spy_python(tmp_path)
    dc = LocalSambaDc(lab.tgt.folder / "etc" / "smb.conf", python=python)
    with pytest.raises(LocalDcError, match="backend ended"):
        add_sid_history(dc, "someone", ["S-1-5-21-1-2-3-1104"], subtrees=subtrees)
    assert started.exists()


def test_a_missing_smb_conf_names_the_file(tmp_path: Path) -> None:
    dc = LocalSambaDc(tmp_path / "smb.conf")
    with pytest.raises(LocalDcError, match=r"smb\.conf: no such smb\.conf"):
        add_sid_history(dc, "someone", ["S-1-5-21-1-2-3-1104"],
                        subtrees=WriteSubtrees(("DC=tgt,DC=test",), "agent.ini"))


def test_a_batch_reports_each_target_and_one_refusal_stops_no_other(
        lab, dc, subtrees, pair, tgt_ou, src_ou) -> None:
    sam, source_sid = pair
    second = f"mig{uuid.uuid4().hex[:8]}"
    src, tgt = lab.src.connect(), lab.tgt.connect()
    create(src, "user", f"CN={second},{src_ou}", {"sAMAccountName": [second]})
    create(tgt, "user", f"CN={second},{tgt_ou}", {"sAMAccountName": [second]})
    second_sid = object_sid(lab.src, second)

    outcomes = add_sid_histories(dc, [
        SidHistoryRequest(sam, (source_sid,)),
        SidHistoryRequest("Administrator", (second_sid,)),
        SidHistoryRequest("nobody-here", (second_sid,)),
        SidHistoryRequest(second, ("S-1-5-21-1-2",)),
        SidHistoryRequest(second, (second_sid,)),
    ], subtrees=subtrees)

    first, admin, missing, invalid, last = outcomes
    assert isinstance(first, SidHistoryResult) and first.added == (source_sid,)
    assert isinstance(admin, SidHistoryRefused) and "built-in" in str(admin)
    assert isinstance(missing, LocalDcError) and "no user or group 'nobody-here'" in str(missing)
    assert isinstance(invalid, SidHistoryRefused) and "not a domain account" in str(invalid)
    assert isinstance(last, SidHistoryResult) and last.added == (second_sid,)
    assert ldapsearch(lab.tgt, f"(sAMAccountName={sam})", "sIDHistory") == [source_sid]
    assert ldapsearch(lab.tgt, f"(sAMAccountName={second})", "sIDHistory") == [second_sid]
    assert ldapsearch(lab.tgt, "(sAMAccountName=Administrator)", "sIDHistory") == []


def test_the_windows_prerequisites_ferry_check_sees_over_ldap(lab) -> None:
    """DsAddSidHistory's prerequisites as `ferry check` reads them from a target (run here
    against Samba, whose LDAP answers as Windows' does): the right, the trust, port 135."""
    from ferry_agent.dc.windows import Prerequisite, prerequisite_checks

    conn = lab.tgt.connect()
    try:
        checks = {c.prerequisite: c for c in prerequisite_checks(
            conn, lab.tgt.base_dn, [lab.src.dns_domain], lab.tgt.ip)}
    finally:
        conn.unbind()
    assert checks[Prerequisite.MIGRATE_RIGHT].met   # Administrator, through Domain Admins
    trust = checks[Prerequisite.TRUST]
    assert trust.failed and "src.test: no trust" in trust.describe()
    assert trust.prerequisite.fix in trust.describe()
    assert checks[Prerequisite.RPC_PORTS].met
    unverified = [c for c in checks.values() if not c.checked]
    assert {c.prerequisite for c in unverified} == {
        Prerequisite.SOURCE_AUDITING, Prerequisite.TARGET_AUDITING, Prerequisite.SOURCE_GROUP,
        Prerequisite.TCPIP_CLIENT_SUPPORT, Prerequisite.SOURCE_ADMIN}
    assert not any(c.failed for c in unverified)
    assert all(c.describe().startswith(f"SID history {c.prerequisite.key}: verify:")
               for c in unverified)


def test_a_windows_agent_makes_one_ds_add_sid_history_per_target(lab, pair, subtrees) -> None:
    """The add_sid_history work as a Windows DC's agent does it, by contract: targets found by
    objectGUID over LDAP (Samba answers as Windows does), checked, then DsAddSidHistoryW
    (a recording stand-in for ntdsapi.dll) with the source principal and both domains."""
    from tests.unit.agent.test_ds_add_sid_history import Ntdsapi

    from ferry_agent.dc.sid_history import SourcePrincipal
    from ferry_agent.dc.windows import (
        ERROR_DS_SRC_SID_EXISTS_IN_FOREST,
        add_sid_histories_windows,
    )
    from ferry_agent.directory.guid import guid_from_bytes

    sam, sid = pair
    conn = lab.tgt.connect()
    try:
        def guid_of(filter_: str) -> str:
            conn.search(lab.tgt.base_dn, filter_, attributes=["objectGUID"])
            return guid_from_bytes(conn.response[0]["raw_attributes"]["objectGUID"][0])

        source = SourcePrincipal(lab.src.dns_domain, sam, lab.src.ip)
        target = SidHistoryRequest(f"<GUID={guid_of(f'(sAMAccountName={sam})')}>", (sid,),
                                   source)
        admin = SidHistoryRequest(f"<GUID={guid_of('(sAMAccountName=Administrator)')}>",
                                  (sid,), source)
        dll = Ntdsapi()
        first, refused = add_sid_histories_windows(conn, [target, admin], lab.tgt.dns_domain,
                                                   lab.tgt.ip, subtrees, dll)
        again = add_sid_histories_windows(
            conn, [target], lab.tgt.dns_domain, lab.tgt.ip, subtrees,
            Ntdsapi(DsAddSidHistoryW=ERROR_DS_SRC_SID_EXISTS_IN_FOREST))[0]
    finally:
        conn.unbind()
    assert isinstance(first, SidHistoryResult) and first.added == (sid,)
    assert sam in first.dn
    adds = [args for name, args in dll.calls if name == "DsAddSidHistoryW"]
    assert [a[1:] for a in adds] == [(0, lab.src.dns_domain, sam, lab.src.ip, None,
                                      lab.tgt.dns_domain, sam)]   # none for Administrator
    assert isinstance(refused, SidHistoryRefused) and "built-in" in str(refused)
    assert isinstance(again, SidHistoryResult) and again.already_present == (sid,)
