"""A real Kubernetes API server for tests: etcd and kube-apiserver on loopback (envtest pattern).

There is no kubelet, controller-manager or scheduler: objects are validated (schemas, CEL,
admission), stored and watched, RBAC is enforced, but nothing acts on them. Jobs get no Pods,
deleted namespaces stay Terminating, owner references are not garbage-collected, and no
`default` ServiceAccount appears in new namespaces.

Binaries: etcd and kube-apiserver from KUBEBUILDER_ASSETS when it holds both, else from
.cache/envtest/bin (built by `make envtest`, i.e. tools/envtest/build.sh); kubectl from those
or PATH; helm from .cache/envtest/bin or PATH.

Layout under the server's root folder:

    pki/           ca.crt + ca.key (signs the serving and all client certificates),
                   server.crt/.key, sa.key/.pub (service-account token signing)
    etcd/          data/, etcd.log
    apiserver/     kube-apiserver.log
    admin.kubeconfig              cluster admin: client certificate in group system:masters
    identities/<name>.kubeconfig  identities minted by identity() and service_account()
    helm/          HELM_CACHE_HOME, HELM_CONFIG_HOME, HELM_DATA_HOME (nothing under ~)
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from tests.support.pki import CertificateAuthority

from ferry.lab.samba import free_addresses

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "envtest" / "build.sh"
CACHE_BIN = REPO_ROOT / ".cache" / "envtest" / "bin"
ASSETS_ENV = "KUBEBUILDER_ASSETS"
# 127.0.0.2-.40 belong to the Samba labs; API servers start looking here.
FIRST_ADDRESS = 60
SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"  # the `kubernetes` Service, first address of SERVICE_CIDR
ADMIN_USER = "ferry-test-admin"
ADMIN_GROUPS = ("system:masters",)
BUILD_TIMEOUT = 3600.0


class KubeAPIError(Exception):
    """The API server could not be built, started or used; the message says why."""


class BinariesUnavailable(KubeAPIError):
    """No binaries here and no way to build them (no Go): tests should skip, not fail."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path
    helm: Path | None  # None only when it can be neither found nor built


@dataclass(frozen=True)
class Identity:
    """Someone the API server knows: a user name, groups and a kubeconfig that signs in as them."""

    user: str
    groups: tuple[str, ...]
    kubeconfig: Path
    cert_file: Path | None = None  # the client certificate and key beside the kubeconfig,
    key_file: Path | None = None  # for clients other than kubeconfig readers; None for tokens


def find_binaries() -> dict[str, Path]:
    """Whatever of etcd, kube-apiserver, kubectl and helm can be found, by name."""
    found: dict[str, Path] = {}
    assets = os.environ.get(ASSETS_ENV, "")
    assets_dir = Path(assets) if assets else None
    if assets_dir and all(_executable(assets_dir / n) for n in ("etcd", "kube-apiserver")):
        found["etcd"] = assets_dir / "etcd"
        found["kube-apiserver"] = assets_dir / "kube-apiserver"
    else:
        for name in ("etcd", "kube-apiserver"):
            if _executable(CACHE_BIN / name):
                found[name] = CACHE_BIN / name
    for name in ("kubectl", "helm"):
        candidates = [CACHE_BIN / name]
        if assets_dir:
            candidates.insert(0, assets_dir / name)
        on_path = shutil.which(name)
        if on_path:
            candidates.append(Path(on_path))
        for candidate in candidates:
            if _executable(candidate):
                found[name] = candidate
                break
    return found


