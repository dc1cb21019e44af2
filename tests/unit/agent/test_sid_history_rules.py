"""Which sIDHistory requests the agent refuses, decided on the target's facts before any
write, and the Windows DsAddSidHistory request as the contract its backend receives."""

from __future__ import annotations

import dataclasses

import pytest

from ferry_agent.dc.sid_history import (
    SidHistoryRefused,
    TargetFacts,
    check,
    normalize_sids,
    protection,
    target_query,
)
from ferry_agent.dc.windows import (
    DRSUAPI_ADD_SID_HISTORY_OPNUM,
    DsAddSidHistoryRequest,
    Prerequisite,
    PrerequisiteCheck,
    SourceCredential,
)
from ferry_agent.directory.errors import DirectoryError
from ferry_agent.directory.subtrees import WriteSubtrees

TGT = "S-1-5-21-100-200-300"
SRC = "S-1-5-21-400-500-600"
OU = "OU=Migrated,DC=tgt,DC=test"
SUBTREES = WriteSubtrees((OU,), "agent.ini [directory]")


def facts(**changes: object) -> TargetFacts:
    base = TargetFacts(dn=f"CN=Ann,{OU}", object_sid=f"{TGT}-1105", domain_sid=TGT,
                       object_class=("top", "person", "organizationalPerson", "user"),
                       sid_history=(), group_sids=(f"{TGT}-513", "S-1-5-32-545"),
                       critical=False, admin_count=0, holders={})
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_an_ordinary_user_in_the_subtrees_may_get_source_sids() -> None:
    assert protection(facts()) == ""
    check(facts(), [f"{SRC}-1105"], SUBTREES)


@pytest.mark.parametrize(("changes", "why"), [
    ({"object_sid": f"{TGT}-500"}, "built-in account"),
    ({"object_sid": f"{TGT}-502"}, "built-in account"),
    ({"object_sid": "S-1-5-32-544"}, "built-in account"),
    ({"critical": True}, "critical system object"),
    ({"group_sids": (f"{TGT}-512",)}, "Domain Admins"),
    ({"group_sids": ("S-1-5-21-7-8-9-519",)}, "Enterprise Admins"),  # the forest root's
    ({"group_sids": (f"{TGT}-518",)}, "Schema Admins"),
    ({"group_sids": ("S-1-5-32-544",)}, "Administrators"),
    ({"group_sids": ("S-1-5-32-551",)}, "Backup Operators"),
    ({"admin_count": 1}, "adminCount"),
])
def test_protected_targets_are_refused(changes: dict[str, object], why: str) -> None:
    with pytest.raises(SidHistoryRefused, match=why):
        check(facts(**changes), [f"{SRC}-1105"], SUBTREES)


def test_a_target_outside_the_write_subtrees_is_refused_naming_the_setting() -> None:
    with pytest.raises(DirectoryError, match="write_subtrees"):
        check(facts(dn="CN=Ann,OU=Other,DC=tgt,DC=test"), [f"{SRC}-1105"], SUBTREES)


def test_own_domain_and_already_held_sids_are_refused() -> None:
    with pytest.raises(SidHistoryRefused, match="target's own domain"):
        check(facts(), [f"{TGT}-1200"], SUBTREES)
    held = facts(holders={f"{SRC}-1105": f"CN=Bob,{OU}"})
    with pytest.raises(SidHistoryRefused, match=f'already belongs to "CN=Bob,{OU}"'):
        check(held, [f"{SRC}-1105"], SUBTREES)


def test_source_sids_are_canonical_unique_and_assigned_domain_accounts() -> None:
    assert normalize_sids([f"s{SRC[1:]}-1105", f"{SRC}-1105", f"{SRC}-1106"]) == (
        f"{SRC}-1105", f"{SRC}-1106")
    for bad, why in [(f"{SRC}-512", "well-known"), ("S-1-5-32-544", "not a domain account"),
                     ("S-1-5-21-1-2", "not a domain account"), ("x", "not a SID")]:
        with pytest.raises(SidHistoryRefused, match=why):
            normalize_sids([bad])
    with pytest.raises(SidHistoryRefused, match="one or more"):
        normalize_sids([])
    with pytest.raises(SidHistoryRefused, match="one or more"):
        normalize_sids(f"{SRC}-1105")  # a bare string is not a list of SIDs


