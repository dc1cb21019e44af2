"""A real `ferry gateway` process over real TLS on loopback, and clients for it: real
`ferry-agent` processes, fake agents (ferry_agent.identity + GatewayClient), sync Jobs (job
credentials signed with the gateway's job signing key, bound to the environments they submit
to), raw HTTP for bad requests.

The agent CA is made first in the gateway's --ca-dir (the gateway then loads it) and also
issues the server certificate, so the CA bundle enrollment hands out verifies the gateway.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ferry.gateway.ca import AgentCA
from ferry.gateway.job_auth import ROLE_JOB, load_signing_key, mint, write_signing_key
from ferry.lab.samba import LabDomain
from ferry_agent import identity
from ferry_agent.certificates import new_key, write_atomically
from ferry_agent.identity import Identity
from ferry_agent.protocol import (
    EnrollRequest,
    EnrollResponse,
    ErrorInfo,
    WorkItem,
    WorkResult,
    decode,
    encode,
)
from ferry_agent.transport import GatewayClient

# Generous on purpose: the machine has 2 cores and is often at load 6-10, where importing
# ferry and aiohttp, a TLS handshake or a reply can stall for many seconds. A deadline here
# only bounds how long a broken gateway takes to be reported; it never decides a test.
START_SECONDS = 120.0    # a gateway process starting and answering TLS handshakes
ATTEMPT_SECONDS = 15.0   # one handshake while waiting for that (the gateway allows 10 s)
STOP_SECONDS = 30.0      # SIGTERM to exit (it takes about 3 s); then SIGKILL
KILL_SECONDS = 60.0      # SIGKILL to the process being reaped
CLI_SECONDS = 180.0      # one `ferry` CLI command, a fresh Python process
REQUEST_SECONDS = 120.0  # one request of a test client, beyond any long-poll wait


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def issue_server_cert(ca: AgentCA, address: str, folder: Path) -> tuple[Path, Path]:
    """A server certificate for the IP `address` from the agent CA; (cert file, key file)."""
    key, key_pem = new_key()
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address(address))]), critical=False)
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    cert_file, key_file = folder / "server.crt", folder / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_atomically(key_file, key_pem)
    return cert_file, key_file


@dataclass
class RunningGateway:
    """One `ferry gateway` subprocess and what a test needs to talk to it."""

    host: str
    port: int
    folder: Path
    state: str
    ca_file: Path          # verifies the gateway (the agent CA)
    signing_key: Path      # the job signing key; the gateway has its public half
    command: list[str]
    process: subprocess.Popen[bytes]
    log_file: Path
    clients: list[GatewayClient] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`ferry ARGS --state <this gateway's state>`."""
        return subprocess.run([sys.executable, "-m", "ferry", *args, "--state", self.state],
                              capture_output=True, text=True, timeout=CLI_SECONDS, check=False)

    def token(self, environment: str, ttl: str = "1h") -> str:
        done = self.cli("agent", "token", "create", environment, "--ttl", ttl)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def client(self, **options: Any) -> GatewayClient:
        options.setdefault("timeout", REQUEST_SECONDS)
        made = GatewayClient(self.url, ca_file=self.ca_file, **options)
        self.clients.append(made)
        return made

    def enroll(self, token: str, name: str, folder: Path) -> tuple[Identity, EnrollResponse]:
        """Enroll like an agent: a key and CSR in `folder`, the answer stored beside it."""
        csr = identity.create_key(folder, name)
        status, body = self.client().post("/v1/enroll", encode(EnrollRequest(
            token=token, name=name, host="host-" + name, version="0.1.0",
            csr=csr.decode())))
        assert status == 200, body
        response = decode(EnrollResponse, body)
        stored = identity.store_certificate(folder, response.certificate.encode(),
                                            response.ca.encode())
        return stored, response

    def start_agent(self, environment: str, name: str, folder: Path,
                    directory: Mapping[str, str], env: Mapping[str, str] | None = None,
                    dc: Mapping[str, str] | None = None,
                    scripts: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A real `ferry-agent` of `environment`, enrolled through its CLI (the token in
        $FERRY_AGENT_TOKEN, never argv) and then run with `directory` as its INI's [directory]
        section (and `dc` as its [dc], `scripts` as its [scripts]). Its files and agent.log
        go in `folder`; `env` replaces os.environ."""
        folder.mkdir(parents=True, exist_ok=True)
        ini = folder / "ad.ini"
        sections = {"directory": directory, **({"dc": dc} if dc else {}),
                    **({"scripts": scripts} if scripts else {})}
        ini.write_text("".join(f"[{section}]\n" + "".join(f"{k} = {v}\n" for k, v in
                                                          values.items())
                               for section, values in sections.items()))
        base = dict(os.environ if env is None else env)
        enrolled = subprocess.run(
            [sys.executable, "-m", "ferry_agent.cli", "enroll", "--gateway", self.url,
             "--name", name, "--ca", str(self.ca_file), "--state-dir", str(folder / "identity")],
            env={**base, "FERRY_AGENT_TOKEN": self.token(environment)}, capture_output=True,
            text=True, timeout=CLI_SECONDS, check=False)
        assert enrolled.returncode == 0, enrolled.stderr
        with (folder / "agent.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "ferry_agent.cli", "run", "--gateway", self.url,
                 "--directory", str(ini), "--state-dir", str(folder / "identity")],
                env=base, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def agent(self, who: Identity) -> GatewayClient:
        made = GatewayClient.for_identity(self.url, who, timeout=REQUEST_SECONDS)
        self.clients.append(made)
        return made

    def fake_agent(self, environment: str, name: str, folder: Path) -> FakeAgent:
        """A freshly enrolled agent of `environment` (its own token, via the CLI)."""
        who, response = self.enroll(self.token(environment), name, folder / name)
        return FakeAgent(response.agent_id, response.environment, who, self.agent(who))

    def credential(self, *environments: str, subject: str = "harness-job",
                   ttl: timedelta = timedelta(hours=1), role: str = ROLE_JOB) -> str:
        """A job credential bound to `environments`, as the operator signs one per run."""
        return mint(load_signing_key(self.signing_key), subject, environments, ttl, role)

    def job(self, token: str | None = None, subject: str = "harness-job") -> JobClient:
        """A job; without `token`, each call presents a credential bound to just the
        environment it concerns (one subject: results of its own work only)."""
        return JobClient(self.client(), token, lambda env: self.credential(*env,
                                                                           subject=subject))

    def raw(self, path: str, body: bytes | Iterable[bytes], headers: dict[str, str] | None = None,
            cert: Identity | None = None, method: str = "POST"
            ) -> tuple[int, dict[str, str], bytes]:
        """One request with the standard library, whatever the body; (status, headers, body)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert is not None:
            context.load_cert_chain(cert.cert_file, cert.key_file)
        conn = http.client.HTTPSConnection(self.host, self.port, context=context,
                                            timeout=REQUEST_SECONDS)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def log_text(self) -> str:
        return self.log_file.read_text(encoding="utf-8", errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_ready(self) -> None:
        """Wait until the gateway completes TLS handshakes (or fail with its log)."""
        deadline = time.monotonic() + START_SECONDS
        context = ssl.create_default_context(cafile=str(self.ca_file))
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"ferry gateway exited {self.process.returncode}:\n"
                                   f"{self.log_text()}")
            try:
                attempt = max(0.1, min(ATTEMPT_SECONDS, deadline - time.monotonic()))
                with socket.create_connection((self.host, self.port), timeout=attempt) as sock, \
                        context.wrap_socket(sock, server_hostname=self.host):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"ferry gateway did not answer in {START_SECONDS} s:\n"
                                       f"{self.log_text()}") from None
                time.sleep(0.1)

    def kill_and_restart(self) -> None:
        """SIGKILL the gateway (nothing is flushed or handed over) and start it again."""
        self.process.kill()
        self.process.wait(KILL_SECONDS)
        self.process = _launch(self.command, self.log_file)
        self.wait_ready()

    def stop(self) -> None:
        for made in self.clients:
            made.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(KILL_SECONDS)