def ensure_binaries(build: bool = True, timeout: float = BUILD_TIMEOUT) -> Binaries:
    """The binaries, brought up to date first by tools/envtest/build.sh when Go is here (it
    returns at once when nothing changed), else whatever can be found.

    Raises BinariesUnavailable when they are missing and cannot be built (no Go), and
    KubeAPIError when a build was tried and failed.
    """
    core = ("etcd", "kube-apiserver", "kubectl")
    if build and shutil.which("go") is not None and BUILD_SCRIPT.exists():
        _run_build(timeout)
    found = find_binaries()
    if not all(n in found for n in core) and shutil.which("go") is None:
        missing = ", ".join(n for n in core if n not in found)
        raise BinariesUnavailable(
            f"{missing} not found (looked in ${ASSETS_ENV}, {CACHE_BIN} and PATH) and Go is not"
            " installed to build them; run `make envtest` on a machine with Go >= 1.24, or set"
            f" {ASSETS_ENV} to a folder holding etcd and kube-apiserver"
        )
    missing = [n for n in core if n not in found]
    if missing:
        raise KubeAPIError(
            f"{', '.join(missing)} still missing after tools/envtest/build.sh; see {CACHE_BIN}"
        )
    return Binaries(found["etcd"], found["kube-apiserver"], found["kubectl"], found.get("helm"))


def _run_build(timeout: float) -> None:
    CACHE_BIN.mkdir(parents=True, exist_ok=True)
    log_path = CACHE_BIN.parent / "build.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(BUILD_SCRIPT)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # go build's children are stopped with it
        )
        try:
            code = process.wait(timeout=timeout)
        finally:
            if process.poll() is None:
                _stop_group(process, 10.0)
    if code != 0:
        raise KubeAPIError(
            f"tools/envtest/build.sh failed with exit code {code}; last lines of {log_path}:\n"
            + _tail(log_path, 40)
        )


