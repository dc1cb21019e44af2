"""A Linux workstation's domain membership: back it up, join another domain with a staged
secret, test it, and put the source's back for a rollback.

The membership is four things: the Kerberos keytab (adcli), smb.conf's workgroup, realm and
`password server`, krb5.conf's default_realm, and Samba's secrets.tdb (the machine password
winbindd and `net ads` use). Before the first change the source's copy goes to
<state dir>/source-backup (0700); it is never overwritten, so running a join again after a
crash part-way still keeps the source's own state for a rollback.

A join with a one-time password is `adcli join --login-type=computer --stdin-password`:
against Samba (4.17) that logs on as the pre-staged account with its password and sets a
new random one. `net ads join` cannot do this (as the computer itself Samba answers
ACCESS_DENIED setting the account flags; it needs an administrator). adcli's own
--add-samba-data fails on a secrets.tdb that holds no domain yet, so the new password reaches
secrets.tdb here: the domain SID (`net setdomainsid`), then the legacy machine password keys
Samba upgrades itself, then `net changesecretpw`, the password always on stdin.

An offline join makes no keytab (Samba would build one over LDAP; offline, it crashes), so
it leaves <state dir>/keytab-pending.json naming the blob's DC; the first start with network
makes the keytab as the machine account (`net ads keytab create`, no admin credentials).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ferry_agent.device.odj import OdjNames, odj_names
from ferry_agent.errors import FerryAgentError

BACKUP = "source-backup"
META = "membership.json"
KEYTAB_PENDING = "keytab-pending.json"
TIMEOUT = 120.0
SEC_CHAN_WKSTA = 2
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
_DNS = re.compile(rf"{_LABEL}(\.{_LABEL})+")
# Seeds Samba's legacy machine-password keys (password on stdin); Samba upgrades them to its
# domain info on the next `net changesecretpw`, as for a member joined by an old release.
_SEED = """
import os, struct, sys, time, tdb
path, domain = sys.argv[1], sys.argv[2].upper()
password = sys.stdin.read()
db = tdb.Tdb(path, 0, tdb.DEFAULT, os.O_RDWR | os.O_CREAT, 0o600)
db.transaction_start()
db[f"SECRETS/MACHINE_PASSWORD/{domain}".encode()] = password.encode() + b"\\0"
db[f"SECRETS/MACHINE_LAST_CHANGE_TIME/{domain}".encode()] = struct.pack("<I", int(time.time()))
db[f"SECRETS/MACHINE_SEC_CHANNEL_TYPE/{domain}".encode()] = struct.pack("<I", SEC_CHAN)
db.transaction_commit()
""".replace("SEC_CHAN", str(SEC_CHAN_WKSTA))


class DomainJoinError(FerryAgentError):
    """A join, test or restore of the machine's domain membership failed; says which step."""


@dataclass(frozen=True)
class Membership:
    """Where this workstation keeps its domain membership."""

    smb_conf: Path
    krb5_conf: Path
    keytab: Path
    state_dir: Path

    @property
    def backup_dir(self) -> Path:
        return self.state_dir / BACKUP

    def private_dir(self) -> Path:
        """smb.conf's `private dir` (where secrets.tdb is)."""
        return Path(smb_parameter(self.smb_conf, "private dir"))

    def secrets(self) -> Path:
        return self.private_dir() / "secrets.tdb"

    def current(self) -> dict[str, str]:
        """The domain this machine is a member of now, as smb.conf says."""
        return {"realm": smb_parameter(self.smb_conf, "realm").upper(),
                "workgroup": smb_parameter(self.smb_conf, "workgroup").upper(),
                "dc": smb_parameter(self.smb_conf, "password server").strip(" *,"),
                "name": smb_parameter(self.smb_conf, "netbios name").upper()}


@dataclass(frozen=True)
class JoinResult:
    domain: str
    workgroup: str
    dn: str
    seconds: float


# -- backup and restore ----------------------------------------------------------------------

