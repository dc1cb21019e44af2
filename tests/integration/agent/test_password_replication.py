"""Password sync by replication, for real: NT hashes read from SRC by DRSUAPI GetNCChanges as a
non-admin account holding only the two replication rights, set on TGT by SAMR over SMB as a
non-admin holding only Reset Password on the target OU, and the source password then working
on TGT the three ways a user signs in: LDAPS simple bind, NTLM, Kerberos.

Rights are granted as an administrator of the DC would: `samba-tool dsacl set` on the DC
(here, against the lab DC's own sam.ldb).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest
from impacket.ntlm import compute_nthash  # the test extra has impacket
from ldap3.protocol.microsoft import security_descriptor_control
from tests.integration.lab.clients import Clients, require_tools
from tests.support.dsacl import dsacl_set

from ferry.lab import LabDomain
from ferry_agent.directory import (
    DirectoryConnectionError,
    DirectoryEndpoint,
    add_members,
    connect,
    create,
)
from ferry_agent.directory.guid import guid_from_bytes
from ferry_agent.directory.subtrees import WriteSubtrees
from ferry_agent.directory.values import sid_from_bytes
from ferry_agent.directory.write import delete, ensure_ou, update
from ferry_agent.dn import build_dn
from ferry_agent.passwords import DcEndpoint, PasswordSyncError, replication, samr, targets

pytestmark = pytest.mark.lab

GET_CHANGES = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2"
GET_CHANGES_ALL = "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2"
RESET_PASSWORD = "00299570-246d-11d0-a768-00aa006e0529"
USER_CLASS = "bf967aba-0de6-11d0-a285-00aa003049e2"
DACL_ONLY = 0x4
NO_DC = "127.0.0.254"  # loopback, nothing listens there


# -- the DC administrator's side -----------------------------------------------------------------



def object_sid(conn: ldap3.Connection, dn: str) -> str:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
    return sid_from_bytes(conn.response[0]["raw_attributes"]["objectSid"][0])


@dataclass(frozen=True)
class Account:
    sam: str
    dn: str
    password: str
    guid: str


def new_user(conn: ldap3.Connection, parent: str, prefix: str, sam: str = "") -> Account:
    """An enabled user with a known password (different for each call)."""
    sam = sam or f"{prefix}{uuid.uuid4().hex[:8]}"
    password = f"Pw!{uuid.uuid4().hex[:12]}-Aa1"
    dn = build_dn(sam, parent)
    guid = create(conn, "user", dn, {"sAMAccountName": [sam]}, password=password,
                  must_change_password=False, enabled=True)  # fmt: skip
    return Account(sam, dn, password, guid)


@pytest.fixture(scope="module")
def src_root_dacl(lab) -> Iterator[None]:
    """SRC's domain root DACL as it was, put back after this module (the lab outlives it)."""
    controls = security_descriptor_control(sdflags=DACL_ONLY)
    conn = lab.src.connect()
    conn.search(lab.src.base_dn, "(objectClass=*)", ldap3.BASE,
                attributes=["nTSecurityDescriptor"], controls=controls)  # fmt: skip
    saved = conn.response[0]["raw_attributes"]["nTSecurityDescriptor"][0]
    try:
        yield
    finally:
        conn.modify(lab.src.base_dn, {"nTSecurityDescriptor": [(ldap3.MODIFY_REPLACE, [saved])]},
                    controls=controls)  # fmt: skip
        assert conn.result["result"] == 0, conn.result
        conn.unbind()


@pytest.fixture(scope="module")
def src_accounts(lab) -> Iterator[str]:
    """An OU on SRC for this module's service accounts."""
    dn = f"OU=Svc-{uuid.uuid4().hex[:8]},{lab.src.base_dn}"
    conn = lab.src.connect()
    ensure_ou(conn, dn)
    yield dn
    delete(conn, dn, tree=True)
    conn.unbind()


def source_endpoint(domain: LabDomain, account: Account) -> DcEndpoint:
    return DcEndpoint(host=domain.ip, user=f"{account.sam}@{domain.dns_domain}",
                      password=account.password, base_dn=domain.base_dn)  # fmt: skip