class KubeAPI:
    """etcd and kube-apiserver under one root folder, on one loopback address.

    `with KubeAPI(root, ensure_binaries()) as api:` starts both and stops both. Attributes
    once started: `url`, `address`, `port`, `kubeconfig` (the admin's), `ca_file`, `admin`.
    """

    def __init__(
        self,
        root: Path,
        binaries: Binaries,
        *,
        address: str | None = None,
        start_timeout: float = 180.0,  # etcd and kube-apiserver on a busy 2-core machine
        stop_timeout: float = 15.0,
    ) -> None:
        self.root = root
        self.binaries = binaries
        self.address = address or ""
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port = 0
        self.etcd_port = 0
        self.pki = root / "pki"
        self.ca_file = self.pki / "ca.crt"
        self.kubeconfig = root / "admin.kubeconfig"
        self.etcd_log = root / "etcd" / "etcd.log"
        self.apiserver_log = root / "apiserver" / "kube-apiserver.log"
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._ca_key: ec.EllipticCurvePrivateKey | None = None
        self._ca_cert: x509.Certificate | None = None
        self.admin = Identity(ADMIN_USER, ADMIN_GROUPS, self.kubeconfig)  # rewritten by start()

    @property
    def url(self) -> str:
        return f"https://{self.address}:{self.port}"

    def __enter__(self) -> KubeAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> KubeAPI:
        """Start etcd and kube-apiserver and wait until /readyz answers ok."""
        for folder in (self.pki, self.etcd_log.parent, self.apiserver_log.parent):
            folder.mkdir(parents=True, exist_ok=True)
        if not self.address:
            self.address = free_addresses(1, first=FIRST_ADDRESS)[0]
        _ensure_loopback_address(self.address)
        # Free ports are picked by binding port 0; another process may take one before our
        # servers bind it, so a start that fails on a taken address is retried with new ports.
        for attempt in range(3):
            self.etcd_port, peer_port, self.port = _free_ports(self.address, 3)
            shutil.rmtree(self.etcd_log.parent / "data", ignore_errors=True)  # a failed try's
            self._write_pki()
            self.admin = self._write_kubeconfig(self.kubeconfig, ADMIN_USER, ADMIN_GROUPS, None)
            try:
                self._etcd = self._spawn(self._etcd_command(peer_port), self.etcd_log)
                self._apiserver = self._spawn(self._apiserver_command(), self.apiserver_log)
                self._wait_ready()
                return self
            except KubeAPIError as exc:
                self._stop_processes()
                if attempt < 2 and "address already in use" in str(exc):
                    continue
                raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Stop kube-apiserver, then etcd: SIGTERM, then SIGKILL after stop_timeout."""
        self._stop_processes()

    def _stop_processes(self) -> None:
        for process in (self._apiserver, self._etcd):
            if process is not None:
                _stop_group(process, self.stop_timeout)
        self._apiserver = self._etcd = None

    def _spawn(self, command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        # setpriv --pdeathsig: the server ends when the Python process that started it dies,
        # even by SIGKILL, so a killed test session leaves nothing running.
        if shutil.which("setpriv"):
            command = ["setpriv", "--pdeathsig", "TERM", "--", *command]
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=log_path.parent,
                start_new_session=True,
            )

    def _etcd_command(self, peer_port: int) -> list[str]:
        client = f"http://{self.address}:{self.etcd_port}"
        peer = f"http://{self.address}:{peer_port}"
        return [
            str(self.binaries.etcd),
            "--name=default",
            f"--data-dir={self.etcd_log.parent / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=default={peer}",
            "--unsafe-no-fsync",  # throwaway data: no fsync, much faster on small disks
            "--log-level=warn",
        ]

    def _apiserver_command(self) -> list[str]:
        pki = self.pki
        return [
            str(self.binaries.kube_apiserver),
            f"--bind-address={self.address}",
            f"--advertise-address={self.address}",
            f"--secure-port={self.port}",
            f"--etcd-servers=http://{self.address}:{self.etcd_port}",
            f"--cert-dir={self.apiserver_log.parent / 'certs'}",
            f"--tls-cert-file={pki / 'server.crt'}",
            f"--tls-private-key-file={pki / 'server.key'}",
            f"--client-ca-file={self.ca_file}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={self.url}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            # Endpoints may not hold loopback addresses: don't publish one for `kubernetes`.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
        ]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        last = "no answer yet"
        context = self._ssl_context()
        while time.monotonic() < deadline:
            for name, process in (("etcd", self._etcd), ("kube-apiserver", self._apiserver)):
                if process is not None and process.poll() is not None:
                    raise KubeAPIError(
                        f"{name} exited with {process.returncode} while starting\n" + self.logs()
                    )
            try:
                status, body = _get(self.address, self.port, "/readyz", context)
                if status == 200:
                    return
                last = f"/readyz answered {status}: {body[-300:]}"
            except OSError as exc:
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.1)
        raise KubeAPIError(
            f"kube-apiserver at {self.url} not ready within {self.start_timeout:.0f}s ({last})\n"
            + self.logs()
        )

    def logs(self, lines: int = 40) -> str:
        """The last lines of both servers' logs, for error messages."""
        return "\n".join(
            f"--- last lines of {path} ---\n{_tail(path, lines)}"
            for path in (self.etcd_log, self.apiserver_log)
        )

    # -- identities --------------------------------------------------------------------------

    def identity(self, user: str, groups: Sequence[str] = ()) -> Identity:
        """A client certificate for `user` in `groups` (signed by the cluster CA) and its
        kubeconfig. No RBAC comes with it: the user can do what bindings grant, no more."""
        path = self.root / "identities" / f"{_file_name(user)}.kubeconfig"
        return self._write_kubeconfig(path, user, tuple(groups), None)

    def service_account(
        self, namespace: str, name: str, *, create: bool = True, duration: str = "2h"
    ) -> Identity:
        """A kubeconfig signing in as ServiceAccount namespace/name with a token from the
        TokenRequest API, exactly as a Pod would; the ServiceAccount is created if missing."""
        if create:
            made = self.kubectl("create", "serviceaccount", name, namespace=namespace, check=False)
            if made.returncode != 0 and "AlreadyExists" not in made.stderr:
                raise KubeAPIError(
                    f"cannot create ServiceAccount {namespace}/{name}: {made.stderr}"
                )
        token = self.kubectl(
            "create", "token", name, f"--duration={duration}", namespace=namespace
        ).stdout.strip()
        user = f"system:serviceaccount:{namespace}:{name}"
        groups = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
        path = (
            self.root / "identities" / f"sa-{_file_name(namespace)}-{_file_name(name)}.kubeconfig"
        )
        return self._write_kubeconfig(path, user, groups, token)

    # -- clients -----------------------------------------------------------------------------

    def env(self, identity: Identity | None = None) -> dict[str, str]:
        """os.environ plus KUBECONFIG (admin unless identity) and helm's folders."""
        helm = self.root / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str((identity or self.admin).kubeconfig),
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def kubectl(
        self,
        *args: str,
        identity: Identity | None = None,
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as the admin (or identity); raises KubeAPIError on failure if check."""
        command = [
            str(self.binaries.kubectl),
            f"--kubeconfig={(identity or self.admin).kubeconfig}",
        ]
        if namespace:
            command.append(f"--namespace={namespace}")
        return self._run([*command, *args], identity, input, check, timeout)

    def helm(
        self,
        *args: str,
        identity: Identity | None = None,
        namespace: str | None = None,
        input: str | None = None,
        check: bool = True,
        timeout: float = 120.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against this server as the admin (or identity), with its own helm folders."""
        if self.binaries.helm is None:
            raise KubeAPIError("helm is not available: run `make envtest` (needs Go)")
        command = [str(self.binaries.helm), f"--kubeconfig={(identity or self.admin).kubeconfig}"]
        if namespace:
            command.append(f"--namespace={namespace}")
        return self._run([*command, *args], identity, input, check, timeout)

    def _run(
        self,
        command: list[str],
        identity: Identity | None,
        input: str | None,
        check: bool,
        timeout: float,
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            command,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env(identity),
            check=False,
        )
        if check and result.returncode != 0:
            shown = " ".join([Path(command[0]).name, *command[2:]])
            raise KubeAPIError(
                f"`{shown}` failed with exit code {result.returncode}:\n"
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        return result

    def api_client(self, identity: Identity | None = None) -> Any:
        """A `kubernetes.client.ApiClient` for the admin (or identity); needs `kubernetes`."""
        from kubernetes import config  # the operator extra; imported only when asked for

        return config.new_client_from_config(config_file=str((identity or self.admin).kubeconfig))

    def create_namespace(self, hint: str = "test") -> str:
        """A new namespace named after hint plus a random suffix."""
        base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:48].strip("-") or "test"
        name = f"{base}-{uuid.uuid4().hex[:8]}"
        self.kubectl("create", "namespace", name)
        return name

    def delete_namespace(self, name: str) -> None:
        """Ask for the namespace to go; without a namespace controller it stays Terminating,
        which keeps it out of the way of later tests all the same."""
        self.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")

    # -- files -------------------------------------------------------------------------------

    def _write_pki(self) -> None:
        """The CA, the serving certificate for the current address and the SA signing key."""
        if self._ca_key is None or self._ca_cert is None:
            ca = CertificateAuthority.create(f"Ferry test cluster CA {uuid.uuid4().hex[:8]}")
            self._ca_key, self._ca_cert = ca.key, ca.cert
            _write_key(self.pki / "ca.key", self._ca_key)
            _write_cert(self.ca_file, self._ca_cert)
            sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            _write_key(self.pki / "sa.key", sa_key)
            (self.pki / "sa.pub").write_bytes(
                sa_key.public_key().public_bytes(
                    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
        key = ec.generate_private_key(ec.SECP256R1())
        names = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ]
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
        sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in (self.address, SERVICE_IP)]
        cert = self._sign(key, "kube-apiserver", (), sans, ExtendedKeyUsageOID.SERVER_AUTH)
        _write_key(self.pki / "server.key", key)
        _write_cert(self.pki / "server.crt", cert)

    def _sign(
        self,
        key: ec.EllipticCurvePrivateKey,
        common_name: str,
        organizations: Sequence[str],
        sans: list[x509.GeneralName],
        usage: x509.ObjectIdentifier,
    ) -> x509.Certificate:
        assert self._ca_key is not None and self._ca_cert is not None
        now = datetime.now(UTC)
        subject = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(subject))
            .issuer_name(self._ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=7))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                critical=False,
            )
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return builder.sign(self._ca_key, hashes.SHA256())

    def _write_kubeconfig(
        self, path: Path, user: str, groups: tuple[str, ...], token: str | None
    ) -> Identity:
        """A self-contained kubeconfig (certificates inline) for user, by token or else by a
        new client certificate, which is also written beside it (.crt, .key)."""
        credentials: dict[str, str]
        path.parent.mkdir(parents=True, exist_ok=True)
        identity = Identity(user, groups, path)
        if token is None:
            key = ec.generate_private_key(ec.SECP256R1())
            cert = self._sign(key, user, groups, [], ExtendedKeyUsageOID.CLIENT_AUTH)
            identity = Identity(
                user, groups, path, path.with_suffix(".crt"), path.with_suffix(".key")
            )
            assert identity.cert_file is not None and identity.key_file is not None
            _write_cert(identity.cert_file, cert)
            _write_key(identity.key_file, key)
            credentials = {
                "client-certificate-data": _b64(cert.public_bytes(serialization.Encoding.PEM)),
                "client-key-data": _b64(_key_pem(key)),
            }
        else:
            credentials = {"token": token}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "ferry-test",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": _b64(self.ca_file.read_bytes()),
                    },
                }
            ],
            "users": [{"name": user, "user": credentials}],
            "contexts": [
                {"name": "ferry-test", "context": {"cluster": "ferry-test", "user": user}}
            ],
            "current-context": "ferry-test",
            "preferences": {},
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(config, handle, sort_keys=False)
        return identity

    def _ssl_context(self) -> ssl.SSLContext:
        """TLS as the admin: trusts the cluster CA, presents the admin's certificate."""
        assert self.admin.cert_file is not None and self.admin.key_file is not None
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.admin.cert_file), str(self.admin.key_file))
        return context


