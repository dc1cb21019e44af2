"""Staging a workstation's computer account for a device move, and disabling the old one.

`stage_computer` creates the account (or reuses and resets it) and answers the machine
secret a device joins with, sealed to the device agent's key: a one-time password (set as
unicodePwd over LDAPS), or a whole offline domain join blob from Samba's `net offlinejoin
provision`. The secret exists in clear only in this process and, for an offline join, in a
0600 file in a private temporary folder that is removed at once. Every refusal (a name that
is no computer name, an object outside write_subtrees, a domain controller or other
protected account) comes before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import ldap3
from ldap3.utils.conv import escape_filter_chars

from ..dn import DNError, parse_dn
from ..sealed import Recipient, device_binding, seal
from ..sid import FIRST_ASSIGNED_RID, SidError, parse_sid, protected_group
from .errors import DirectoryError, result_error
from .password import generate_password
from .subtrees import WriteSubtrees
from .values import sid_from_bytes
from .write import UAC_ACCOUNTDISABLE, UAC_WORKSTATION_TRUST_ACCOUNT, create, ensure_ou

# What the device agent opens a machine secret bound to (the contract of issue 13).
MODES = ("password", "offline")
SAM_MACHINE_ACCOUNT = 0x30000001
UAC_SERVER_TRUST_ACCOUNT = 0x2000          # a domain controller
UAC_INTERDOMAIN_TRUST_ACCOUNT = 0x0800
PASSWORD_LENGTH = 32
NET_TIMEOUT = 120.0
_COMPUTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")
_ATTRIBUTES = ["objectSid", "sAMAccountType", "userAccountControl", "isCriticalSystemObject",
               "adminCount", "tokenGroups"]


class StageError(DirectoryError):
    """A computer account cannot be staged or disabled; nothing was written."""


@dataclass(frozen=True)
class Computer:
    """An existing computer account: where it is and what it is."""

    dn: str
    sid: str
    uac: int


def stage_computer(conn: ldap3.Connection, *, name: str, ou: str, dns_name: str, mode: str,
                   recipients: Sequence[Recipient], subtrees: WriteSubtrees | None,
                   logon: tuple[str, str], host: str,
                   domain_controller: str = "") -> dict[str, object]:
    """Create or reset NAME$ and answer {"dn", "sid", "sealed"}; `logon` (user, password) and
    `host` are the session's, for `net offlinejoin` (mode "offline")."""
    name = _checked_name(name)
    if mode not in MODES:
        raise StageError(name, "stage computer", -1, f"mode {mode!r} is not one of"
                         f" {', '.join(MODES)}")
    if not recipients:
        raise StageError(name, "stage computer", -1, "no recipient key to seal the machine"
                         " secret to (the device agent's certificate key)")
    try:
        domain_part = [r.value for r in parse_dn(ou).rdns if r.attribute.upper() == "DC"]
    except DNError as exc:
        raise StageError(ou, "stage computer", -1, f"ou: {exc}") from None
    found = find_computer(conn, name)
    dn = found.dn if found else f"CN={name},{ou}"
    _refuse(conn, found, dn, "stage computer", subtrees)
    dns_name = dns_name or ".".join(domain_part).lower()
    if mode == "password":
        password = generate_password(PASSWORD_LENGTH, avoid=[name])
        _write_password_account(conn, found, name, dn, ou, dns_name, password, subtrees)
        secret = password.encode("utf-8")
    else:
        if found is None and subtrees is not None:
            ensure_ou(conn, ou, allowed=subtrees.refusal)
        secret = _provision_offline(conn, name, ou, dns_name, logon, host, domain_controller,
                                    reuse=found is not None)
    staged = find_computer(conn, name)
    if staged is None:
        raise StageError(dn, "stage computer", 32, "the account is not there after staging")
    return {"dn": staged.dn, "sid": staged.sid,
            "sealed": seal(secret, recipients, device_binding(name))}


def disable_computer(conn: ldap3.Connection, name: str,
                     subtrees: WriteSubtrees | None) -> dict[str, object]:
    """Set ACCOUNTDISABLE on NAME$; {"dn": "", "disabled": False} when there is none."""
    name = _checked_name(name)
    found = find_computer(conn, name)
    if found is None:
        return {"dn": "", "disabled": False}
    _refuse(conn, found, found.dn, "disable computer", subtrees)
    if not found.uac & UAC_ACCOUNTDISABLE:
        _replace(conn, found.dn, "userAccountControl", str(found.uac | UAC_ACCOUNTDISABLE),
                 "disable computer")
    return {"dn": found.dn, "disabled": True}


def find_computer(conn: ldap3.Connection, name: str) -> Computer | None:
    """The account whose sAMAccountName is NAME$, anywhere in the domain."""
    base = _naming_context(conn)
    sam = escape_filter_chars(f"{name}$")
    conn.search(base, f"(sAMAccountName={sam})", ldap3.SUBTREE,
                attributes=["objectSid", "userAccountControl"])
    if conn.result["result"] != 0:
        raise result_error(conn.result, base, "look up computer")
    for entry in conn.response or ():
        if entry.get("type") != "searchResEntry":
            continue
        raw = entry.get("raw_attributes") or {}
        sid = sid_from_bytes(raw["objectSid"][0]) if raw.get("objectSid") else ""
        uac = int((raw.get("userAccountControl") or [b"0"])[0])
        return Computer(str(entry["dn"]), sid, uac)
    return None