def back_up(machine: Membership) -> bool:
    """Copy the source's membership to the backup folder once; False if one is there."""
    target = machine.backup_dir
    if (target / META).is_file():
        return False
    machine.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    work = Path(tempfile.mkdtemp(prefix=".backup-", dir=machine.state_dir))
    try:
        files = {role: path for role, path in _roles(machine).items() if path.is_file()}
        for role, path in files.items():
            shutil.copy2(path, work / role)
        secrets = machine.secrets()
        if secrets.is_file():
            # tdbbackup copies under the TDB's lock: winbindd may be writing it right now.
            _run(["tdbbackup", "-s", ".ferry", str(secrets)], "back up secrets.tdb")
            shutil.move(str(secrets) + ".ferry", work / "secrets.tdb")
        meta = {**machine.current(), "files": {role: str(p) for role, p in files.items()},
                "secrets": str(secrets), "at": time.time()}
        (work / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        os.rename(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return True


def restore(machine: Membership) -> dict[str, str]:
    """Put the backed-up membership back; the source's meta (realm, workgroup, dc)."""
    source = machine.backup_dir
    try:
        meta = json.loads((source / META).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DomainJoinError(f"no backup of the source membership in {source}: this device"
                              " never left its source domain through Ferry") from None
    for stored, original in meta["files"].items():
        _replace_file(source / stored, Path(original))
    if "keytab" not in meta["files"]:
        machine.keytab.unlink(missing_ok=True)   # the source had none: drop the target's
    if (source / "secrets.tdb").is_file():
        _replace_file(source / "secrets.tdb", Path(meta["secrets"]))
    (machine.state_dir / KEYTAB_PENDING).unlink(missing_ok=True)   # the source's keytab is back
    return {k: str(v) for k, v in meta.items() if isinstance(v, str)}


def _roles(machine: Membership) -> dict[str, Path]:
    return {"smb.conf": machine.smb_conf, "krb5.conf": machine.krb5_conf,
            "keytab": machine.keytab}


def _replace_file(source: Path, target: Path) -> None:
    """Copy then rename, so a reader never sees half a file."""
    temporary = target.with_name(f".{target.name}.ferry-restore")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)


# -- joining ---------------------------------------------------------------------------------

def join_with_password(machine: Membership, domain: str, domain_controller: str,
                       computer_name: str, one_time_password: str) -> JoinResult:
    """Leave the current domain (backed up) and join `domain` with the staged password."""
    domain, computer_name = _checked(domain, computer_name)
    if shutil.which("adcli") is None:
        raise DomainJoinError("a join with a one-time password needs adcli (Debian: adcli);"
                              " install it on the device")
    started = time.monotonic()
    back_up(machine)
    machine.keytab.unlink(missing_ok=True)   # the source's keys are in the backup
    (machine.state_dir / KEYTAB_PENDING).unlink(missing_ok=True)   # adcli writes one now
    command = ["adcli", "join", f"--domain={domain}", f"--domain-realm={domain.upper()}",
               f"--host-fqdn={computer_name.lower()}.{domain}",
               f"--computer-name={computer_name}", f"--host-keytab={machine.keytab}",
               "--login-type=computer", "--stdin-password", "--show-details",
               "--show-password"]
    if domain_controller:
        command.append(f"--domain-controller={domain_controller}")
    out = _run(command, "adcli join", stdin=one_time_password, env=_krb5(machine),
               secret_output=True)
    details = _details(out)
    workgroup = details.get("domain-short", "").upper()
    sid = details.get("domain-SID", "")
    password = details.get("computer-password", "")
    if not workgroup or not sid or not password:
        raise DomainJoinError("adcli join succeeded but did not report the domain's short"
                              " name, SID and the new machine password (--show-details)")
    _point_at(machine, domain, workgroup, domain_controller)
    _store_machine_password(machine, workgroup, sid, password)
    test_join(machine, domain, domain_controller)
    return JoinResult(domain, workgroup, details.get("computer-dn", ""),
                      time.monotonic() - started)


def join_offline(machine: Membership, blob: bytes) -> JoinResult:
    """Apply an offline domain join blob with `net offlinejoin requestodj` (no network)."""
    started = time.monotonic()
    names = odj_names(blob)
    current = machine.current()
    if current["name"] and names.machine.upper() != current["name"]:
        raise DomainJoinError(f"the offline join blob is for {names.machine}, but"
                              f" {machine.smb_conf} names this computer {current['name']}")
    back_up(machine)
    machine.keytab.unlink(missing_ok=True)
    dc = names.dc_address or names.dc_name
    # A device that names its DC (password server) names the target's, the blob's; else "*".
    _point_at(machine, names.dns_domain, names.netbios_domain, dc if current["dc"] else "")
    folder = Path(tempfile.mkdtemp(prefix=".odj-", dir=machine.state_dir))   # 0700
    try:
        loadfile = folder / "blob.odj"
        fd = os.open(loadfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(blob)
        # No keytab now: libnet would build one over LDAP (and, offline, crash); Kerberos
        # keys come at the first boot on the network (`net ads keytab create`).
        _run(["net", "offlinejoin", "requestodj", "-s", str(machine.smb_conf),
              "--option=kerberos method=secrets only", f"loadfile={loadfile}"],
             "net offlinejoin requestodj")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    pending = {"realm": names.dns_domain.upper(), "dc": dc}
    _write_atomic(machine.state_dir / KEYTAB_PENDING, json.dumps(pending) + "\n", mode=0o600)
    return JoinResult(names.dns_domain, names.netbios_domain, "", time.monotonic() - started)


def pending_keytab(machine: Membership) -> dict[str, str] | None:
    """What an offline join left for the first start with network: its realm and DC."""
    try:
        found = json.loads((machine.state_dir / KEYTAB_PENDING).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        found = {}
    if not isinstance(found, dict):
        found = {}
    return {"realm": str(found.get("realm") or machine.current()["realm"]),
            "dc": str(found.get("dc") or "")}


def create_keytab(machine: Membership) -> str:
    """Make the keytab an offline join left pending, as the machine account (secrets.tdb),
    test it and clear the mark; a line for the admin, DomainJoinError naming the step."""
    pending = pending_keytab(machine)
    if pending is None:
        return ""
    server = ["-S", pending["dc"]] if pending["dc"] else []
    # The INI's keytab whatever smb.conf's kerberos method says (with "secrets and keytab"
    # Samba writes the system keytab instead).
    _run(["net", "ads", "keytab", "create", "-s", str(machine.smb_conf), *server,
          "--option=kerberos method=dedicated keytab",
          f"--option=dedicated keytab file=FILE:{machine.keytab}"],
         "net ads keytab create", env=_krb5(machine))
    if not machine.keytab.is_file():
        raise DomainJoinError(f"net ads keytab create wrote no {machine.keytab}")
    line = test_join(machine, pending["realm"].lower(), pending["dc"])
    (machine.state_dir / KEYTAB_PENDING).unlink(missing_ok=True)
    return f"keytab {machine.keytab} made as the machine account; {line}"


def test_join(machine: Membership, domain: str, domain_controller: str) -> str:
    """`net ads testjoin` (and `adcli testjoin` where there is a keytab); a line for the
    admin, DomainJoinError naming the one that failed."""
    server = ["-S", domain_controller] if domain_controller else []
    _run(["net", "ads", "testjoin", "-s", str(machine.smb_conf), *server], "net ads testjoin",
         env=_krb5(machine))
    if machine.keytab.is_file() and shutil.which("adcli"):
        dc = [f"--domain-controller={domain_controller}"] if domain_controller else []
        _run(["adcli", "testjoin", f"--domain={domain}", f"--host-keytab={machine.keytab}",
              *dc], "adcli testjoin", env=_krb5(machine))
        return f"net ads testjoin and adcli testjoin against {domain} pass"
    return f"net ads testjoin against {domain} passes"


def _checked(domain: str, computer_name: str) -> tuple[str, str]:
    if not _DNS.fullmatch(domain or ""):
        raise DomainJoinError(f"domain {domain!r} is not a DNS domain name (e.g. tgt.example)")
    if not _NAME.fullmatch(computer_name or ""):
        raise DomainJoinError(f"computerName {computer_name!r} is not a computer name (1-15"
                              " letters, digits or '-')")
    return domain.lower(), computer_name.upper()


def _point_at(machine: Membership, domain: str, workgroup: str, dc: str) -> None:
    """smb.conf's workgroup/realm/password server and krb5.conf's default_realm."""
    settings = {"workgroup": workgroup.upper(), "realm": domain.upper()}
    if dc or machine.current()["dc"]:
        settings["password server"] = dc or "*"
    set_global(machine.smb_conf, settings)
    if machine.krb5_conf.is_file():
        text = machine.krb5_conf.read_text(encoding="utf-8")
        text, count = re.subn(r"(?m)^(\s*default_realm\s*=\s*).*$", rf"\g<1>{domain.upper()}",
                              text)
        if count:
            _write_atomic(machine.krb5_conf, text)


def set_global(conf: Path, settings: Mapping[str, str]) -> None:
    lines = conf.read_text(encoding="utf-8").splitlines()
    section, seen, out = "", set(), list[str]()
    insert_at = None
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            if section == "global" and insert_at is None:
                insert_at = len(out)
            section = stripped.strip("[]").strip().lower()
        elif section == "global" and "=" in stripped and not stripped.startswith(("#", ";")):
            key = " ".join(stripped.split("=", 1)[0].split()).lower()
            if key in settings:
                line = f"\t{key} = {settings[key]}"
                seen.add(key)
        out.append(line)
    if insert_at is None:
        insert_at = len(out)
    missing = [f"\t{key} = {value}" for key, value in settings.items() if key not in seen]
    out[insert_at:insert_at] = missing
    _write_atomic(conf, "\n".join(out) + "\n")


def _write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace `path` by one rename; its mode kept, or `mode` for a new file."""
    temporary = path.with_name(f".{path.name}.ferry")
    temporary.write_text(text, encoding="utf-8")
    if mode is None:
        shutil.copymode(path, temporary)
    else:
        os.chmod(temporary, mode)
    os.replace(temporary, path)


def _store_machine_password(machine: Membership, workgroup: str, sid: str,
                            password: str) -> None:
    from ferry_agent.dc.local_samba import samba_python

    conf = str(machine.smb_conf)
    _run(["net", "-s", conf, "setdomainsid", sid], "net setdomainsid")
    machine.private_dir().mkdir(parents=True, exist_ok=True, mode=0o700)
    _run([samba_python(), "-c", _SEED, str(machine.secrets()), workgroup],
         "seed secrets.tdb", stdin=password)
    _run(["net", "-s", conf, "changesecretpw", "-f", "-i"], "net changesecretpw",
         stdin=password)


def _details(out: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in out.splitlines():
        key, equals, value = line.partition(" = ")
        if equals:
            found[key.strip()] = value.strip()
    return found


def _krb5(machine: Membership) -> dict[str, str]:
    return {"KRB5_CONFIG": str(machine.krb5_conf)} if machine.krb5_conf.is_file() else {}


def smb_parameter(conf: Path, name: str) -> str:
    done = subprocess.run(["testparm", "-s", "--parameter-name", name, str(conf)],
                          capture_output=True, text=True, check=False, timeout=TIMEOUT)
    if done.returncode != 0:
        raise DomainJoinError(f"{conf}: testparm cannot read it ({_tail(done.stderr)}); fix"
                              " the smb.conf")
    return done.stdout.strip()


def _run(command: Sequence[str], step: str, *, stdin: str | None = None,
         env: Mapping[str, str] | None = None, secret_output: bool = False) -> str:
    """Run one step; DomainJoinError naming it. A secret goes on stdin only; with
    `secret_output` stdout holds one and is never part of an error."""
    try:
        done = subprocess.run(list(command), input=stdin if stdin is not None else "",
                              capture_output=True, text=True, check=False, timeout=TIMEOUT,
                              env={**os.environ, **(env or {})})
    except FileNotFoundError:
        raise DomainJoinError(f"{step}: {command[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise DomainJoinError(f"{step} did not finish within {TIMEOUT:.0f} s") from None
    if done.returncode != 0:
        shown = done.stderr if secret_output else done.stdout + "\n" + done.stderr
        raise DomainJoinError(f"{step} failed (exit {done.returncode}): {_tail(shown)}")
    return done.stdout


def _tail(text: str, lines: int = 4) -> str:
    kept = [line.strip() for line in text.splitlines()
            if line.strip() and "password" not in line.lower()
            and not line.startswith(("get_kdc_ip_string", "WARNING: no network"))]
    return " | ".join(kept[-lines:]) or "no message"


__all__ = ["DomainJoinError", "JoinResult", "Membership", "OdjNames", "back_up",
           "create_keytab", "join_offline", "join_with_password", "pending_keytab", "restore",
           "test_join"]
