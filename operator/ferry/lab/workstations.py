"""Lab "workstations": Linux domain members as separate Samba configurations on this machine.

    <root>/<name>/   smb.conf, krb5.conf (every lab realm, KDC by address: no DNS),
                     krb5.keytab, private/ (secrets.tdb), state/, cache/, lock/, pid/, log/,
                     run/ (winbindd's own /run/samba), device/ (the device agent's 0700
                     state dir), device.ini (what `ferry-agent device run` would read),
                     restart-winbindd (its restart_command: winbindd follows a join)

Each has its own loopback address (the lab's allocator) and names its DC by address
(`password server`), so neither DNS nor /etc/hosts is needed. winbindd, when a test needs
cached logons, runs in a mount namespace of its own whose /run/samba is <ws>/run (libwbclient
only looks there, as for the lab DCs, services.py). `stop` ends every process the
workstation started, samba-dcerpcd and rpcd_* that `net` spawned on demand included.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry.lab.samba import LabDomain, LabError, _ensure_address
from ferry.lab.services import RUN_SAMBA, members, private_namespace
from ferry_agent.device.linux import LinuxBackend
from ferry_agent.device.linux_settings import LinuxSettings
from ferry_agent.processes import process_alive

_DIRS = ("private", "state", "cache", "lock", "pid", "log", "ncalrpc", "run")
WINBIND_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Workstation:
    name: str
    ip: str
    folder: Path

    @property
    def smb_conf(self) -> Path:
        return self.folder / "smb.conf"

    @property
    def krb5_conf(self) -> Path:
        return self.folder / "krb5.conf"

    @property
    def keytab(self) -> Path:
        return self.folder / "krb5.keytab"

    @property
    def state_dir(self) -> Path:
        return self.folder / "device"

    @property
    def winbind_pid_file(self) -> Path:
        return self.folder / "pid" / "lab-winbindd.pid"

    @property
    def ini(self) -> Path:
        return self.folder / "device.ini"

    def backend(self, reboot_command: Sequence[str] = ("true",),
                notice_command: Sequence[str] = ()) -> LinuxBackend:
        """The device agent's Linux backend for this workstation: the [linux] settings
        write_ini writes (a lab reboot command), its state in state_dir."""
        settings = LinuxSettings(smb_conf=self.smb_conf, krb5_conf=self.krb5_conf,
                                 keytab=self.keytab, join_tool="adcli",
                                 reboot_command=tuple(reboot_command),
                                 notice_command=tuple(notice_command),
                                 winbind_pid_file=self.winbind_pid_file,
                                 restart_command=(str(restart_script(self)),))
        return LinuxBackend(settings, self.state_dir)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KRB5_CONFIG": str(self.krb5_conf)}

    def wb(self, *words: str) -> list[str]:
        """A command run in winbindd's namespace (where its socket is)."""
        pid = _read_pid(self.winbind_pid_file)
        if pid is None:
            raise LabError(f"{self.name}: winbindd is not running; call start_winbindd")
        return ["nsenter", "-m", "-t", str(pid), *words]


def create(root: Path, name: str, ip: str, domains: Sequence[LabDomain],
           member_of: LabDomain) -> Workstation:
    """A fresh workstation joined to `member_of` with the lab's admin credentials (lab only:
    a real device gets a one-time password staged by the directory agent)."""
    folder = root / name.lower()
    shutil.rmtree(folder, ignore_errors=True)
    for sub in _DIRS:
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "device").mkdir(mode=0o700)
    ws = Workstation(name.upper(), ip, folder)
    _ensure_address(ip)
    ws.smb_conf.write_text(_smb_conf(ws, member_of), encoding="utf-8")
    ws.krb5_conf.write_text(_krb5_conf(member_of, domains), encoding="utf-8")
    # Staged as Ferry stages one (directory side, the lab's admin endpoint), then joined with
    # the device side's own code: `net ads join` would need DNS to find the DC's name.
    from ferry_agent.device.domain import join_with_password
    from ferry_agent.directory.session import DirectorySession
    from ferry_agent.sealed import Recipient, device_binding, ephemeral_key, key_id, open_sealed

    key = ephemeral_key()
    pem = Recipient(key_id(key.public_key()), key.public_key()).pem()
    session = DirectorySession(member_of.endpoint())
    try:
        staged = session.stage_computer(ws.name, f"CN=Computers,{member_of.base_dn}",
                                        member_of.dns_domain, "password", pem)
    finally:
        session.close()
    sealed = staged["sealed"]
    assert isinstance(sealed, dict)
    password = open_sealed(sealed, key, device_binding(ws.name)).decode("utf-8")
    join_with_password(ws.backend().membership, member_of.dns_domain, member_of.ip,
                       ws.name, password)
    # The lab's starting point is a plain member: no backup of a "source" before it.
    shutil.rmtree(ws.state_dir / "source-backup", ignore_errors=True)
    write_ini(ws)
    return ws


