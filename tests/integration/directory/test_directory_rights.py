"""`ferry check`'s probes against a real Samba AD DC: the replication rights on the domain root,
Reset Password on the users of an OU, and the RPC and SMB ports.

Each verdict is also held against what the DC itself does with the right: a DirSync search
(Samba asks for DS-Replication-Get-Changes on the domain root), a DRSUAPI replication of the
domain root asking for password attributes (both rights: ferry_agent.passwords'
probe_replication) and an LDAP password reset of a user in the OU (User-Force-Change-Password).
Rights are granted the way the finding says, with `samba-tool dsacl set` run on the DC (here:
against the lab DC's own sam.ldb).
"""

from __future__ import annotations

import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace

import ldap3
import pytest
from ldap3.protocol.microsoft import security_descriptor_control
from tests.support.dsacl import dsacl_set

from ferry.lab import LabDomain
from ferry_agent.directory import (
    DirSyncUnavailable,
    add_members,
    connect,
    create,
    ensure_ou,
    generate_password,
    initial_watermark,
)
from ferry_agent.directory.ports import rpc_ports
from ferry_agent.directory.rights import (
    RESET_PASSWORD,
    USER_CLASS,
    bound_account,
    replication_rights,
    reset_password_right,
)
from ferry_agent.directory.values import sid_from_bytes

REPLICATION = ("DS-Replication-Get-Changes", "DS-Replication-Get-Changes-All")
REPLICATION_GUIDS = ("1131f6aa-9c07-11d1-f79f-00c04fc2dcd2", "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2")


@dataclass(frozen=True)
class Service:
    """A plain account Ferry would bind as, created for one test."""

    dn: str
    sam: str
    password: str
    domain: LabDomain

    def connect(self) -> ldap3.Connection:
        """A fresh bind: group changes reach the token only at the next logon."""
        endpoint = self.domain.endpoint()
        return connect(replace(endpoint, bind_user=f"{self.sam}@{self.domain.dns_domain}",
                               password=self.password))


@dataclass(frozen=True)
class Ous:
    targets: str
    target_user: str
    other: str
    other_user: str


@pytest.fixture
def service(lab, tgt_ou: str) -> Service:
    sam = f"svc{uuid.uuid4().hex[:8]}"
    password = generate_password(avoid=[sam])
    dn = f"CN={sam},{tgt_ou}"
    conn = lab.tgt.connect()
    create(conn, "user", dn, {"sAMAccountName": [sam]}, password=password)
    conn.unbind()
    return Service(dn, sam, password, lab.tgt)


@pytest.fixture
def ous(lab, tgt_ou: str) -> Ous:
    """Two OUs below the scratch OU, each with one user whose password Ferry would set."""
    conn = lab.tgt.connect()
    made = []
    for name in ("Targets", "Other"):
        ou = f"OU={name},{tgt_ou}"
        ensure_ou(conn, ou)
        user = f"CN=u{uuid.uuid4().hex[:8]},{ou}"
        create(conn, "user", user, {}, password=generate_password())
        made += [ou, user]
    conn.unbind()
    return Ous(*made)


@pytest.fixture
def domain_root_dacl(lab) -> Iterator[None]:
    """The domain root's DACL as it was, put back after the test (the lab outlives it)."""
    controls = security_descriptor_control(sdflags=0x4)
    conn = lab.tgt.connect()
    base = lab.tgt.base_dn
    conn.search(base, "(objectClass=*)", ldap3.BASE, attributes=["nTSecurityDescriptor"],
                controls=controls)
    saved = conn.response[0]["raw_attributes"]["nTSecurityDescriptor"][0]
    try:
        yield
    finally:
        conn.modify(base, {"nTSecurityDescriptor": [(ldap3.MODIFY_REPLACE, [saved])]},
                    controls=controls)
        assert conn.result["result"] == 0, conn.result
        conn.unbind()


def object_sid(domain: LabDomain, dn: str) -> str:
    conn = domain.connect()
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
    raw = conn.response[0]["raw_attributes"]["objectSid"][0]
    conn.unbind()
    return sid_from_bytes(raw)



def apply_advice(domain: LabDomain, message: str) -> None:
    """Run the samba-tool command a finding tells the administrator to run."""
    found = re.search(r"samba-tool dsacl set .* --objectdn='([^']+)' --sddl='([^']+)'", message)
    assert found, f"the finding names no samba-tool command: {message}"
    dsacl_set(domain, found.group(1), found.group(2))


def can_dirsync(conn: ldap3.Connection) -> bool:
    try:
        initial_watermark(conn, method="dirsync")
    except DirSyncUnavailable:
        return False
    return True


