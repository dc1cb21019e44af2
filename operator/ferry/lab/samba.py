"""The local AD lab: one Samba AD DC per domain, each on its own loopback address.

Layout under the lab root (default `.lab`):

    lab.json                      the domains of this lab
    krb5.conf                     every realm and its KDC, for KRB5_CONFIG (services.py)
    secrets/<netbios>-ad/         password, ca.pem, username: the layout of a Secret volume
    <realm>/                      one DC: etc/smb.conf, private/ (sam.ldb, tls/), state/,
                                  log/samba.log, pid/samba.pid, admin-password (0600),
                                  run/ (its own /run/samba, see services.py),
                                  gnupg/ (0700: the key Samba encrypts new passwords to, gpg.py)

Every DC runs LDAPS, Kerberos, RPC (endpoint mapper, DRSUAPI, SAMR, LSA), replication and SMB
with winbindd, in its own mount namespace (services.py).

Provisioning a domain takes seconds, so a provisioned, never-started copy of each domain is
kept in a cache folder and later labs copy it. Templates also get the two Exchange attributes
migrations rely on (targetAddress, mailNickname), which Samba's base schema lacks, and the
SPNs Kerberos and SMB clients ask for (no DNS backend, so Samba does not add them). Each lab
then gets its own Administrator password (set offline, before Samba starts) and its own TLS
CA and certificate.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ldap3

from ferry.errors import FerryError
from ferry.lab import gpg, services
from ferry.lab.services import port_open
from ferry.lab.tls import write_tls
from ferry_agent.dc.local_samba import samba_python
from ferry_agent.directory.connection import DirectoryEndpoint, connect
from ferry_agent.directory.errors import DirectoryConnectionError
from ferry_agent.directory.password import generate_password
from ferry_agent.processes import group_alive, process_alive

LDAPS_PORT = 636
HOST_NAME = "dc1"
LAB_FILE = "lab.json"
DOMAIN_FILE = "domain.json"
PASSWORD_FILE = "admin-password"
CACHE_ENV = "FERRY_LAB_CACHE"
# Bump when templates change (v2: Exchange attributes in the schema; v3: SPNs).
TEMPLATE_VERSION = 3


class LabError(FerryError):
    """The lab could not be brought up, used or taken down; the message says what to do."""


@dataclass(frozen=True)
class DomainSpec:
    """A domain to run: realm (DNS name, upper case), NetBIOS name and loopback address."""

    realm: str
    netbios: str
    ip: str


DEFAULT_DOMAINS = (
    DomainSpec("SRC.TEST", "SRC", "127.0.0.2"),
    DomainSpec("TGT.TEST", "TGT", "127.0.0.3"),
)


@dataclass(frozen=True)
class LabDomain:
    """A running lab domain and how to reach it. The password is never part of its repr."""

    realm: str
    netbios: str
    ip: str
    folder: Path
    admin_password: str = field(repr=False)
    port: int = LDAPS_PORT

    @property
    def dns_domain(self) -> str:
        return self.realm.lower()

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.dns_domain.split("."))

    @property
    def host_name(self) -> str:
        """The DC's DNS name (also in its certificate, next to its address)."""
        return f"{HOST_NAME}.{self.dns_domain}"

    @property
    def admin_user(self) -> str:
        return f"Administrator@{self.dns_domain}"

    @property
    def admin_dn(self) -> str:
        return f"CN=Administrator,CN=Users,{self.base_dn}"

    @property
    def ca_file(self) -> Path:
        return self.folder / "private" / "tls" / "ca.pem"

    @property
    def password_file(self) -> Path:
        return self.folder / PASSWORD_FILE

    @property
    def smb_conf(self) -> Path:
        return self.folder / "etc" / "smb.conf"

    @property
    def gnupg_home(self) -> Path:
        """GNUPGHOME with the private key of the DC's `password hash gpg key ids` (gpg.py)."""
        return gpg.gnupg_home(self.folder)

    @property
    def secret_name(self) -> str:
        """Name of the Secret (folder under <lab>/secrets) holding this domain's credentials."""
        return f"{self.netbios.lower()}-ad"

    def endpoint(self) -> DirectoryEndpoint:
        return DirectoryEndpoint(
            host=self.ip,
            port=self.port,
            bind_user=self.admin_user,
            password=self.admin_password,
            base_dn=self.base_dn,
            ca_file=str(self.ca_file),
        )

    def connect(self) -> ldap3.Connection:
        """An LDAPS connection bound as Administrator."""
        return connect(self.endpoint())