def write_ini(ws: Workstation, reboot_command: str = "true", labels: str = "lab=yes",
              linux: Mapping[str, str] | None = None) -> None:
    """The device agent's INI for this workstation ([device] and [linux] of the contract);
    `linux`: more [linux] settings (file_roots, software_hive, notice_command, ...)."""
    more = "".join(f"{key} = {value}\n" for key, value in (linux or {}).items())
    ws.ini.write_text(
        "[device]\n"
        f"name = {ws.name}\n"
        f"labels = {labels}\n"
        "backend = linux\n"
        "[linux]\n"
        f"smb_conf = {ws.smb_conf}\n"
        f"krb5_conf = {ws.krb5_conf}\n"
        f"keytab = {ws.keytab}\n"
        "join_tool = adcli\n"
        f"reboot_command = {reboot_command}\n"
        f"winbind_pid_file = {ws.winbind_pid_file}\n"
        f"restart_command = {restart_script(ws)}\n" + more,
        encoding="utf-8")


def restart_script(ws: Workstation) -> Path:
    """<ws>/restart-winbindd: `restart_winbindd` as a command, what the device INI's
    restart_command runs (on a real workstation: systemctl try-restart winbind)."""
    script = ws.folder / "restart-winbindd"
    code = ("import sys; from pathlib import Path;"
            " from ferry.lab.workstations import Workstation, restart_winbindd;"
            " restart_winbindd(Workstation(sys.argv[1], sys.argv[2], Path(sys.argv[3])))")
    script.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -c"
                      f" {shlex.quote(code)} {ws.name} {ws.ip} {shlex.quote(str(ws.folder))}\n",
                      encoding="utf-8")
    script.chmod(0o755)
    return script


def run(ws: Workstation, command: Sequence[str], step: str,
        stdin: str = "") -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(command), input=stdin, capture_output=True, text=True,
                          check=False, env=ws.env(), timeout=120)
    if done.returncode != 0:
        tail = [line for line in (done.stdout + done.stderr).splitlines()
                if "password" not in line.lower()][-5:]
        raise LabError(f"{ws.name}: {step} failed (exit {done.returncode}): {' | '.join(tail)}")
    return done