def _checked_name(name: str) -> str:
    if not isinstance(name, str) or not _COMPUTER_NAME.fullmatch(name):
        raise StageError(str(name), "stage computer", -1, "name: not a computer name; give"
                         " the NetBIOS name, 1-15 letters, digits or '-'")
    return name.upper()


def _refuse(conn: ldap3.Connection, found: Computer | None, dn: str, operation: str,
            subtrees: WriteSubtrees | None) -> None:
    """Raise before any write: outside write_subtrees, or a protected account."""
    if subtrees is not None:
        refused = subtrees.refusal(operation, [dn])
        if refused is not None:
            raise StageError(refused.dn, operation, refused.code, refused.message,
                             refused.description)
    if found is None:
        return
    why = _protection(conn, found)
    if why:
        raise StageError(found.dn, operation, 50, f"refused, {why}", "insufficientAccessRights")


def _protection(conn: ldap3.Connection, found: Computer) -> str:
    """Why this account is never staged or disabled, or "" (as passwords.targets for users)."""
    conn.search(found.dn, "(objectClass=*)", ldap3.BASE, attributes=_ATTRIBUTES)
    entries = [e for e in conn.response or () if e.get("type") == "searchResEntry"]
    raw = (entries[0].get("raw_attributes") or {}) if entries else {}
    try:
        sid = parse_sid(found.sid)
    except SidError:
        return "it has no objectSid of a domain account"
    if not sid.is_domain_account or sid.rid < FIRST_ASSIGNED_RID:
        return f"it is a built-in account ({sid}, RID below {FIRST_ASSIGNED_RID})"
    if found.uac & (UAC_SERVER_TRUST_ACCOUNT | UAC_INTERDOMAIN_TRUST_ACCOUNT):
        return "it is a domain controller or trust account, not a workstation"
    if _first(raw, "isCriticalSystemObject").upper() == "TRUE":
        return "it is a critical system object (isCriticalSystemObject)"
    account_type = _first(raw, "sAMAccountType")
    if not account_type.isdigit() or int(account_type) != SAM_MACHINE_ACCOUNT:
        return "it is not a computer account"
    for value in raw.get("tokenGroups") or []:
        group = sid_from_bytes(value)
        protected = protected_group(group)
        if protected:
            return f"it is a member of {protected} ({group}), directly or nested"
    if _first(raw, "adminCount") not in ("", "0"):
        return "its adminCount is set (it is or was in a protected group)"
    return ""


def _write_password_account(conn: ldap3.Connection, found: Computer | None, name: str, dn: str,
                            ou: str, dns_name: str, password: str,
                            subtrees: WriteSubtrees | None) -> None:
    host_name = f"{name.lower()}.{dns_name.lower()}"
    if found is None:
        ensure_ou(conn, ou, allowed=subtrees.refusal if subtrees is not None else None)
        create(conn, "device", dn, {"sAMAccountName": [f"{name}$"],
                                    "dNSHostName": [host_name]},
               password=password, enabled=True)
        return
    # A repeat (or a rollback's re-stage of the kept source account) resets the password
    # and enables the account: the staged secret is the only one the device will hold.
    if not (conn.server.ssl or conn.tls_started):
        raise StageError(dn, "stage computer", -1, "a password can only be set over LDAPS")
    conn.modify(dn, {"unicodePwd": [(ldap3.MODIFY_REPLACE,
                                     [f'"{password}"'.encode("utf-16-le")])]})
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, "reset the password of")
    uac = (found.uac | UAC_WORKSTATION_TRUST_ACCOUNT) & ~UAC_ACCOUNTDISABLE
    if uac != found.uac:
        _replace(conn, dn, "userAccountControl", str(uac), "enable computer")


def _replace(conn: ldap3.Connection, dn: str, attribute: str, value: str,
             operation: str) -> None:
    conn.modify(dn, {attribute: [(ldap3.MODIFY_REPLACE, [value])]})
    if conn.result["result"] != 0:
        raise result_error(conn.result, dn, operation)


