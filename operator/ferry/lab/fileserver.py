"""A real Samba file server for the lab: smbd (standalone) serving one folder as [data] with
vfs acl_xattr, so each file's Windows ACL lives in its security.NTACL extended attribute as
on a Samba workstation or NAS. `acl_xattr:ignore system acls = yes` keeps NT ACLs verbatim:
source-domain SIDs need not map to Unix ids.

Layout of its folder: smb.conf, share/ (what [data] serves), private/ state/ cache/ lock/
pid/ (lab.pid) ncalrpc/ log/, run/ (its own /run/samba: it runs in a mount namespace of its
own, as the DCs do, see services.py), credentials (0600, for smbcacls -A; never argv).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ferry.lab import services
from ferry.lab.samba import LabError, _ensure_address, _stop
from ferry.lab.services import port_open
from ferry_agent.device.ntacl import XATTR_NAME
from ferry_agent.directory.password import generate_password

SHARE = "data"
USER = "root"
SMB_PORT = 445
PROGRAM = "smbd"
TEMPLATES = ".templates"   # under the share: where seed_tree has smbd write its template ACLs


@dataclass(frozen=True)
class FileServer:
    """A running lab file server; the password is never part of its repr."""

    ip: str
    folder: Path
    password: str = field(repr=False)

    @property
    def smb_conf(self) -> Path:
        return self.folder / "smb.conf"

    @property
    def share(self) -> Path:
        return self.folder / "share"

    @property
    def unc(self) -> str:
        return f"//{self.ip}/{SHARE}"

    @property
    def credentials(self) -> Path:
        return self.folder / "credentials"


def start_file_server(folder: Path, ip: str, timeout: float = 30.0) -> FileServer:
    """smbd on `ip` (a loopback address, e.g. from free_addresses) serving <folder>/share."""
    for tool in ("smbd", "pdbedit", "smbcacls", "unshare"):
        if shutil.which(tool) is None:
            raise LabError(f"{tool} not found; install Debian's samba and smbclient"
                           " (`make deps` does) and run as root")
    folder = folder.resolve()
    for sub in ("share", "private", "state", "cache", "lock", "pid", "ncalrpc", "log"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    _ensure_address(ip)
    if port_open(ip, SMB_PORT):
        raise LabError(f"{ip}:{SMB_PORT} is already in use; pick another address")
    server = FileServer(ip, folder, generate_password(24))
    server.smb_conf.write_text(_smb_conf(server), encoding="utf-8")
    _write_credentials(server)
    added = subprocess.run(["pdbedit", "-s", str(server.smb_conf), "-a", "-u", USER, "-t"],
                           input=f"{server.password}\n{server.password}\n",
                           capture_output=True, text=True, check=False)
    if added.returncode != 0:
        raise LabError(f"pdbedit could not add {USER} to {server.smb_conf}: {added.stderr}")
    command = [PROGRAM, "-s", str(server.smb_conf), "--foreground", "--no-process-group"]
    with open(folder / "log" / "smbd.out", "ab") as out:
        process = subprocess.Popen(services.in_private_namespace(command, folder),
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own group: stopped as one
    (folder / "pid" / "lab.pid").write_text(f"{process.pid}\n", encoding="utf-8")
    deadline = time.monotonic() + timeout
    while not port_open(ip, SMB_PORT):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_file_server(server)
            raise LabError(f"smbd on {ip} did not start within {timeout:.0f}s (exit"
                           f" {process.returncode}); see {folder / 'log'}")
        time.sleep(0.05)
    return server


def stop_file_server(server: FileServer) -> None:
    _stop(server.folder, program=PROGRAM)


@contextlib.contextmanager
def file_server(folder: Path, ip: str) -> Iterator[FileServer]:
    server = start_file_server(folder, ip)
    try:
        yield server
    finally:
        stop_file_server(server)


def smbcacls(server: FileServer, path: str, *args: str) -> str:
    """smbcacls on `path` (relative to the share) over SMB, SIDs numeric; its output."""
    done = subprocess.run(["smbcacls", server.unc, path, "-A", str(server.credentials),
                           "--numeric", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise LabError(f"smbcacls {path} {' '.join(args)}: {done.stdout}{done.stderr}".strip())
    return done.stdout


def template_acls(source_domain: str) -> tuple[str, str]:
    """(folder ACL, file ACL) in smbcacls syntax naming users of `source_domain`: RID 1102
    full control (inheritable on the folder), 1104 change, 1109 read, 1103 denied/read."""
    common = (f"REVISION:1,OWNER:{source_domain}-1102,GROUP:{source_domain}-513,"
              "ACL:S-1-5-18:ALLOWED/0x0/FULL,ACL:S-1-5-32-544:ALLOWED/0x0/FULL")
    folder = (f"{common},ACL:{source_domain}-1102:ALLOWED/OI|CI/FULL,"
              f"ACL:{source_domain}-1104:ALLOWED/OI|CI/CHANGE,"
              f"ACL:{source_domain}-1109:ALLOWED/OI|CI/READ,"
              f"ACL:{source_domain}-1103:DENIED/0x0/0x00010000")
    file = (f"{common},ACL:{source_domain}-1102:ALLOWED/I/FULL,"
            f"ACL:{source_domain}-1104:ALLOWED/I/CHANGE,ACL:{source_domain}-1109:ALLOWED/I/READ,"
            f"ACL:{source_domain}-1103:ALLOWED/0x0/READ")
    return folder, file


def seed_tree(server: FileServer, relative: str, acls: tuple[str, str], folders: int,
              files: int) -> list[Path]:
    """<share>/<relative>/dNNN/fNNN.txt: `folders` x `files`, every folder and file with the
    ACL smbd itself wrote for a template (smbcacls --set over SMB), copied as is. Returns
    every path made, the tree's top first."""
    top = server.share / relative
    templates = server.share / TEMPLATES / relative.replace("/", "_")
    shutil.rmtree(top, ignore_errors=True)
    shutil.rmtree(templates, ignore_errors=True)
    templates.mkdir(parents=True)
    (templates / "f.txt").write_text("template\n", encoding="utf-8")
    name = templates.relative_to(server.share).as_posix()
    smbcacls(server, name, "--set", acls[0])
    smbcacls(server, f"{name}/f.txt", "--set", acls[1])
    folder_acl = os.getxattr(templates, XATTR_NAME)
    file_acl = os.getxattr(templates / "f.txt", XATTR_NAME)
    made = [top]
    top.mkdir(parents=True)
    os.setxattr(top, XATTR_NAME, folder_acl)
    for d in range(folders):
        sub = top / f"d{d:03d}"
        sub.mkdir()
        os.setxattr(sub, XATTR_NAME, folder_acl)
        made.append(sub)
        for f in range(files):
            path = sub / f"f{f:03d}.txt"
            path.write_text("data\n", encoding="utf-8")
            os.setxattr(path, XATTR_NAME, file_acl)
            made.append(path)
    return made