@pytest.fixture(scope="module")
def replicator(lab, src_root_dacl, src_accounts: str) -> DcEndpoint:
    """SRC as a plain user granted the two replication rights on the domain root, nothing more."""
    conn = lab.src.connect()
    account = new_user(conn, src_accounts, "repl")
    sid = object_sid(conn, account.dn)
    conn.unbind()
    dsacl_set(lab.src, lab.src.base_dn,
              f"(OA;;CR;{GET_CHANGES};;{sid})(OA;;CR;{GET_CHANGES_ALL};;{sid})")
    return source_endpoint(lab.src, account)


@pytest.fixture
def resetter(lab, tgt_ou: str) -> Iterator[DcEndpoint]:
    """TGT as a plain user (DOMAIN\\user form) with Reset Password on the users of `tgt_ou`."""
    conn = lab.tgt.connect()
    account = new_user(conn, f"CN=Users,{lab.tgt.base_dn}", "pwset")
    sid = object_sid(conn, account.dn)
    dsacl_set(lab.tgt, tgt_ou, f"(OA;CI;CR;{RESET_PASSWORD};{USER_CLASS};{sid})")
    try:
        yield DcEndpoint(host=lab.tgt.ip, user=f"{lab.tgt.netbios}\\{account.sam}",
                         password=account.password, base_dn=lab.tgt.base_dn)  # fmt: skip
    finally:
        delete(conn, account.dn)
        conn.unbind()


def full_read(endpoint: DcEndpoint) -> tuple[dict[str, replication.NtHash], str]:
    """Every hash of a full read by objectGUID, and the read's watermark."""
    with replication.changes(endpoint) as read:
        found = {item.guid: item for item in read}
    return found, read.watermark


def ldaps_bind(domain: LabDomain, user: str, password: str) -> bool:
    try:
        conn = connect(DirectoryEndpoint(host=domain.ip, port=domain.port, bind_user=user,
                                         password=password, ca_file=str(domain.ca_file)))
    except DirectoryConnectionError:
        return False
    conn.unbind()
    return True


# -- read on SRC, set on TGT, sign in on TGT ------------------------------------------------------


def test_a_source_password_signs_in_on_the_target_by_ldaps_ntlm_and_kerberos(
    lab, replicator, resetter, src_ou: str, tgt_ou: str, tmp_path: Path
) -> None:
    require_tools()
    src, tgt = lab.src.connect(), lab.tgt.connect()
    source = new_user(src, src_ou, "mig")
    target = new_user(tgt, tgt_ou, "", sam=source.sam)  # the same name, its own password

    found, _ = full_read(replicator)
    assert found[source.guid].nt_hash == compute_nthash(source.password)
    assert found[source.guid].sam == source.sam
    assert all(int(item.sid.rsplit("-", 1)[1]) >= 1000 for item in found.values())  # no krbtgt

    upn = f"{source.sam}@{lab.tgt.dns_domain}"
    assert ldaps_bind(lab.tgt, upn, target.password)
    assert not ldaps_bind(lab.tgt, upn, source.password)
    (resolved,) = targets.resolve(tgt, [target.guid], WriteSubtrees((tgt_ou,), "test"))
    assert resolved.allowed, resolved.refusal
    assert samr.set_nt_hashes(resetter, [(resolved.sid, found[source.guid].nt_hash)]) == [None]

    assert ldaps_bind(lab.tgt, upn, source.password)
    clients = Clients(lab.root, tmp_path)
    ntlm = clients.rpcclient(f"ncacn_np:{lab.tgt.ip}", "querydominfo", domain=lab.tgt,
                             user=source.sam, password=source.password,
                             extra=("--use-kerberos=off",))  # fmt: skip
    assert ntlm.returncode == 0, ntlm.stdout + ntlm.stderr
    kerberos = clients.kinit(f"{source.sam}@{lab.tgt.realm}", source.password)
    assert kerberos.returncode == 0, kerberos.stderr
    assert f"krbtgt/{lab.tgt.realm}@{lab.tgt.realm}" in clients.klist().stdout