def can_reset(conn: ldap3.Connection, user_dn: str) -> bool:
    """Whether the DC lets this connection reset the user's password (no old password)."""
    return bool(conn.extend.microsoft.modify_password(user_dn, generate_password()))


def can_replicate(service: Service) -> bool:
    """Whether the DC lets the account read password hashes by DRSUAPI (both rights)."""
    from ferry_agent.passwords.endpoint import DcEndpoint
    from ferry_agent.passwords.replication import probe_replication

    domain = service.domain
    probe = probe_replication(DcEndpoint(host=domain.ip, user=f"{service.sam}@{domain.dns_domain}",
                                         password=service.password, base_dn=domain.base_dn))
    assert probe.state in ("ok", "missing-rights"), probe.message
    return probe.ok


def join_domain_admins(lab, service: Service) -> None:
    conn = lab.tgt.connect()
    add_members(conn, f"CN=Domain Admins,CN=Users,{lab.tgt.base_dn}", [service.dn])
    conn.unbind()


@pytest.mark.lab
def test_a_fresh_account_lacks_both_and_is_told_how_to_get_them(lab, service, ous) -> None:
    conn = service.connect()
    replication = replication_rights(conn, lab.tgt.base_dn)
    reset = reset_password_right(conn, ous.targets)

    assert not replication.ok and replication.missing == REPLICATION
    assert service.dn in replication.message
    assert "DS-Replication-Get-Changes-All" in replication.message
    assert f'dsacls "{lab.tgt.base_dn}" /G' in replication.message
    assert not reset.ok and reset.missing == (RESET_PASSWORD.name,)
    assert service.dn in reset.message and "Reset Password" in reset.message
    assert f"user objects in {ous.targets}" in reset.message
    assert f'dsacls "{ous.targets}" /I:S /G "{service.sam}@' in reset.message
    # The DC agrees.
    assert not can_dirsync(conn)
    assert not can_replicate(service)
    assert not can_reset(conn, ous.target_user)


@pytest.mark.lab
def test_the_granted_rights_pass(lab, service, ous, domain_root_dacl) -> None:
    conn = service.connect()
    apply_advice(lab.tgt, replication_rights(conn, lab.tgt.base_dn).message)
    apply_advice(lab.tgt, reset_password_right(conn, ous.targets).message)

    replication = replication_rights(conn, lab.tgt.base_dn)
    reset = reset_password_right(conn, ous.targets)
    assert replication.ok and replication.missing == (), replication.message
    assert reset.ok and reset.missing == (), reset.message
    assert can_dirsync(conn)
    assert can_replicate(service)
    assert can_reset(conn, ous.target_user)


@pytest.mark.lab
def test_a_domain_admins_member_has_them_through_the_group(lab, service, ous) -> None:
    join_domain_admins(lab, service)
    conn = service.connect()

    assert replication_rights(conn, lab.tgt.base_dn).ok
    assert reset_password_right(conn, ous.targets).ok
    assert can_dirsync(conn)
    assert can_replicate(service)
    assert can_reset(conn, ous.target_user)


@pytest.mark.lab
def test_reset_password_on_another_ou_does_not_count(lab, service, ous) -> None:
    sid = object_sid(lab.tgt, service.dn)
    dsacl_set(lab.tgt, ous.other, f"(OA;CIIO;CR;{RESET_PASSWORD.guid};{USER_CLASS};{sid})")
    conn = service.connect()

    assert reset_password_right(conn, ous.other).ok
    finding = reset_password_right(conn, ous.targets)
    assert not finding.ok and finding.missing == (RESET_PASSWORD.name,)
    assert can_reset(conn, ous.other_user)
    assert not can_reset(conn, ous.target_user)


@pytest.mark.lab
def test_reset_password_for_another_class_does_not_count(lab, service, ous) -> None:
    computer = "bf967a86-0de6-11d0-a285-00aa003049e2"  # inherited by computer objects only
    sid = object_sid(lab.tgt, service.dn)
    dsacl_set(lab.tgt, ous.targets, f"(OA;CIIO;CR;{RESET_PASSWORD.guid};{computer};{sid})")
    conn = service.connect()

    assert not reset_password_right(conn, ous.targets).ok
    assert not can_reset(conn, ous.target_user)