def acl_lines(server: FileServer, paths: Sequence[Path]) -> dict[str, list[str]]:
    """What smbd shows for each path (the user-visible truth): its smbcacls lines."""
    return {str(p): smbcacls(server, p.relative_to(server.share).as_posix()).splitlines()
            for p in paths}


def _write_credentials(server: FileServer) -> None:
    fd = os.open(server.credentials, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(f"username = {USER}\npassword = {server.password}\n")


def _smb_conf(server: FileServer) -> str:
    folder = server.folder
    return f"""# Written by ferry.lab.fileserver; rewritten on every start.
[global]
\tnetbios name = FS1
\tworkgroup = LAB
\tserver role = standalone server
\tsecurity = user
\tinterfaces = {server.ip}
\tbind interfaces only = yes
\tsmb ports = {SMB_PORT}
\tdisable netbios = yes
\tprivate dir = {folder}/private
\tstate directory = {folder}/state
\tcache directory = {folder}/cache
\tlock directory = {folder}/lock
\tpid directory = {folder}/pid
\tncalrpc dir = {folder}/ncalrpc
\tpassdb backend = tdbsam:{folder}/private/passdb.tdb
\tlog file = {folder}/log/smbd.log
\tlog level = 1
\tload printers = no
\tdisable spoolss = yes
\tserver min protocol = SMB2_10
[{SHARE}]
\tpath = {server.share}
\tread only = no
\tvfs objects = acl_xattr
\tacl_xattr:ignore system acls = yes
\tadmin users = {USER}
"""