@dataclass
class FakeAgent:
    """An enrolled agent that polls and posts results by hand."""

    id: str
    environment: str
    identity: Identity
    client: GatewayClient

    def heartbeat(self, leases: list[str] | None = None) -> dict[str, Any] | None:
        status, body = self.client.post("/v1/agent/heartbeat", {
            "v": 1, "version": "0.1.0", "host": "test-host", "leases": leases or []})
        assert status == 200, body
        return body

    def poll(self, wait: float = 0.0) -> WorkItem | None:
        status, body = self.client.post("/v1/agent/poll", {"v": 1, "wait": wait},
                                        timeout=wait + REQUEST_SECONDS)
        assert status == 200 and body is not None, body
        return decode(WorkItem, body["work"]) if body["work"] is not None else None

    def post(self, item: WorkItem, seq: int, value: Any = None, final: bool = False,
             error: ErrorInfo | None = None) -> tuple[int, dict[str, Any] | None]:
        return self.client.post("/v1/agent/result", encode(WorkResult(
            lease_id=item.lease_id, work_id=item.work_id, seq=seq, final=final,
            ok=error is None, value=value, error=error)))


@dataclass
class JobClient:
    """The sync Job's side: submit work, collect its progress."""

    client: GatewayClient
    token: str | None                        # one fixed token, or else signed per call
    sign: Callable[[tuple[str, ...]], str]   # environments -> a credential bound to them
    submitted: dict[str, str] = field(default_factory=dict)   # work id -> environment

    def headers(self, *environments: str) -> dict[str, str]:
        token = self.token if self.token is not None else self.sign(environments)
        return {"Authorization": f"Bearer {token}"}

    def submit(self, environment: str, operation: str, arguments: dict[str, Any]
               ) -> tuple[int, dict[str, Any] | None]:
        status, body = self.client.post("/v1/work", {
            "v": 1, "environment": environment, "operation": operation,
            "arguments": arguments}, headers=self.headers(environment))
        if status == 200 and body is not None:
            self.submitted[body["workId"]] = environment
        return status, body

    def results(self, work_id: str, after: int = -1, wait: float = 0.0, generation: int = 0
                ) -> tuple[int, dict[str, Any] | None]:
        bound = (self.submitted[work_id],) if work_id in self.submitted else ()
        return self.client.post(f"/v1/work/{work_id}/results",
                                {"v": 1, "after": after, "wait": wait,
                                 "generation": generation},
                                headers=self.headers(*bound), timeout=wait + REQUEST_SECONDS)


