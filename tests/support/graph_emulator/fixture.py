"""`GraphEmulator`: the emulator as a separate process for a test session or a benchmark, and
`EmulatorAdmin`, the client of its admin API.

    with GraphEmulator(tmp_path) as emulator:
        tenant = emulator.admin.create_tenant(initial_domain="contoso.onmicrosoft.com",
                                              verified_domains=["contoso.com"])
        app = emulator.admin.register_app(tenant["id"], secrets=["s3cret"],
                                          roles=["User.ReadWrite.All"])
        emulator.admin.seed(tenant["id"], users=[{"userPrincipalName": "a@contoso.com"}])
        emulator.authority_host, emulator.graph_url, emulator.ca_file  # for the clients
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from tests.support.pki import CertificateAuthority

from .admin import TOKEN_ENV, TOKEN_HEADER

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_ADDRESS = "127.0.0.121"  # the emulator's range is 127.0.0.120-139
START_SECONDS = 120.0  # a Python process importing aiohttp on a busy 2-core machine
STOP_SECONDS = 10.0
SEED_CHUNK = 5_000


class EmulatorError(RuntimeError):
    pass


class GraphEmulator:
    """Starts `python -m tests.support.graph_emulator` on a loopback address with a fresh CA
    and server certificate (from tests/support/pki) and stops it again."""

    def __init__(self, folder: Path, address: str = DEFAULT_ADDRESS, port: int = 0) -> None:
        if not address.startswith("127.0.0."):
            raise EmulatorError(f"{address} is not a loopback address")
        self.folder = folder
        self.address = address
        self.port = port
        self.ca_file = folder / "ca.pem"
        self.log_file = folder / "emulator.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._admin: EmulatorAdmin | None = None

    @property
    def authority_host(self) -> str:
        """What azure-identity calls the authority (host): `https://127.0.0.121:PORT`."""
        return f"https://{self.address}:{self.port}"

    @property
    def graph_url(self) -> str:
        """Graph's base URL with the version: `https://127.0.0.121:PORT/v1.0`."""
        return f"{self.authority_host}/v1.0"

    @property
    def admin(self) -> EmulatorAdmin:
        if self._admin is None:
            raise EmulatorError("the emulator is not running")
        return self._admin

    def start(self) -> GraphEmulator:
        self.folder.mkdir(parents=True, exist_ok=True)
        ca = CertificateAuthority.create("Graph Emulator Test CA")
        ca.write(self.ca_file)
        cert, key = ca.issue_server(self.address, self.folder)
        _ensure_loopback(self.address)
        ready = self.folder / "ready.json"
        ready.unlink(missing_ok=True)
        token = secrets.token_urlsafe(32)
        command = [
            sys.executable, "-m", "tests.support.graph_emulator", "--address", self.address,
            "--port", str(self.port), "--cert", str(cert), "--key", str(key),
            "--ready-file", str(ready),
        ]
        with open(self.log_file, "ab") as log:
            self._process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, TOKEN_ENV: token}, start_new_session=True,
            )
        deadline = time.monotonic() + START_SECONDS
        while not ready.exists():
            if self._process.poll() is not None:
                raise EmulatorError(f"the emulator exited ({self._process.returncode}):\n"
                                    f"{self._log_tail()}")
            if time.monotonic() > deadline:
                self.close()
                raise EmulatorError(f"the emulator did not start in {START_SECONDS:.0f} s:\n"
                                    f"{self._log_tail()}")
            time.sleep(0.05)
        self.port = int(json.loads(ready.read_text())["port"])
        self._admin = EmulatorAdmin(self.address, self.port, self.ca_file, token)
        self._admin.health()
        return self

    def close(self) -> None:
        process, self._process = self._process, None
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_SECONDS)

    def __enter__(self) -> GraphEmulator:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class EmulatorAdmin:
    """Synchronous client of the admin API (stdlib http.client over the emulator's TLS)."""

    def __init__(self, address: str, port: int, ca_file: Path, token: str) -> None:
        self._address, self._port, self._token = address, port, token
        self._context = ssl.create_default_context(cafile=str(ca_file))
        self._conn: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ---- tenants and apps -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return self._call("GET", "/health")

    def create_tenant(self, *, tenant_id: str | None = None, initial_domain: str | None = None,
                      verified_domains: Sequence[str] = (), display_name: str | None = None,
                      token_lifetime: int | None = None) -> dict[str, Any]:
        """{id, displayName, initialDomain, verifiedDomains, tokenLifetime}."""
        return self._call("POST", "/tenants", {
            "id": tenant_id, "initialDomain": initial_domain,
            "verifiedDomains": list(verified_domains), "displayName": display_name,
            "tokenLifetime": token_lifetime,
        })

    def set_token_lifetime(self, tenant_id: str, seconds: int) -> dict[str, Any]:
        return self._call("PATCH", f"/tenants/{tenant_id}", {"tokenLifetime": seconds})

    def register_app(self, tenant_id: str, *, client_id: str | None = None,
                     display_name: str = "ferry", secrets: Sequence[str] = (),
                     certificates: Sequence[bytes | str] = (),
                     federated_credentials: Sequence[Mapping[str, Any]] = (),
                     roles: Iterable[str] = ()) -> dict[str, Any]:
        """Register an app (and its service principal) with client secrets, certificate PEMs,
        federated credentials ({issuer, subject, audiences?, publicKeys: [PEM]}) and granted
        application permissions. Returns {clientId, servicePrincipalId, roles, ...}."""
        return self._call("POST", f"/tenants/{tenant_id}/apps", {
            "clientId": client_id, "displayName": display_name, "secrets": list(secrets),
            "certificates": [c.decode() if isinstance(c, bytes) else c for c in certificates],
            "federatedCredentials": [dict(f) for f in federated_credentials],
            "roles": sorted(roles),
        })

    def set_roles(self, tenant_id: str, client_id: str, roles: Iterable[str]) -> dict[str, Any]:
        """Change granted permissions; like Entra, tokens issued before keep their roles."""
        return self._call("PATCH", f"/tenants/{tenant_id}/apps/{client_id}",
                          {"roles": sorted(roles)})

    def set_write_quota(self, tenant_id: str, client_id: str, limit: int | None,
                        window_seconds: float = 150.0) -> dict[str, Any]:
        """At most `limit` writes per `window_seconds` for this app (None: no quota)."""
        spec = {"limit": limit, "windowSeconds": window_seconds} if limit is not None else None
        return self._call("PATCH", f"/tenants/{tenant_id}/apps/{client_id}",
                          {"writeQuota": spec})

    # ---- data -------------------------------------------------------------------------------

    def seed(self, tenant_id: str, *, users: Sequence[Mapping[str, Any]] = (),
             groups: Sequence[Mapping[str, Any]] = (), contacts: Sequence[Mapping[str, Any]] = (),
             devices: Sequence[Mapping[str, Any]] = (),
             administrative_units: Sequence[Mapping[str, Any]] = (),
             chunk: int = SEED_CHUNK) -> dict[str, list[str]]:
        """Bulk insert (or update, by id) Graph-shaped objects; returns the ids per kind.
        Groups and administrative units may carry `members` (ids or UPNs)."""
        created: dict[str, list[str]] = {"users": [], "contacts": [], "devices": [],
                                         "groups": [], "administrativeUnits": []}
        for key, items in (("users", users), ("contacts", contacts), ("devices", devices),
                           ("groups", groups), ("administrativeUnits", administrative_units)):
            for start in range(0, len(items), chunk):
                answer = self._call("POST", f"/tenants/{tenant_id}/seed",
                                    {key: [dict(i) for i in items[start:start + chunk]]})
                created[key].extend(answer[key])
        return created

    def update_object(self, tenant_id: str, object_id: str, changes: Mapping[str, Any]
                      ) -> dict[str, Any]:
        """Change an object out of band (as an admin in the portal would)."""
        return self._call("PATCH", f"/tenants/{tenant_id}/objects/{object_id}", dict(changes))

    def delete_object(self, tenant_id: str, object_id: str, *, permanent: bool = False) -> None:
        query = "?permanent=true" if permanent else ""
        self._call("DELETE", f"/tenants/{tenant_id}/objects/{object_id}{query}")

    def change_members(self, tenant_id: str, group_id: str, *, add: Sequence[str] = (),
                       remove: Sequence[str] = ()) -> None:
        self._call("POST", f"/tenants/{tenant_id}/groups/{group_id}/members",
                   {"add": list(add), "remove": list(remove)})

    def users(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every live user with every stored property (passwordProfile included)."""
        return self._call("GET", f"/tenants/{tenant_id}/users")["value"]

    def groups(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every live group, with `members` (ids)."""
        return self._call("GET", f"/tenants/{tenant_id}/groups")["value"]

    def deleted_items(self, tenant_id: str) -> list[dict[str, Any]]:
        return self._call("GET", f"/tenants/{tenant_id}/deleted")["value"]

    def invitations(self, tenant_id: str) -> list[dict[str, Any]]:
        """Invitations made, with `sendInvitationMessage` (would Microsoft have e-mailed)."""
        return self._call("GET", f"/tenants/{tenant_id}/invitations")["value"]

    def counters(self, tenant_id: str, *, reset: bool = False) -> dict[str, int]:
        """writes (passed the quota), writesSucceeded (2xx), throttled (429s from the write
        quota), throttled:{clientId}, users, groups, deleted, invitationsSent."""
        query = "?reset=true" if reset else ""
        return self._call("GET", f"/tenants/{tenant_id}/counters{query}")

    def writes(self, tenant_id: str) -> list[dict[str, Any]]:
        """The write log: {method, path, status, clientId, batch} per write, oldest first."""
        return self._call("GET", f"/tenants/{tenant_id}/writes")["value"]

    # ---- faults and tokens ------------------------------------------------------------------

    def inject_fault(self, path_pattern: str, *, method: str | None = None, count: int = 1,
                     status: int = 503, retry_after: int | None = None,
                     reset: bool = False) -> dict[str, Any]:
        """The next `count` requests matching answer `status` (with Retry-After when given),
        or have their connection reset. `path_pattern` is a regex searched in the path
        (`/v1.0/users`, `/{tenant}/oauth2/v2.0/token`)."""
        return self._call("POST", "/faults", {
            "pathPattern": path_pattern, "method": method, "count": count, "status": status,
            "retryAfter": retry_after, "action": "reset" if reset else "status",
        })

    def faults(self) -> list[dict[str, Any]]:
        """Rules with `remaining` and `served` counts."""
        return self._call("GET", "/faults")["value"]

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def expire_delta_tokens(self, tenant_id: str, *, reset: bool = False) -> None:
        """Every delta token issued so far stops working: 400 syncStateNotFound, or with
        reset=True 410 resyncRequired with a Location to start over."""
        self._call("POST", f"/tenants/{tenant_id}/delta/expire", {"reset": reset})

    # ---- transport --------------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {TOKEN_HEADER: self._token, "Content-Type": "application/json"}
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.request(method, "/_emulator" + _quote_path(path), body=payload,
                             headers=headers)
                response = conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.close()  # a kept-alive connection the server closed: once more, fresh
                if attempt == 2:
                    raise
        if response.status >= 300:
            raise EmulatorError(f"{method} {path}: {response.status} {data.decode()[:2000]}")
        return json.loads(data) if data else None

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self._address, self._port,
                                                     context=self._context, timeout=120)
        return self._conn


def _quote_path(path: str) -> str:
    base, _, query = path.partition("?")
    quoted = quote(base, safe="/")
    return f"{quoted}?{query}" if query else quoted


def _ensure_loopback(address: str) -> None:
    """Put address/32 on lo like the Samba lab does (needs root); on Linux binding works
    without it (127.0.0.0/8 is local), so only a failing bind is fatal."""
    if shutil.which("ip"):
        shown = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "lo"],
                               capture_output=True, text=True, check=False)
        if f"inet {address}/" not in shown.stdout:
            subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"],
                           capture_output=True, text=True, check=False)
    with socket.socket() as sock:
        try:
            sock.bind((address, 0))
        except OSError as exc:
            raise EmulatorError(f"cannot bind to {address}: {exc}") from exc


__all__ = ["EmulatorAdmin", "EmulatorError", "GraphEmulator"]
