"""Fixtures of the device ReACL tests: a real smbd file server (no DCs needed: the SIDs are
synthetic, see sids.py)."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.integration.conftest import LabDomains

from ferry.lab import Lab, LabDomain
from ferry.lab.fileserver import FileServer, file_server
from ferry.lab.samba import DomainSpec, free_addresses
from ferry.lab.workstations import Workstation


@pytest.fixture(scope="session")
def fileserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """smbd serving a folder as [data] with vfs acl_xattr, for the whole session."""
    if shutil.which("smbd") is None or shutil.which("smbcacls") is None:
        pytest.skip("smbd/smbcacls are not installed (`make deps` installs Debian's samba)")
    (ip,) = free_addresses(1)
    with file_server(Path(tmp_path_factory.mktemp("fileserver")), ip) as server:
        yield server


# -- domain moves (test_domain_move_samba.py): lab workstations ----------------------------------

@dataclass(frozen=True)
class MoveLab:
    """Two lab domains, a workstations folder, and the hosts file DC names resolve by."""

    src: LabDomain
    tgt: LabDomain
    root: Path
    hosts: Path


def _move_lab(domains: tuple[LabDomain, LabDomain], root: Path) -> MoveLab:
    from ferry.lab.workstations import hosts_file

    root.mkdir(parents=True, exist_ok=True)
    return MoveLab(domains[0], domains[1], root, hosts_file(root, domains))


@pytest.fixture(scope="session")
def move_lab(lab: LabDomains, tmp_path_factory: pytest.TempPathFactory) -> MoveLab:
    """The session's SRC and TGT (left running: tests here never stop a DC)."""
    if shutil.which("adcli") is None:
        pytest.skip("adcli is not installed (`make deps` installs it)")
    return _move_lab((lab.src, lab.tgt), Path(tmp_path_factory.mktemp("ws")))


@pytest.fixture(scope="module")
def own_move_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoveLab]:
    """SRC and TGT of this module alone: the cached logon test stops TGT's DC."""
    if shutil.which("adcli") is None or shutil.which("winbindd") is None:
        pytest.skip("adcli/winbindd are not installed (`make deps` installs them)")
    root = Path(tmp_path_factory.mktemp("own-lab"))
    src_ip, tgt_ip = free_addresses(2)
    specs = [DomainSpec("SRC.TEST", "SRC", src_ip), DomainSpec("TGT.TEST", "TGT", tgt_ip)]
    manager = Lab(max_runtime=2 * 3600)
    src, tgt = manager.up(root / "dcs", specs)
    try:
        yield _move_lab((src, tgt), root / "ws")
    finally:
        manager.down(root / "dcs")


@pytest.fixture
def lab_workstation(move_lab: MoveLab) -> Iterator[Workstation]:
    """A fresh lab workstation (own loopback address) joined to SRC."""
    yield from _workstation(move_lab)


def _workstation(move_lab: MoveLab) -> Iterator[Workstation]:
    from ferry.lab import workstations

    (ip,) = free_addresses(1)
    name = f"WS{uuid.uuid4().hex[:6].upper()}"
    ws = workstations.create(move_lab.root, name, ip, [move_lab.src, move_lab.tgt],
                             move_lab.src)
    try:
        yield ws
    finally:
        workstations.stop(ws)


@pytest.fixture
def workstation(tmp_path: Path) -> Path:
    """A Samba member workstation's smb.conf with its own private and state folders, its
    BUILTIN Administrators and Users mapped (groupmap needs no running daemon)."""
    if shutil.which("net") is None:
        pytest.skip("net is not installed (`make deps` installs Debian's samba)")
    folder = tmp_path / "ws1"
    for sub in ("private", "state", "cache", "lock", "pid", "log"):
        (folder / sub).mkdir(parents=True)
    conf = folder / "smb.conf"
    conf.write_text(f"""[global]
\tnetbios name = WS1
\tworkgroup = SRC
\trealm = SRC.TEST
\tsecurity = ads
\tserver role = member server
\tprivate dir = {folder}/private
\tstate directory = {folder}/state
\tcache directory = {folder}/cache
\tlock directory = {folder}/lock
\tpid directory = {folder}/pid
\tpassdb backend = tdbsam:{folder}/private/passdb.tdb
\tlog file = {folder}/log/net.log
""", encoding="utf-8")
    for sid, name, unix in (("S-1-5-32-544", "Administrators", "root"),
                            ("S-1-5-32-545", "Users", "users")):
        subprocess.run(["net", "-s", str(conf), "groupmap", "add", f"sid={sid}",
                        f"unixgroup={unix}", "type=builtin", f"ntgroup={name}"],
                       check=True, capture_output=True)
    return conf


@pytest.fixture
def own_workstation(own_move_lab: MoveLab) -> Iterator[Workstation]:
    """A fresh lab workstation joined to this module's own SRC."""
    yield from _workstation(own_move_lab)