def start_winbindd(ws: Workstation, timeout: float = WINBIND_START_TIMEOUT, *,
                   online: bool = True) -> int:
    """winbindd for this workstation in its own mount namespace; its pid once it answers
    (`online`: once it reached a DC, `wbinfo -P`; else once it answers at all, `wbinfo -p`)."""
    pid = _read_pid(ws.winbind_pid_file)
    if pid is not None:
        return pid
    run_dir = ws.folder / "run"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir()
    RUN_SAMBA.mkdir(parents=True, exist_ok=True)
    script = 'mount --bind "$0" "$1" && shift && exec "$@"'
    with open(ws.folder / "log" / "winbindd.out", "ab") as out:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
             str(run_dir), str(RUN_SAMBA), "winbindd", "-s", str(ws.smb_conf), "--foreground",
             "--no-process-group"],
            env=ws.env(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    ws.winbind_pid_file.write_text(f"{process.pid}\n", encoding="ascii")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            ws.winbind_pid_file.unlink(missing_ok=True)
            raise LabError(f"{ws.name}: winbindd exited with {process.returncode}; see"
                           f" {ws.folder / 'log'}")
        ping = subprocess.run(ws.wb("wbinfo", "-P" if online else "-p"), capture_output=True,
                              check=False, timeout=30)
        if ping.returncode == 0:
            return process.pid
        time.sleep(0.2)
    raise LabError(f"{ws.name}: winbindd did not answer within {timeout:.0f} s")


def restart_winbindd(ws: Workstation) -> None:
    """winbindd, if it runs, stopped and started again: it reads its domain only at start,
    so a workstation that joined another domain restarts it."""
    if _read_pid(ws.winbind_pid_file) is None:
        return
    stop_winbindd(ws)
    # A device may restart it with no network (an offline join): answering is enough, it
    # reaches a DC when it needs one.
    start_winbindd(ws, online=False)


def stop_winbindd(ws: Workstation, timeout: float = 15.0) -> None:
    pid = _read_pid(ws.winbind_pid_file)
    if pid is None:
        ws.winbind_pid_file.unlink(missing_ok=True)
        return
    namespace = private_namespace(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process_alive(pid):
        time.sleep(0.05)
    # What is left serves no one now: samba-dcerpcd and its rpcd_* (a process group of their
    # own, started by winbindd on demand) would linger until their idle timeout.
    for member in members(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    ws.winbind_pid_file.unlink(missing_ok=True)


def stop(ws: Workstation) -> None:
    """End winbindd and every samba-dcerpcd/rpcd_* started for this workstation's config."""
    stop_winbindd(ws)
    marker = f"--configfile={ws.smb_conf}"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = [w.decode(errors="replace")
                     for w in (entry / "cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if marker in words:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGTERM)


def _smb_conf(ws: Workstation, domain: LabDomain) -> str:
    f = ws.folder
    return f"""# Written by ferry.lab.workstations: lab workstation {ws.name}
[global]
\tnetbios name = {ws.name}
\tworkgroup = {domain.netbios}
\trealm = {domain.realm}
\tpassword server = {domain.ip}
\tsecurity = ads
\tserver role = member server
\tinterfaces = {ws.ip}
\tbind interfaces only = yes
\tprivate dir = {f}/private
\tstate directory = {f}/state
\tcache directory = {f}/cache
\tlock directory = {f}/lock
\tpid directory = {f}/pid
\tncalrpc dir = {f}/ncalrpc
\twinbindd socket directory = {RUN_SAMBA}/winbindd
\tlog file = {f}/log/%m.log
\tlogging = file
\tkerberos method = secrets and keytab
\tdedicated keytab file = {ws.keytab}
\twinbind offline logon = yes
\twinbind use default domain = yes
\tidmap config * : backend = tdb
\tidmap config * : range = 10000-199999
\tidmap config SRC : backend = rid
\tidmap config SRC : range = 200000-299999
\tidmap config TGT : backend = rid
\tidmap config TGT : range = 300000-399999
"""


def _krb5_conf(default: LabDomain, domains: Sequence[LabDomain]) -> str:
    lines = ["[libdefaults]", f"\tdefault_realm = {default.realm}",
             "\tdns_lookup_realm = false", "\tdns_lookup_kdc = false", "\trdns = false",
             "\tdns_canonicalize_hostname = false", "[realms]"]
    for d in domains:
        lines += [f"\t{d.realm} = {{", f"\t\tkdc = {d.ip}", f"\t\tadmin_server = {d.ip}", "\t}"]
    lines.append("[domain_realm]")
    for d in domains:
        lines += [f"\t.{d.dns_domain} = {d.realm}", f"\t{d.dns_domain} = {d.realm}"]
    return "\n".join(lines) + "\n"


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None
    return pid if process_alive(pid) else None


def hosts_file(root: Path, domains: Sequence[LabDomain]) -> Path:
    """An /etc/hosts naming each lab DC, for `with_lab_names` (the real one is untouched)."""
    path = root / "hosts.lab"
    lines = ["127.0.0.1 localhost"]
    lines += [f"{d.ip} {d.host_name} {d.dns_domain}" for d in domains]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def with_lab_names(command: Sequence[str], hosts: Path) -> list[str]:
    """`command` in a mount namespace whose /etc/hosts is `hosts`: what a directory agent
    on a host whose DNS knows the DCs sees (`net offlinejoin` looks the DC up by name)."""
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script,
            str(hosts), *command]