@pytest.mark.lab
def test_a_deny_ace_wins_over_a_groups_grant(lab, service, ous, tgt_ou, domain_root_dacl) -> None:
    conn = lab.tgt.connect()
    group = f"CN=g{uuid.uuid4().hex[:8]},{tgt_ou}"
    create(conn, "group", group, {})
    add_members(conn, group, [service.dn])
    conn.unbind()
    sid, group_sid = object_sid(lab.tgt, service.dn), object_sid(lab.tgt, group)
    reset_ace = f"CIIO;CR;{RESET_PASSWORD.guid};{USER_CLASS}"
    dsacl_set(lab.tgt, ous.targets, f"(OA;{reset_ace};{group_sid})(OD;{reset_ace};{sid})")
    root_aces = "".join(f"(OA;;CR;{guid};;{group_sid})" for guid in REPLICATION_GUIDS)
    dsacl_set(lab.tgt, lab.tgt.base_dn, f"{root_aces}(OD;;CR;{REPLICATION_GUIDS[0]};;{sid})")
    conn = service.connect()

    reset = reset_password_right(conn, ous.targets)
    assert not reset.ok and reset.missing == (RESET_PASSWORD.name,)
    assert f"Denied by (OD;{reset_ace};{sid}), set on {ous.targets}" in reset.message
    replication = replication_rights(conn, lab.tgt.base_dn)
    assert not replication.ok and replication.missing == ("DS-Replication-Get-Changes",)
    assert f"Denied by (OD;;CR;{REPLICATION_GUIDS[0]};;{sid})" in replication.message
    assert not can_reset(conn, ous.target_user)
    assert not can_dirsync(conn)
    assert not can_replicate(service)


@pytest.mark.lab
def test_domain_admins_keep_reset_password_despite_a_deny_on_the_ou(lab, service, ous) -> None:
    """A user's own ACEs (its class's default: Domain Admins full control) come before those
    its OU passes down, so a deny set on the OU does not reach a Domain Admin there."""
    join_domain_admins(lab, service)
    sid = object_sid(lab.tgt, service.dn)
    dsacl_set(lab.tgt, ous.targets, f"(OD;CIIO;CR;{RESET_PASSWORD.guid};{USER_CLASS};{sid})")
    conn = service.connect()

    finding = reset_password_right(conn, ous.targets)
    assert finding.ok, finding.message
    assert can_reset(conn, ous.target_user)


@pytest.mark.lab
def test_an_ou_that_is_not_there_is_named(lab, service, tgt_ou) -> None:
    missing = f"OU=Nowhere,{tgt_ou}"
    finding = reset_password_right(service.connect(), missing)
    assert not finding.ok
    assert f"cannot read {missing}" in finding.message and "noSuchObject" in finding.message


@pytest.mark.lab
def test_rpc_and_smb_are_open_on_the_lab_dc(lab) -> None:
    found = rpc_ports(lab.tgt.ip, timeout=30)
    assert found.ok, found.message
    assert [(probe.port, probe.state) for probe in found.probes] == [(135, "open"), (445, "open")]


def test_closed_ports_are_reported_refused() -> None:
    # Sockets bound but not listening: nothing else can take the ports meanwhile, and the
    # kernel answers a connect with a reset, as for a DC whose services are off.
    host = "127.0.0.1"  # the lab never uses it (its DCs start at 127.0.0.2)
    holders = []
    try:
        for port in (135, 445):
            holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            holders.append(holder)
            try:
                holder.bind((host, port))
            except OSError as exc:
                pytest.skip(f"{host}:{port} is taken here ({exc})")
        found = rpc_ports(host, timeout=30)
    finally:
        for holder in holders:
            holder.close()

    assert not found.ok
    assert [(probe.port, probe.state) for probe in found.probes] == [
        (135, "refused"), (445, "refused")]
    assert "445 (SMB) on 127.0.0.1 refused: the DC needs smbd (Samba: 's3fs'" in found.message
    assert "135 (RPC endpoint mapper) on 127.0.0.1 refused" in found.message


@pytest.mark.lab
@pytest.mark.parametrize("form", ["upn", "netbios", "dn"])
def test_the_bound_account_is_found_whatever_the_bind_name(lab, service, form) -> None:
    bind_user = {"upn": f"{service.sam}@{lab.tgt.dns_domain}",
                 "netbios": f"{lab.tgt.netbios}\\{service.sam}", "dn": service.dn}[form]
    conn = connect(replace(lab.tgt.endpoint(), bind_user=bind_user, password=service.password))
    account = bound_account(conn)
    assert account.dn == service.dn
    assert account.sid == object_sid(lab.tgt, service.dn)
    domain_users = f"{account.sid.rsplit('-', 1)[0]}-513"
    assert {account.sid, domain_users, "S-1-5-11"} <= account.sids