# -- helpers -----------------------------------------------------------------------------------


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _stop_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to the process's group, SIGKILL if it is still there after timeout."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


def _ensure_loopback_address(ip: str) -> None:
    """Put ip/32 on lo as the Samba lab does; without root, binding works anyway on Linux
    (all of 127.0.0.0/8 is local), so a failure to add is only fatal if binding fails."""
    if not ip.startswith("127."):
        raise KubeAPIError(f"{ip} is not a loopback address; test servers use loopback only")
    if shutil.which("ip"):
        shown = subprocess.run(
            ["ip", "-o", "-4", "addr", "show", "dev", "lo"],
            capture_output=True,
            text=True,
            check=False,
        )
        if f"inet {ip}/" not in shown.stdout:
            subprocess.run(
                ["ip", "addr", "add", f"{ip}/32", "dev", "lo"],
                capture_output=True,
                text=True,
                check=False,
            )
    with socket.socket() as sock:
        try:
            sock.bind((ip, 0))
        except OSError as exc:
            raise KubeAPIError(f"cannot bind to {ip}: {exc}") from exc


def _free_ports(ip: str, count: int) -> list[int]:
    """count distinct ports free on ip right now (all held open together while picking)."""
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind((ip, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _get(ip: str, port: int, path: str, context: ssl.SSLContext) -> tuple[int, str]:
    connection = http.client.HTTPSConnection(ip, port, context=context, timeout=5)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def _key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(_key_pem(key))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80] or "_"
