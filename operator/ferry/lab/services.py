"""What a lab DC runs besides LDAP, how it starts, and how clients reach it.

Password sync and SID history need more than LDAPS: the KDC (Kerberos), RPC (the endpoint
mapper on 135 and DRSUAPI, SAMR and LSA over TCP), drepl (replication) and smbd with winbindd
(SMB on 445: SAMR over \\pipe\\samr, the only path on which Samba takes a known NT hash).

smbd's libwbclient looks for winbindd only under the compiled-in /run/samba (Samba 4.17 reads
WINBINDD_SOCKET_DIR in its selftest only), so two DCs on one machine would reach each other's
winbindd and SMB logons would fail with NT_STATUS_INTERNAL_ERROR. Each DC therefore runs in
its own mount namespace where <dc>/run is bound on /run/samba; the machine's /run/samba and
every other mount stay as they are, and the namespace ends with the DC's last process.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

# smb.conf `server services`; `dnsupdate` is left out (no DNS backend), so SPNs come from
# the template (offline.py add-spns) instead. `cldap` answers the NetLogon ping (UDP 389) by
# which `net ads` and `net offlinejoin` find a DC: the lab workstations join with them.
SERVER_SERVICES = ("ldap", "cldap", "kdc", "rpc", "drepl", "s3fs", "winbindd")
RUN_SAMBA = Path("/run/samba")
# What must answer before a DC counts as started, besides an LDAPS bind.
PORTS = {"Kerberos": 88, "RPC endpoint mapper": 135, "SMB": 445}
KRB5_CONF = "krb5.conf"
# The longest Unix socket paths Samba makes under a DC's folder (winbindd's privileged pipe,
# the RPC server's named pipes, LDAP's ldapi); a socket path holds at most 107 bytes.
SOCKETS = ("state/winbindd_privileged/pipe", "ncalrpc/np/protected_storage",
           "private/ldap_priv/ldapi")  # fmt: skip
MAX_SOCKET_PATH = 107


def run_folder(folder: Path) -> Path:
    """The DC's own /run/samba (seen from outside its namespace)."""
    return folder / "run"


def winbindd_pipe(folder: Path) -> Path:
    """winbindd's socket, there once winbindd takes requests."""
    return run_folder(folder) / "winbindd" / "pipe"


def in_private_namespace(command: Sequence[str], folder: Path) -> list[str]:
    """`command` run in a new mount namespace whose /run/samba is <folder>/run.

    `unshare` execs the shell and the shell execs `command`, so the pid stays the DC's.
    Empties <folder>/run first: a socket left by an earlier run would look like a ready DC.
    """
    shutil.rmtree(run_folder(folder), ignore_errors=True)
    run_folder(folder).mkdir()
    # The mount point must exist; Debian's samba packages create it (tmpfiles) anyway.
    RUN_SAMBA.mkdir(parents=True, exist_ok=True)
    script = 'mount --bind "$0" "$1" && shift && exec "$@"'
    return [
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", script, str(run_folder(folder)), str(RUN_SAMBA), *command,
    ]  # fmt: skip


def private_namespace(pid: int) -> str | None:
    """The mount namespace of process `pid` ("mnt:[inode]"), unless it is this process's own."""
    try:
        namespace = os.readlink(f"/proc/{pid}/ns/mnt")
        return None if namespace == os.readlink("/proc/self/ns/mnt") else namespace
    except OSError:
        return None


def members(namespace: str | None) -> list[int]:
    """The live processes in a private mount namespace (none for None)."""
    if namespace is None:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "ns" / "mnt") != namespace:
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


def smb_conf_lines() -> str:
    """The smb.conf [global] lines that choose the services and winbindd's socket."""
    return (
        f"\tserver services = {', '.join(SERVER_SERVICES)}\n"
        f"\twinbindd socket directory = {RUN_SAMBA}/winbindd\n"
    )


def not_answering(ip: str, folder: Path) -> list[str]:
    """The services of the DC on `ip` that do not take connections yet."""
    missing = [name for name, port in PORTS.items() if not port_open(ip, port)]
    if not winbindd_pipe(folder).is_socket():
        missing.append("winbindd")
    return missing


def too_long_socket_path(folder: Path) -> str | None:
    """The first socket path under `folder` longer than a Unix socket takes, if any."""
    for socket_path in SOCKETS:
        path = str(folder / socket_path)
        if len(path.encode()) > MAX_SOCKET_PATH:
            return path
    return None


def write_krb5_conf(path: Path, realms: Sequence[tuple[str, str]]) -> None:
    """A krb5.conf naming each (realm, KDC address), for KRB5_CONFIG: no DNS, no system file."""
    lines = [
        "# Written by `ferry lab up`: KRB5_CONFIG=<this file> kinit user@REALM",
        "[libdefaults]",
        f"\tdefault_realm = {realms[0][0]}" if realms else "",
        "\tdns_lookup_realm = false",
        "\tdns_lookup_kdc = false",
        "\trdns = false",
        "\tdns_canonicalize_hostname = false",
        "[realms]",
    ]
    for realm, ip in realms:
        lines += [f"\t{realm} = {{", f"\t\tkdc = {ip}", f"\t\tadmin_server = {ip}", "\t}"]
    lines.append("[domain_realm]")
    for realm, _ in realms:
        lines += [f"\t.{realm.lower()} = {realm}", f"\t{realm.lower()} = {realm}"]
    path.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")


def port_open(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((ip, port)) == 0