def test_a_delta_returns_the_user_whose_password_changed_and_no_other(
    lab, replicator, src_ou: str
) -> None:
    conn = lab.src.connect()
    changed, other = new_user(conn, src_ou, "chg"), new_user(conn, src_ou, "oth")
    before, watermark = full_read(replicator)
    assert {changed.guid, other.guid} <= before.keys()

    password = f"New!{uuid.uuid4().hex[:10]}-Bb2"
    conn.modify(changed.dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE,
                                            [f'"{password}"'.encode("utf-16-le")])]})
    assert conn.result["result"] == 0, conn.result
    read = replication.changes(replicator, watermark)
    delta = list(read)
    assert [(item.guid, item.sam) for item in delta] == [(changed.guid, changed.sam)]
    assert delta[0].nt_hash == compute_nthash(password)
    assert delta[0].sid == object_sid(conn, changed.dn)
    assert read.watermark != watermark
    assert list(replication.changes(replicator, read.watermark)) == []


def test_a_delta_after_only_a_title_change_returns_nothing_for_that_user(
    lab, replicator, src_ou: str
) -> None:
    conn = lab.src.connect()
    user = new_user(conn, src_ou, "ttl")
    _, watermark = full_read(replicator)
    update(conn, user.dn, {"title": ["Head of Titles"]})
    read = replication.changes(replicator, watermark)
    assert list(read) == []
    # The DC did send the change: the watermark moved past it.
    assert read.watermark != watermark


def test_hashes_of_reads_the_users_it_names(lab, replicator, src_ou: str) -> None:
    conn = lab.src.connect()
    user, unnamed = new_user(conn, src_ou, "one"), new_user(conn, src_ou, "two")
    # A computer has an NT hash too, but it is no user account: never read.
    device = create(conn, "device", build_dn(f"pc{uuid.uuid4().hex[:6]}", src_ou), {},
                    password=f"Pc!{uuid.uuid4().hex}")  # fmt: skip
    found = list(replication.hashes_of(replicator, [user.guid, device, str(uuid.uuid4())]))
    assert [(item.guid, item.sam) for item in found] == [(user.guid, user.sam)]
    assert found[0].nt_hash == compute_nthash(user.password)
    assert unnamed.guid not in {item.guid for item in found}


def test_the_probe_passes_for_the_granted_account(replicator) -> None:
    probe = replication.probe_replication(replicator)
    assert probe.ok, probe.message


# -- what an operator is told ---------------------------------------------------------------------


def test_an_account_without_the_rights_is_told_which_to_grant(
    lab, src_root_dacl, src_accounts: str, src_ou: str
) -> None:
    conn = lab.src.connect()
    account = new_user(conn, src_accounts, "norights")
    someone = new_user(conn, src_ou, "who")
    endpoint = source_endpoint(lab.src, account)

    probe = replication.probe_replication(endpoint)
    assert (probe.ok, probe.state) == (False, "missing-rights")
    assert '"Replicating Directory Changes"' in probe.message
    assert account.sam in probe.message and lab.src.base_dn in probe.message
    for attempt in (lambda: list(replication.changes(endpoint)),
                    lambda: list(replication.hashes_of(endpoint, [someone.guid]))):
        with pytest.raises(PasswordSyncError, match=r'lacks "Replicating Directory Changes"'):
            attempt()

    # With the first right only, what is still missing is named.
    dsacl_set(lab.src, lab.src.base_dn, f"(OA;;CR;{GET_CHANGES};;{object_sid(conn, account.dn)})")
    probe = replication.probe_replication(endpoint)
    assert probe.state == "missing-rights"
    assert 'lacks "Replicating Directory Changes All"' in probe.message
    with pytest.raises(PasswordSyncError, match='lacks "Replicating Directory Changes All"'):
        list(replication.changes(endpoint))


