"""The lab DCs' services seen from outside: Kerberos, SMB/SAMR, RPC, and labs side by side.

What password sync and SID history rely on: a KDC that knows the DC's SPNs, SAMR over SMB
(\\pipe\\samr) with NTLM, the endpoint mapper naming DRSUAPI over TCP, and DCs that keep to
their own /run/samba, so labs of parallel test sessions do not answer for each other.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import ldap3
import pytest
from tests.integration.lab.clients import Clients, require_tools

from ferry.lab import Lab, LabDomain
from ferry.lab.samba import DomainSpec, free_addresses
from ferry.lab.services import members, port_open, private_namespace
from ferry_agent.directory import create, generate_password
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab

DRSUAPI = "e3514235-4b06-11d1-ab04-00c04fc2dcd2"


@dataclass(frozen=True)
class User:
    sam: str
    password: str
    rid: int


@pytest.fixture(autouse=True)
def _tools() -> None:
    require_tools()


@pytest.fixture
def user(lab, tgt_ou: str) -> User:
    """An enabled user on TGT with a known password."""
    conn = lab.tgt.connect()
    sam = f"svc-{uuid.uuid4().hex[:8]}"
    password = generate_password()
    dn = build_dn(sam, tgt_ou)
    create(conn, "user", dn, {"sAMAccountName": [sam]}, password=password,
           must_change_password=False, enabled=True)  # fmt: skip
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectSid"])
    sid = conn.response[0]["raw_attributes"]["objectSid"][0]
    conn.unbind()
    return User(sam, password, int.from_bytes(sid[-4:], "little"))  # the last sub-authority


def test_a_lab_user_gets_tickets_from_the_lab_kdc(lab, user: User, tmp_path: Path) -> None:
    clients = Clients(lab.root, tmp_path / "right")
    done = clients.kinit(f"{user.sam}@{lab.tgt.realm}", user.password)
    assert done.returncode == 0, done.stderr
    assert f"krbtgt/{lab.tgt.realm}@{lab.tgt.realm}" in clients.klist().stdout
    # The DC's SPNs are registered: service tickets for its LDAP, SMB and host names.
    host = lab.tgt.host_name
    names = [f"{spn}@{lab.tgt.realm}" for spn in (f"ldap/{host}", f"cifs/{host}", f"HOST/{host}",
                                                   "cifs/DC1")]
    done = clients.kvno(*names)
    assert done.returncode == 0, done.stderr
    assert all(f"{name}: kvno = " in done.stdout for name in names), done.stdout
    # And the KDC really checks the password.
    wrong = Clients(lab.root, tmp_path / "wrong").kinit(
        f"{user.sam}@{lab.tgt.realm}", "x" + user.password
    )
    assert wrong.returncode != 0
    assert "Password incorrect" in wrong.stderr or "Preauthentication failed" in wrong.stderr


def test_an_smb_session_to_the_dc_by_name_with_kerberos(lab, user: User, tmp_path: Path) -> None:
    clients = Clients(lab.root, tmp_path)
    assert clients.kinit(f"{user.sam}@{lab.tgt.realm}", user.password).returncode == 0
    done = clients.rpcclient_kerberos(lab.tgt, "querydominfo")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(rf"^Domain:\s+{lab.tgt.netbios}$", done.stdout, re.M), done.stdout
    assert f"cifs/{lab.tgt.host_name}@{lab.tgt.realm}" in clients.klist().stdout


def test_samr_over_smb_with_ntlm_answers_from_the_directory(
    lab, user: User, tmp_path: Path
) -> None:
    clients = Clients(lab.root, tmp_path)
    done = clients.rpcclient(f"ncacn_np:{lab.tgt.ip}", f"samlookupnames domain {user.sam}",
                             domain=lab.tgt, user=user.sam, password=user.password)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    found = re.search(rf"^name {re.escape(user.sam)}: 0x{user.rid:x} \(1\)$", done.stdout, re.M)
    assert found, done.stdout
    refused = clients.rpcclient(f"ncacn_np:{lab.tgt.ip}", "querydominfo", domain=lab.tgt,
                                user=user.sam, password="x" + user.password)  # fmt: skip
    assert refused.returncode != 0
    assert "NT_STATUS_LOGON_FAILURE" in refused.stdout + refused.stderr


@pytest.mark.parametrize("name", ["src", "tgt"])
def test_the_endpoint_mapper_names_drsuapi_over_tcp(lab, name: str, tmp_path: Path) -> None:
    domain: LabDomain = getattr(lab, name)
    assert port_open(domain.ip, 135)
    done = Clients(lab.root, tmp_path).rpcclient(
        f"ncacn_ip_tcp:{domain.ip}", "epmlookup", domain=domain, user="Administrator",
        password=domain.admin_password,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ports = {int(port) for port in re.findall(
        rf"ncacn_ip_tcp:[\d.]+\[(\d+),abstract_syntax={DRSUAPI}/", done.stdout)}  # fmt: skip
    assert ports, done.stdout
    assert all(port_open(domain.ip, port) for port in ports)


def test_two_labs_side_by_side_and_down_leaves_nothing(
    lab, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    (ip,) = free_addresses(1)
    root = tmp_path_factory.mktemp("lab") / "second"  # short: Unix socket paths live in it
    manager = Lab(max_runtime=3600)
    try:
        (other,) = manager.up(root, [DomainSpec("TGT.TEST", "TGT", ip)])
        # Both TGT.TEST DCs take NTLM logons over SMB: with one shared /run/samba, one DC's
        # smbd would ask the other's winbindd and fail with NT_STATUS_INTERNAL_ERROR.
        for domain, lab_root in ((lab.tgt, lab.root), (other, root)):
            done = Clients(lab_root, tmp_path / domain.ip).rpcclient(
                f"ncacn_np:{domain.ip}", "querydominfo", domain=domain, user="Administrator",
                password=domain.admin_password,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
        # Each DC's smbd and winbindd see their own DC's run folder as /run/samba.
        namespaces = {}
        for domain, lab_root in ((lab.src, lab.root), (lab.tgt, lab.root), (other, root)):
            namespaces[domain.folder] = private_namespace(dc_pid(manager, lab_root, domain))
            daemons = programs(members(namespaces[domain.folder]))
            assert {"samba", "smbd", "winbindd"} <= set(daemons.values()), daemons
            own = os.stat(domain.folder / "run")
            for pid, name in daemons.items():
                if name in ("smbd", "winbindd"):
                    seen = os.stat(f"/proc/{pid}/root/run/samba")
                    assert (seen.st_dev, seen.st_ino) == (own.st_dev, own.st_ino), (name, domain)
        assert mounts_of(other.folder / "run")  # seen while it runs, so its absence later counts
        # The machine's /run/samba is none of them.
        mine = os.stat("/run/samba")
        assert all((mine.st_dev, mine.st_ino) != (os.stat(f / "run").st_dev,
                   os.stat(f / "run").st_ino) for f in namespaces)  # fmt: skip
    finally:
        down = subprocess.run([sys.executable, "-m", "ferry", "lab", "down", "--dir", str(root)],
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    # No process of that DC is left (smbd and winbindd included), nor its namespace's mount.
    assert namespaces[other.folder] is not None
    assert members(namespaces[other.folder]) == []
    assert not root.exists()
    assert not mounts_of(other.folder / "run")
    # The session's lab goes on answering.
    done = Clients(lab.root, tmp_path / "after").rpcclient(
        f"ncacn_np:{lab.tgt.ip}", "querydominfo", domain=lab.tgt, user="Administrator",
        password=lab.tgt.admin_password,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def dc_pid(manager: Lab, root: Path, domain: LabDomain) -> int:
    (status,) = [s for s in manager.status(root) if s.domain.folder == domain.folder]
    assert status.pid is not None and status.running
    return status.pid


def programs(pids: list[int]) -> dict[int, str]:
    """pid -> program name (from the executable; samba renames its processes)."""
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            found[pid] = Path(os.readlink(f"/proc/{pid}/exe")).name
    return found


def mounts_of(folder: Path) -> list[str]:
    """mountinfo lines, in any process's mount namespace, of a bind mount of `folder`."""
    # The root field is relative to its file system: compare the tail, unique to this test.
    tail = "/" + "/".join(folder.parts[-5:])
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "mountinfo").read_text()
            except OSError:
                continue
            lines += [line for line in text.splitlines() if line.split()[3].endswith(tail)]
    return lines