def test_targets_are_a_dn_or_a_sam_account_name() -> None:
    assert target_query(f"CN=Ann,{OU}") == {"dn": f"CN=Ann,{OU}"}
    assert target_query("Domain Admins") == {"sam": "Domain Admins"}
    for bad in ["", "  ", "a*b", "x" * 257, "CN=a,,DC=x"]:
        with pytest.raises(SidHistoryRefused):
            target_query(bad)


# -- Windows, by contract ------------------------------------------------------------------

def test_the_dsaddsidhistory_request_pins_the_win32_call() -> None:
    request = DsAddSidHistoryRequest(
        src_domain="src.example", src_principal="ann", src_domain_controller="pdc.src.example",
        dst_domain="tgt.example", dst_principal="ann", dst_domain_controller="pdc.tgt.example",
        src_credential=SourceCredential("ferry-sid", "SRC", secret="src-ad"),
    )
    assert DRSUAPI_ADD_SID_HISTORY_OPNUM == 20
    assert request.win32_arguments() == [
        ("Flags", 0),
        ("SrcDomain", "src.example"),
        ("SrcPrincipal", "ann"),
        ("SrcDomainController", "pdc.src.example"),
        ("SrcDomainCreds", "SRC\\ferry-sid"),
        ("DstDomain", "tgt.example"),
        ("DstPrincipal", "ann"),
    ]
    assert [f.name for f in dataclasses.fields(DsAddSidHistoryRequest)] == [
        "src_domain", "src_principal", "src_domain_controller", "dst_domain", "dst_principal",
        "dst_domain_controller", "src_credential", "flags"]
    assert [f.name for f in dataclasses.fields(SourceCredential)] == ["user", "domain", "secret"]
    own_identity = dataclasses.replace(request, src_credential=None)
    assert ("SrcDomainCreds", None) in own_identity.win32_arguments()


@pytest.mark.parametrize(("changes", "why"), [
    ({"src_principal": "CN=ann,DC=src,DC=example"}, "sAMAccountName"),
    ({"dst_principal": "a*b"}, "sAMAccountName"),
    ({"src_domain_controller": ""}, "src_domain_controller"),
    ({"dst_domain": "tgt example"}, "dst_domain"),
    ({"flags": 0x40000000}, "flags must be 0"),
])
def test_a_bad_request_is_refused_before_any_call(changes: dict[str, object], why: str) -> None:
    values: dict[str, object] = {
        "src_domain": "src.example", "src_principal": "ann",
        "src_domain_controller": "pdc.src.example", "dst_domain": "tgt.example",
        "dst_principal": "ann", "dst_domain_controller": "pdc.tgt.example", **changes}
    with pytest.raises(SidHistoryRefused, match=why):
        DsAddSidHistoryRequest(**values)  # type: ignore[arg-type]


def test_the_prerequisites_ferry_check_reports() -> None:
    assert [p.key for p in Prerequisite] == [
        "trust", "sourceAuditing", "targetAuditing", "sourceGroup", "tcpipClientSupport",
        "sourceAdmin", "migrateSidHistory", "rpcPorts"]
    assert "$$$" in Prerequisite.SOURCE_GROUP.fix
    assert "TcpipClientSupport = 1" in Prerequisite.TCPIP_CLIENT_SUPPORT.fix
    line = PrerequisiteCheck(Prerequisite.SOURCE_GROUP, met=False, detail="SRC$$$ not found")
    assert line.describe().startswith("SID history sourceGroup: missing: an empty domain local")
    assert PrerequisiteCheck(Prerequisite.TRUST, met=True).describe() == "SID history trust: ok"