@dataclass(frozen=True)
class DomainStatus:
    domain: LabDomain
    pid: int | None
    running: bool
    reachable: bool


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ferry" / "lab-templates"


class Lab:
    """Brings lab domains up, reports on them and takes them down."""

    def __init__(
        self,
        cache_dir: Path | None = None,
        *,
        process_model: str = "prefork",
        start_timeout: float = 60.0,
        max_runtime: int | None = None,
        log: Callable[[str], None] | None = None,
    ):
        """`max_runtime` (seconds): Samba ends itself, so labs of killed test runs go away."""
        self.cache_dir = cache_dir or default_cache_dir()
        self.max_runtime = max_runtime
        self.process_model = process_model
        self.start_timeout = start_timeout
        self._log = log or (lambda message: None)

    # ------------------------------------------------------------------ public API
    def up(
        self,
        root: Path,
        domains: Sequence[DomainSpec] = DEFAULT_DOMAINS,
        seeds: Mapping[str, tuple[str, Callable[[], str]]] | None = None,
    ) -> list[LabDomain]:
        """Start every domain (provisioning or copying it first if new); return them running.

        Domains already running in `root` are kept as they are, data included. `seeds` maps a
        realm to (key, LDIF maker): a new domain of that realm starts from a template holding
        that LDIF, added offline and cached under the key (built once, then only copied).
        """
        _require_tools()
        root = root.resolve()
        root.mkdir(parents=True, exist_ok=True)
        _check_distinct(domains)
        _check_socket_paths(root, domains)
        self._write_lab_file(root, domains)
        running = {d.realm: d for d in self._running(root)}
        todo = [spec for spec in domains if spec.realm not in running]
        for spec in todo:
            _ensure_address(spec.ip)
            if port_open(spec.ip, LDAPS_PORT):
                raise LabError(
                    f"{spec.ip}:{LDAPS_PORT} is already in use (another lab?); run"
                    " `ferry lab down` for the lab that uses it, or pick other addresses"
                )
        templates = self._templates(todo)
        for spec in todo:
            if seeds and spec.realm in seeds:
                key, ldif = seeds[spec.realm]
                templates[spec.realm] = self._seeded_template(
                    spec, templates[spec.realm], key, ldif)
        prepared: list[tuple[LabDomain, subprocess.Popen[bytes]]] = []
        try:
            for spec in todo:
                domain = self._prepare(root, spec, templates[spec.realm])
                prepared.append((domain, self._start(domain)))
            for domain, process in prepared:
                self._wait_ready(domain, process)
        except BaseException:
            for domain, _ in prepared:
                _stop(domain.folder)
            raise
        result = [
            running.get(spec.realm) or _load_domain(root / _folder_name(spec)) for spec in domains
        ]
        for domain in result:
            _write_secrets(root, domain)
        services.write_krb5_conf(root / services.KRB5_CONF, [(d.realm, d.ip) for d in result])
        return result

    def down(self, root: Path) -> None:
        """Stop every DC of the lab and remove the lab folder."""
        root = root.resolve()
        if not root.exists():
            return
        if not (root / LAB_FILE).exists() and not any(root.glob(f"*/{DOMAIN_FILE}")):
            raise LabError(
                f"{root} does not look like a Ferry lab (no {LAB_FILE}); not removing it"
            )
        for folder in _domain_folders(root):
            _stop(folder)
            gpg.stop_agent(gpg.gnupg_home(folder))  # one a DC agent's decryption started
        shutil.rmtree(root)

    def status(self, root: Path) -> list[DomainStatus]:
        """Each domain of the lab: its process and whether LDAPS answers."""
        result = []
        for folder in _domain_folders(root.resolve()):
            try:
                domain = _load_domain(folder)
            except LabError:
                continue
            pid = _read_pid(folder)
            running = pid is not None and process_alive(pid)
            result.append(DomainStatus(domain, pid, running, running and _can_bind(domain)))
        return result

    def domains(self, root: Path) -> list[LabDomain]:
        """The domains of an existing lab (running or not), in lab order."""
        return [status.domain for status in self.status(root)]

    # ------------------------------------------------------------------ templates
    def _templates(self, specs: Sequence[DomainSpec]) -> dict[str, Path]:
        """A provisioned template per realm, provisioning missing ones in parallel."""
        found: dict[str, Path] = {}
        errors: list[BaseException] = []

        def work(spec: DomainSpec) -> None:
            try:
                found[spec.realm] = self._template(spec)
            except BaseException as exc:  # reported below, in the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(spec,)) for spec in specs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return found

    def _template(self, spec: DomainSpec) -> Path:
        key = f"{spec.realm}-{spec.netbios}-{HOST_NAME}-samba{_samba_version()}-t{TEMPLATE_VERSION}"
        key = key.lower()
        target = self.cache_dir / key
        if (target / "private" / "sam.ldb").exists():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.cache_dir / f".{key}.lock"):
            if (target / "private" / "sam.ldb").exists():
                return target
            work = self.cache_dir / f".{key}.tmp-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            self._log(f"provisioning {spec.realm} (once; later labs copy it)")
            started = time.monotonic()
            command = [
                "samba-tool",
                "domain",
                "provision",
                f"--targetdir={work}",
                f"--realm={spec.realm}",
                f"--domain={spec.netbios}",
                "--server-role=dc",
                "--dns-backend=NONE",
                f"--host-name={HOST_NAME}",
            ]
            # No --adminpass: a random one is set here and replaced on every `lab up`.
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                shutil.rmtree(work, ignore_errors=True)
                raise LabError(
                    f"provisioning {spec.realm} failed (exit {done.returncode}):\n"
                    + _redacted_tail(done.stdout + done.stderr)
                )
            _offline("extend-schema", work)
            _offline("add-spns", work)
            os.rename(work, target)
            self._log(f"provisioned {spec.realm} in {time.monotonic() - started:.1f}s")
        return target

    def _seeded_template(
        self, spec: DomainSpec, base: Path, key: str, ldif: Callable[[], str]
    ) -> Path:
        """`base` with `ldif` added offline (about 300 objects/s; LDAP adds run at ~35/s)."""
        target = base.with_name(f"{base.name}-seed-{key}".lower())
        if (target / "private" / "sam.ldb").exists():
            return target
        with _locked(self.cache_dir / f".{target.name}.lock"):
            if (target / "private" / "sam.ldb").exists():
                return target
            work = self.cache_dir / f".{target.name}.tmp-{os.getpid()}"
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(base, work, symlinks=True)
            for sub in ("log", "pid", "cache"):  # what smb.conf names, for the offline run
                (work / sub).mkdir(parents=True, exist_ok=True)
            (work / "etc" / "smb.conf").write_text(_smb_conf(spec, work, ""), encoding="utf-8")
            self._log(f"seeding {target.name} offline (once; later labs copy it)")
            started = time.monotonic()
            try:
                _offline("add-ldif", work, ldif())
            except BaseException:
                shutil.rmtree(work, ignore_errors=True)
                raise
            os.rename(work, target)
            self._log(f"seeded {target.name} in {time.monotonic() - started:.1f}s")
        return target

    # ------------------------------------------------------------------ one domain
    def _prepare(self, root: Path, spec: DomainSpec, template: Path) -> LabDomain:
        folder = root / _folder_name(spec)
        fresh = not (folder / "private" / "sam.ldb").exists()
        if fresh:
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(template, folder, symlinks=True)
        for sub in ("etc", "log", "pid", "cache", "private/tls"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf = folder / "etc" / "smb.conf"
        key = gpg.ensure_key(folder)
        if fresh or not (folder / PASSWORD_FILE).exists():
            # Set while smb.conf names no key yet: storing it GPG-encrypted would cost a gpg
            # run (0.2 s a DC), and Administrator's is no password the lab syncs.
            conf.write_text(_smb_conf(spec, folder, ""), encoding="utf-8")
            password = generate_password(24)
            _set_admin_password(folder, password)
            _write_private(folder / PASSWORD_FILE, password)
        conf.write_text(_smb_conf(spec, folder, key), encoding="utf-8")
        if fresh or not (folder / "private" / "tls" / "cert.pem").exists():
            dns = spec.realm.lower()
            write_tls(
                folder / "private" / "tls",
                f"{HOST_NAME}.{dns}",
                [f"{HOST_NAME}.{dns}", dns],
                [spec.ip],
            )
        info = {"realm": spec.realm, "netbios": spec.netbios, "ip": spec.ip}
        (folder / DOMAIN_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        return _load_domain(folder)

    def _start(self, domain: LabDomain) -> subprocess.Popen[bytes]:
        conf = domain.folder / "etc" / "smb.conf"
        command = ["samba", "--foreground", "--no-process-group", "-M", self.process_model]
        if self.max_runtime:
            command.append(f"--maximum-runtime={self.max_runtime}")
        with open(domain.folder / "log" / "samba.out", "ab") as out:
            process = subprocess.Popen(
                services.in_private_namespace([*command, "-s", str(conf)], domain.folder),
                env={**os.environ, "GNUPGHOME": str(domain.gnupg_home)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as one, outlives us
            )
        (domain.folder / "pid").mkdir(exist_ok=True)
        (domain.folder / "pid" / "lab.pid").write_text(f"{process.pid}\n", encoding="utf-8")
        self._log(f"started {domain.realm} on {domain.ip} (pid {process.pid})")
        return process

    def _wait_ready(self, domain: LabDomain, process: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LabError(
                    f"samba for {domain.realm} exited with {process.returncode} while starting;"
                    f" see {domain.folder / 'log'}:\n" + _log_tail(domain.folder)
                )
            missing = services.not_answering(domain.ip, domain.folder)
            if missing:
                last = f"no answer from {', '.join(missing)}"
            elif port_open(domain.ip, domain.port):
                try:
                    domain.connect().unbind()
                    return
                except DirectoryConnectionError as exc:
                    last = f"LDAPS: {exc.reason}"
            time.sleep(0.05)
        raise LabError(
            f"{domain.realm} did not start within {self.start_timeout:.0f}s ({last});"
            f" see {domain.folder / 'log'}"
        )

    def _running(self, root: Path) -> list[LabDomain]:
        return [s.domain for s in self.status(root) if s.running and s.reachable]

    @staticmethod
    def _write_lab_file(root: Path, domains: Sequence[DomainSpec]) -> None:
        data = {
            "domains": [
                {"realm": d.realm, "netbios": d.netbios, "ip": d.ip, "folder": _folder_name(d)}
                for d in domains
            ]
        }
        (root / LAB_FILE).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------------- helpers
def _folder_name(spec: DomainSpec) -> str:
    return spec.realm.lower()


def _check_distinct(domains: Sequence[DomainSpec]) -> None:
    for attr in ("realm", "netbios", "ip"):
        values = [getattr(d, attr).lower() for d in domains]
        if len(set(values)) != len(values):
            raise LabError(f"two lab domains share a {attr}: {values}")
    for d in domains:
        if not d.ip.startswith("127."):
            raise LabError(f"{d.realm}: lab domains use loopback addresses only, not {d.ip}")


def _check_socket_paths(root: Path, domains: Sequence[DomainSpec]) -> None:
    for spec in domains:
        path = services.too_long_socket_path(root / _folder_name(spec))
        if path:
            raise LabError(
                f"lab folder {root} is too deep: Samba's socket {path} would be longer than"
                f" {services.MAX_SOCKET_PATH} bytes; pick a shorter --dir (FERRY_LAB_DIR)"
            )


def _require_tools() -> None:
    tools = ("samba", "samba-tool", "winbindd", "ip", "unshare")
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise LabError(
            f"{', '.join(missing)} not found; install Debian's samba (AD DC), winbind, iproute2"
            " and util-linux (`make deps` does) and run as root"
        )


_version_cache: list[str] = []


def _samba_version() -> str:
    if not _version_cache:
        out = subprocess.run(["samba", "-V"], capture_output=True, text=True, check=False)
        _version_cache.append(out.stdout.strip().removeprefix("Version ").replace(" ", "_"))
    return _version_cache[0]


def _smb_conf(spec: DomainSpec, folder: Path, gpg_key: str) -> str:
    tls = folder / "private" / "tls"
    gpg_line = f"\t{gpg.SMB_CONF_OPTION} = {gpg_key}\n" if gpg_key else ""
    return f"""# Written by `ferry lab up`; rewritten on every start.
[global]
\tnetbios name = {HOST_NAME.upper()}
\trealm = {spec.realm}
\tworkgroup = {spec.netbios}
\tserver role = active directory domain controller
\tinterfaces = {spec.ip}
\tbind interfaces only = yes
\tprivate dir = {folder}/private
\tstate directory = {folder}/state
\tlock directory = {folder}
\tcache directory = {folder}/cache
\tpid directory = {folder}/pid
\tbinddns dir = {folder}/bind-dns
\tncalrpc dir = {folder}/ncalrpc
{services.smb_conf_lines()}\tntp signd socket directory = {folder}/ntp_signd
\tlog file = {folder}/log/samba.log
\tlogging = file
\tlog level = 1
\tmax log size = 10000
\ttls enabled = yes
\ttls keyfile = {tls}/key.pem
\ttls certfile = {tls}/cert.pem
\ttls cafile = {tls}/ca.pem
{gpg_line}"""


def _offline(command: str, folder: Path, stdin: str = "") -> None:
    """Run offline.py with Samba's Python against the (stopped) DC in `folder`."""
    script = Path(__file__).with_name("offline.py")
    done = subprocess.run(
        [samba_python(), "-I", str(script), command, str(folder / "etc" / "smb.conf")],
        env={**os.environ, "GNUPGHOME": str(gpg.gnupg_home(folder))},  # a password set encrypts
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"{command} on {folder} failed:\n" + _redacted_tail(done.stderr))


def _set_admin_password(folder: Path, password: str) -> None:
    """Set Administrator's password in the database directly (Samba is not running yet).

    The password travels on stdin, never on a command line.
    """
    _offline("set-admin-password", folder, password + "\n")


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _write_secrets(root: Path, domain: LabDomain) -> None:
    """<lab>/secrets/<netbios>-ad/{username,password,ca.pem}: what a Secret volume holds."""
    folder = root / "secrets" / domain.secret_name
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(root / "secrets", 0o700)
    _write_private(folder / "password", domain.admin_password)
    _write_private(folder / "username", domain.admin_user)
    _write_private(folder / "ca.pem", domain.ca_file.read_text(encoding="utf-8"))


def _load_domain(folder: Path) -> LabDomain:
    try:
        info = json.loads((folder / DOMAIN_FILE).read_text(encoding="utf-8"))
        password = (folder / PASSWORD_FILE).read_text(encoding="utf-8")
    except (OSError, ValueError) as exc:
        raise LabError(f"{folder} is not a complete lab domain: {exc}") from None
    return LabDomain(info["realm"], info["netbios"], info["ip"], folder, password)


def _domain_folders(root: Path) -> list[Path]:
    try:
        listed = json.loads((root / LAB_FILE).read_text(encoding="utf-8"))["domains"]
        folders = [root / entry["folder"] for entry in listed]
    except (OSError, ValueError, KeyError):
        folders = []
    extra = sorted(p.parent for p in root.glob(f"*/{DOMAIN_FILE}") if p.parent not in folders)
    return [f for f in folders + extra if (f / DOMAIN_FILE).exists()]


def _read_pid(folder: Path) -> int | None:
    for name in ("samba.pid", "lab.pid"):
        with contextlib.suppress(OSError, ValueError):
            return int((folder / "pid" / name).read_text().strip())
    return None


def _stop(folder: Path, timeout: float = 15.0, program: str = "samba") -> None:
    """SIGTERM the DC (or the lab's other Samba server, `program`, e.g. smbd), then SIGKILL
    what is left after `timeout`.

    The DC is its process group and everything in its mount namespace: smbd and winbindd
    start sessions of their own, and end by themselves only once samba is gone.
    """
    pid = _read_pid(folder)
    if pid is None or not process_alive(pid) or not _is_samba(pid, folder, program):
        return
    namespace = services.private_namespace(pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)

    def left() -> bool:
        return process_alive(pid) or group_alive(pid) or bool(services.members(namespace))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not left():
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for member in services.members(namespace):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and left():
        time.sleep(0.05)


def _is_samba(pid: int, folder: Path, program: str = "samba") -> bool:
    """Guard against a recycled pid: the process must be `program` with files open in
    `folder`.

    (Samba rewrites its command line to "samba: root process", so that cannot tell.)
    """
    proc = Path(f"/proc/{pid}")
    try:
        if not os.readlink(proc / "exe").endswith(f"/{program}"):
            return False
        targets = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
    except OSError:
        return False
    prefix = str(folder.resolve()) + os.sep
    return any(target.startswith(prefix) for target in targets)


def _ensure_address(ip: str) -> None:
    """Add ip/32 to lo unless it is there (127.0.0.1/8 covers it only for sending)."""
    shown = subprocess.run(
        ["ip", "-o", "-4", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=False
    )
    if f"inet {ip}/" in shown.stdout:
        return
    added = subprocess.run(
        ["ip", "addr", "add", f"{ip}/32", "dev", "lo"], capture_output=True, text=True, check=False
    )
    if added.returncode != 0 and "File exists" not in added.stderr:
        raise LabError(f"cannot add {ip} to lo: {added.stderr.strip()} (the lab needs root)")


# Addresses handed out by free_addresses, held (flock) until this process ends: two test
# sessions choosing at the same moment would otherwise both see one address free.
_RESERVED: list[object] = []


def free_addresses(count: int, first: int = 2) -> list[str]:
    """Loopback addresses with nothing on LDAPS that no other caller holds, reserved for
    this process, so a lab can start beside other labs."""
    folder = Path(tempfile.gettempdir()) / "ferry-lab-addresses"
    folder.mkdir(parents=True, exist_ok=True)
    chosen: list[str] = []
    for ip in (f"127.0.0.{n}" for n in range(first, 255)):
        if len(chosen) == count:
            break
        handle = open(folder / f"{ip}.lock", "a+")  # noqa: SIM115 (held while we run)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        if port_open(ip, LDAPS_PORT):
            handle.close()
            continue
        _RESERVED.append(handle)
        chosen.append(ip)
    if len(chosen) < count:
        raise LabError(f"fewer than {count} free loopback addresses for a lab")
    return chosen


def _can_bind(domain: LabDomain) -> bool:
    try:
        domain.connect().unbind()
        return True
    except DirectoryConnectionError:
        return False


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _redacted_tail(text: str, lines: int = 30) -> str:
    kept = [line for line in text.splitlines() if "password" not in line.lower()]
    return "\n".join(kept[-lines:])


def _log_tail(folder: Path, lines: int = 30) -> str:
    chunks = []
    for name in ("samba.out", "samba.log"):
        with contextlib.suppress(OSError):
            chunks.append((folder / "log" / name).read_text(errors="replace"))
    return _redacted_tail("\n".join(chunks), lines)