def test_a_wrong_password_and_a_closed_port_are_named(lab, replicator) -> None:
    wrong = DcEndpoint(host=replicator.host, user=replicator.user, password="not-it",
                       base_dn=replicator.base_dn)  # fmt: skip
    probe = replication.probe_replication(wrong)
    assert probe.state == "logon-refused"
    assert replicator.user in probe.message and "password" in probe.message
    with pytest.raises(PasswordSyncError, match="refused the NTLM logon"):
        samr.set_nt_hashes(DcEndpoint(host=lab.tgt.ip, user=f"TGT\\{uuid.uuid4().hex[:8]}",
                                      password="not-it", base_dn=lab.tgt.base_dn),
                           [("S-1-5-21-1-2-3-1001", bytes(16))])  # fmt: skip
    closed = DcEndpoint(host=NO_DC, user=replicator.user, password="x",
                        base_dn=replicator.base_dn, connect_timeout=5)  # fmt: skip
    probe = replication.probe_replication(closed)
    assert probe.state == "unreachable"
    assert "port 135" in probe.message


def test_reset_password_missing_on_a_target_is_named_per_user(
    lab, resetter, tgt_ou: str
) -> None:
    conn = lab.tgt.connect()
    elsewhere = f"OU=NoReset-{uuid.uuid4().hex[:8]},{lab.tgt.base_dn}"
    ensure_ou(conn, elsewhere)
    try:
        inside, outside = new_user(conn, tgt_ou, "in"), new_user(conn, elsewhere, "out")
        digest = compute_nthash(f"Set!{uuid.uuid4().hex[:8]}-Cc3")
        outcomes = samr.set_nt_hashes(resetter, [(object_sid(conn, outside.dn), digest),
                                                 (object_sid(conn, inside.dn), digest)])
        assert outcomes[1] is None
        assert outcomes[0] is not None
        assert object_sid(conn, outside.dn) in outcomes[0]
        assert "lacks Reset Password" in outcomes[0]
        assert ldaps_bind(lab.tgt, f"{outside.sam}@{lab.tgt.dns_domain}", outside.password)
    finally:
        delete(conn, elsewhere, tree=True)


# -- the targets a password must never reach ------------------------------------------------------


def test_protected_and_out_of_subtree_targets_are_refused(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    plain = new_user(conn, tgt_ou, "plain")
    admin = new_user(conn, tgt_ou, "nestadm")
    group = build_dn(f"admins{uuid.uuid4().hex[:6]}", tgt_ou)
    create(conn, "group", group, {"sAMAccountName": [group.split(",")[0][3:]]})
    add_members(conn, group, [admin.dn])
    domain_admins = f"CN=Domain Admins,CN=Users,{lab.tgt.base_dn}"
    add_members(conn, domain_admins, [group])
    marked = new_user(conn, tgt_ou, "marked")
    update(conn, marked.dn, {"adminCount": ["1"]})
    other = f"OU=Other-{uuid.uuid4().hex[:8]},{lab.tgt.base_dn}"
    ensure_ou(conn, other)
    try:
        stray = new_user(conn, other, "stray")
        builtin = guid_of(conn, f"CN=Administrator,CN=Users,{lab.tgt.base_dn}")
        resolved = targets.resolve(conn, [plain.guid, admin.guid, marked.guid, stray.guid,
                                          builtin], WriteSubtrees((tgt_ou,), "agent.ini"))
        why = [target.refusal for target in resolved]
        assert why[0] == ""
        assert resolved[0].sid == object_sid(conn, plain.dn) and resolved[0].dn == plain.dn
        assert "member of Domain Admins" in why[1] and admin.dn in why[1]
        assert "adminCount" in why[2]
        assert "outside this agent's write_subtrees" in why[3] and stray.dn in why[3]
        assert "built-in account" in why[4]
        # A sync Job writing directly has no write subtrees: only the protection applies.
        assert [t.allowed for t in targets.resolve(conn, [stray.guid, admin.guid], None)] == [
            True, False]
    finally:
        conn.modify(domain_admins, {"member": [(ldap3.MODIFY_DELETE, [group])]})
        delete(conn, other, tree=True)


def guid_of(conn: ldap3.Connection, dn: str) -> str:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    return guid_from_bytes(conn.response[0]["raw_attributes"]["objectGUID"][0])