def _provision_offline(conn: ldap3.Connection, name: str, ou: str, dns_name: str,
                       logon: tuple[str, str], host: str, domain_controller: str, *,
                       reuse: bool) -> bytes:
    """`net offlinejoin provision` against the DC: the ODJ blob (bytes of the savefile).

    The credentials go in an authentication file (0600) in a private folder, never argv;
    the savefile is written there too, read once and removed with the folder.
    """
    if shutil.which("net") is None:
        raise StageError(name, "stage computer", -1, "an offline join is provisioned with"
                         " Samba's `net offlinejoin`, which is not installed on this agent's"
                         " host; install Samba's client tools (Debian: samba-common-bin)")
    # dcname must be the DC's host name (an address makes Samba's DC lookup fail).
    named = domain_controller and not re.fullmatch(r"[0-9.]+|[0-9a-fA-F:]+", domain_controller)
    dc_host = domain_controller if named else _dc_host_name(conn)
    netbios = _netbios_domain(conn)
    folder = Path(tempfile.mkdtemp(prefix="ferry-odj-"))  # 0700
    try:
        conf = folder / "smb.conf"
        conf.write_text(_provision_conf(folder, netbios, dns_name), encoding="utf-8")
        auth = folder / "auth"
        user, password = logon
        domain = ""
        if "\\" in user:
            domain, user = user.split("\\", 1)
        lines = [f"username = {user}", f"password = {password}"]
        if domain:
            lines.append(f"domain = {domain}")
        _write_private(auth, "\n".join(lines) + "\n")
        savefile = folder / "blob.odj"
        command = ["net", "offlinejoin", "provision", "-s", str(conf), "-A", str(auth),
                   "-S", host, f"domain={dns_name.lower()}", f"machine_name={name}",
                   f"dcname={dc_host}", f"savefile={savefile}"]
        if reuse:
            command.append("reuse")
        else:
            command.append(f"machine_account_ou={ou}")
        env = {k: v for k, v in os.environ.items() if k not in ("USER", "PASSWD", "LOGNAME")}
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  timeout=NET_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise StageError(name, "stage computer (offline)", -1, "net offlinejoin provision"
                             f" did not finish within {NET_TIMEOUT:.0f} s") from None
        if done.returncode != 0 or not savefile.is_file():
            raise StageError(name, "stage computer (offline)", done.returncode,
                             "net offlinejoin provision failed: " + _tail(done))
        return savefile.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        _stop_rpc_helpers(folder)


def _provision_conf(folder: Path, netbios: str, dns_name: str) -> str:
    dirs = {d: folder / d for d in ("private", "state", "cache", "lock", "pid", "ncalrpc")}
    for path in dirs.values():
        path.mkdir(mode=0o700)
    return (
        "[global]\n"
        "\tnetbios name = FERRYSTAGE\n"
        f"\tworkgroup = {netbios}\n"
        f"\trealm = {dns_name.upper()}\n"
        "\tsecurity = ads\n"
        "\tserver role = member server\n"
        f"\tprivate dir = {dirs['private']}\n"
        f"\tstate directory = {dirs['state']}\n"
        f"\tcache directory = {dirs['cache']}\n"
        f"\tlock directory = {dirs['lock']}\n"
        f"\tpid directory = {dirs['pid']}\n"
        f"\tncalrpc dir = {dirs['ncalrpc']}\n"
        f"\tlog file = {folder}/log.%m\n"
        "\tlogging = file\n"
    )


def _stop_rpc_helpers(folder: Path) -> None:
    """net may start samba-dcerpcd (and its rpcd_*) for its own config: end those only."""
    marker = f"--configfile={folder}/smb.conf"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(w.decode(errors="replace") == marker for w in words):
            with contextlib.suppress(OSError):
                os.kill(int(entry.name), signal.SIGTERM)


def _dc_host_name(conn: ldap3.Connection) -> str:
    from .read import root_dse

    names = root_dse(conn)["dnsHostName"]
    if not names:
        raise StageError("rootDSE", "stage computer (offline)", -1, "the DC names no"
                         " dnsHostName; give domainController")
    return names[0]


def _netbios_domain(conn: ldap3.Connection) -> str:
    """The domain's NetBIOS name, from its crossRef in the configuration partition."""
    base = _naming_context(conn)
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["configurationNamingContext"])
    config = ""
    for entry in conn.response or ():
        if entry.get("type") == "searchResEntry":
            values = (entry.get("raw_attributes") or {}).get("configurationNamingContext")
            config = values[0].decode() if values else ""
    conn.search(f"CN=Partitions,{config}", f"(nCName={escape_filter_chars(base)})",
                ldap3.LEVEL, attributes=["nETBIOSName"])
    for entry in conn.response or ():
        if entry.get("type") == "searchResEntry":
            values = (entry.get("raw_attributes") or {}).get("nETBIOSName")
            if values:
                return str(values[0].decode())
    raise StageError(base, "stage computer (offline)", 32, "the domain's NetBIOS name is not"
                     " readable (crossRef nETBIOSName under CN=Partitions)")


def _naming_context(conn: ldap3.Connection) -> str:
    from .read import naming_context

    return naming_context(conn)


def _first(raw: dict[str, list[bytes]], name: str) -> str:
    values = raw.get(name) or []
    return values[0].decode("utf-8", "replace").strip() if values else ""


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


def _tail(done: subprocess.CompletedProcess[str], lines: int = 6) -> str:
    # net prints no secret without `printblob`; password lines are dropped all the same.
    text = (done.stdout or "") + (done.stderr or "")
    kept = [line for line in text.splitlines()
            if line.strip() and "password" not in line.lower()
            and not line.startswith("get_kdc_ip_string")]
    return " | ".join(kept[-lines:]) or f"exit {done.returncode}"