def start_gateway(folder: Path, host: str, *extra: str) -> RunningGateway:
    """Start `ferry gateway` on host:<free port> and wait until it completes TLS handshakes."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = AgentCA.load_or_create(folder / "ca")
    cert_file, key_file = issue_server_cert(ca, host, folder)
    keys = folder / "job-signing"
    signing_key, public_key = keys / "job-signing.key", keys / "job-signing.pub"
    if not signing_key.exists():
        write_signing_key(keys)
    state = str(folder / "state.sqlite")
    port = free_port(host)
    command = [sys.executable, "-m", "ferry", "gateway", "--listen", f"{host}:{port}",
               "--tls-cert", str(cert_file), "--tls-key", str(key_file),
               "--ca-dir", str(folder / "ca"), "--job-key", str(public_key),
               "--state", state, *extra]
    running = RunningGateway(host, port, folder, state, folder / "ca" / "ca.crt", signing_key,
                             command, _launch(command, folder / "gateway.log"),
                             folder / "gateway.log")
    running.wait_ready()
    return running


def lab_directory(domain: LabDomain, lab_root: Path) -> dict[str, str]:
    """An agent's [directory] settings for a lab domain: its DC, bound with the lab's Secret."""
    secrets = lab_root / "secrets" / domain.secret_name
    return {"host": domain.ip, "port": str(domain.port), "base_dn": domain.base_dn,
            "bind_user": domain.admin_user, "password_file": str(secrets / "password"),
            "ca_file": str(secrets / "ca.pem")}


def _launch(command: list[str], log_file: Path) -> subprocess.Popen[bytes]:
    with log_file.open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def wait_until(condition: Any, seconds: float, what: str) -> None:
    """Poll `condition()` until true, failing after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def body_json(data: bytes) -> dict[str, Any]:
    found = json.loads(data)
    assert isinstance(found, dict)
    return found
