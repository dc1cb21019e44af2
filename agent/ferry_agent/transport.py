"""JSON over HTTPS to the gateway, standard library only: TLS 1.2+, the gateway verified, the
agent's client certificate, HTTPS_PROXY (with credentials) and NO_PROXY, capped responses.

Errors say what to do next: GatewayUnavailable (no answer: retry with backoff()),
GatewayRefused (the gateway said no: 401/403), MalformedAnswer (an answer that makes no sense),
ConfigurationError (fix the settings). No error, repr or log line carries proxy credentials.
"""

from __future__ import annotations

import base64
import http.client
import ipaddress
import json
import os
import random as _random
import re
import select
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from ferry_agent import __version__
from ferry_agent.errors import FerryAgentError

if TYPE_CHECKING:
    from ferry_agent.identity import Identity

DEFAULT_TIMEOUT = 30.0
MAX_RESPONSE_BYTES = 16 * 1024 * 1024
IDLE_TIMEOUT = 30.0  # under the usual 60 s keep-alive of proxies and load balancers
_MAX_IDLE_CONNECTIONS = 4
_READ_SIZE = 64 * 1024
_TUNNEL_FAILED = re.compile(r"Tunnel connection failed: (\d{3})\s*(.*)")

JSONObject = dict[str, Any]


class GatewayError(FerryAgentError):
    """Anything that went wrong talking to the gateway."""


class ConfigurationError(GatewayError):
    """The gateway URL, CA bundle, client certificate or proxy setting cannot be used."""


class GatewayUnavailable(GatewayError):
    """No usable answer: connection, proxy, TLS, timeout, 408/429/5xx. Retry with backoff()."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        self.status = status
        self.retry_after = retry_after  # seconds, from a Retry-After header
        super().__init__(message)


class ProxyError(GatewayUnavailable):
    """The web proxy refused to open a tunnel to the gateway (407: check its credentials)."""


# What an agent (directory or device) exits with once the gateway refuses it: a service
# manager restarting it would not help; enroll again.
EXIT_REFUSED = 3


class GatewayRefused(GatewayError):
    """The gateway answered 401 or 403: this agent is not (or no longer) allowed."""

    def __init__(self, status: int, message: str):
        self.status = status
        self.message = message
        super().__init__(f"the gateway refused the request: {status} {message}".rstrip())


class MalformedAnswer(GatewayError):
    """The answer is malformed, too large, or not what the protocol allows."""


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy reached with CONNECT; str() never shows the credentials."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"http://{self.host}:{self.port}"

    def tunnel_headers(self) -> dict[str, str]:
        """The CONNECT request's headers: Proxy-Authorization when there are credentials."""
        if self.username is None:
            return {}
        pair = f"{self.username}:{self.password or ''}".encode()
        return {"Proxy-Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def parse_proxy_url(url: str, source: str = "the proxy URL") -> Proxy:
    """Parse http://[user:password@]host[:port]; the message never repeats `url` (secrets)."""
    expected = f"{source} is not usable: expected http://[user:password@]host[:port]"
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # like curl: a bare host:port means an HTTP proxy
    try:
        parts = urlsplit(text)
        port = parts.port or 80
    except ValueError:
        raise ConfigurationError(expected) from None
    if parts.scheme.lower() != "http":
        raise ConfigurationError(
            f"{source} uses {parts.scheme}://; only http:// proxies (CONNECT) are supported"
        )
    if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigurationError(expected)
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return Proxy(parts.hostname, port, username, password)


def proxy_from_environment(host: str, port: int, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for https://host:port from https_proxy/HTTPS_PROXY unless no_proxy/NO_PROXY
    matches (names and their subdomains, IPs, CIDR ranges, optional :port, `*`)."""
    name, url = _first_set(environ, "https_proxy", "HTTPS_PROXY")
    if not url:
        return None
    _, no_proxy = _first_set(environ, "no_proxy", "NO_PROXY")
    if no_proxy and _bypass(host.lower(), port, no_proxy):
        return None
    return parse_proxy_url(url, source=name)


def _first_set(environ: Mapping[str, str], *names: str) -> tuple[str, str]:
    # Lower case first, as curl and Python's urllib do.
    for name in names:
        value = environ.get(name, "").strip()
        if value:
            return name, value
    return names[-1], ""


def _bypass(host: str, port: int, no_proxy: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for entry in re.split(r"[,\s]+", no_proxy.lower()):
        if entry == "*":
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, entry_port = entry, ""
        if entry.count(":") == 1:
            name, _, entry_port = entry.partition(":")
        elif entry.startswith("[") and "]:" in entry:
            name, _, entry_port = entry.partition("]:")
        name = name.strip("[]").removeprefix("*").removeprefix(".")
        if not name or (entry_port and entry_port != str(port)):
            continue
        if host == name or host.endswith("." + name):
            return True
    return False


class GatewayClient:
    """JSON requests to one gateway over kept-alive HTTPS connections; safe across threads.

    Each request has one deadline (`timeout`) for the whole exchange, through the proxy, the
    TLS handshake and the body; no socket read waits longer than the time left. Responses over
    `max_response_bytes` are refused. Redirects are never followed.
    """

    def __init__(
        self,
        url: str,
        *,
        ca_file: str | Path | None = None,
        cert_file: str | Path | None = None,
        key_file: str | Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        environ: Mapping[str, str] | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        # Messages name the part at fault but never repeat the URL: it might hold a secret.
        parts = urlsplit(url)
        try:
            port = parts.port or 443
        except ValueError:
            raise ConfigurationError("the gateway URL has an invalid port") from None
        if parts.scheme.lower() != "https" or not parts.hostname:
            raise ConfigurationError(
                "the gateway URL must be https://host[:port][/path]"
                + (f", not {parts.scheme}://" if parts.scheme else "")
            )
        if parts.username is not None or parts.query or parts.fragment:
            raise ConfigurationError(
                "the gateway URL must not carry credentials, a query or a fragment"
            )
        self.host = parts.hostname
        self.port = port
        self.base_path = parts.path.rstrip("/")
        self.ca_file = Path(ca_file) if ca_file is not None else None
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self.idle_timeout = idle_timeout
        self.proxy = proxy_from_environment(
            self.host, self.port, os.environ if environ is None else environ
        )
        self._context = _tls_context(self.ca_file, cert_file, key_file)
        self._session: ssl.SSLSession | None = None  # offered on the next new connection
        self._idle: list[tuple[http.client.HTTPSConnection, float]] = []
        self._lock = threading.Lock()
        self._headers = {"Accept": "application/json", "User-Agent": f"ferry-agent/{__version__}"}

    @classmethod
    def for_identity(cls, url: str, identity: Identity, **options: Any) -> GatewayClient:
        """A client that authenticates with an enrolled identity (and trusts its CA bundle)."""
        options.setdefault("ca_file", identity.ca_file)
        return cls(url, cert_file=identity.cert_file, key_file=identity.key_file, **options)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}{self.base_path}"

    def __repr__(self) -> str:
        via = f" via {self.proxy}" if self.proxy else ""
        return f"GatewayClient({self.url}{via})"

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the idle connections; the client stays usable."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            conn.close()

    def get(
        self, path: str, *, timeout: float | None = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, JSONObject | None]:
        """GET `path`; see request()."""
        return self.request("GET", path, None, timeout=timeout, headers=headers)

    def post(
        self,
        path: str,
        body: Mapping[str, Any],
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, JSONObject | None]:
        """POST `body` as JSON to `path`; see request()."""
        return self.request("POST", path, body, timeout=timeout, headers=headers)

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, JSONObject | None]:
        """Send one request, once; return (status, JSON object or None when the body is empty).

        2xx must carry a JSON object (or nothing); other 4xx are returned with their JSON
        object, or None. 401/403 raise GatewayRefused; 408, 429 and 5xx GatewayUnavailable.
        """
        if not path.startswith("/"):
            raise ValueError(f"path must start with '/': {path!r}")
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        all_headers = dict(self._headers)
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        target = self.base_path + path
        conn = self._checkout()
        try:
            status, response_headers, data, keep = self._exchange(
                conn, method, target, payload, all_headers, deadline
            )
        except BaseException as exc:
            conn.close()
            self._session = None  # whatever went wrong, the next connection starts afresh
            if isinstance(exc, GatewayError) or not isinstance(exc, Exception):
                raise
            if isinstance(exc, ValueError) and not isinstance(exc, ssl.SSLError):
                raise  # a bad header or path from the caller, not a transport problem
            raise self._translate(exc, deadline) from None
        if keep:
            self._checkin(conn)
        else:
            conn.close()
        return _interpret(status, response_headers, data)

    # -- connections --------------------------------------------------------------------------

    @property
    def user_agent(self) -> str:
        return self._headers["User-Agent"]

    def new_connection(self) -> http.client.HTTPSConnection:
        """An unconnected HTTPS connection to the gateway, through the proxy if there is one;
        it resumes the TLS session of the last one when the gateway still knows it."""
        if self.proxy is None:
            return _Resuming(self.host, self.port, self.host, self._context, self._last_session)
        conn = _Resuming(self.proxy.host, self.proxy.port, self.host, self._context,
                         self._last_session)
        conn.set_tunnel(self.host, self.port, headers=self.proxy.tunnel_headers())
        return conn

    def _last_session(self) -> ssl.SSLSession | None:
        return self._session

    def _checkout(self) -> http.client.HTTPSConnection:
        # A request is never sent twice (the gateway may have acted on it), so an idle
        # connection the gateway has closed must be noticed before use, not after.
        now = time.monotonic()
        while True:
            with self._lock:
                if not self._idle:
                    return self.new_connection()
                conn, since = self._idle.pop()
            if now - since < self.idle_timeout and not _dropped(conn.sock):
                return conn
            conn.close()

    def _checkin(self, conn: http.client.HTTPSConnection) -> None:
        with self._lock:
            if len(self._idle) < _MAX_IDLE_CONNECTIONS:
                self._idle.append((conn, time.monotonic()))
                return
        conn.close()

    def _exchange(
        self,
        conn: http.client.HTTPSConnection,
        method: str,
        target: str,
        payload: bytes | None,
        headers: dict[str, str],
        deadline: float,
    ) -> tuple[int, http.client.HTTPMessage, bytes, bool]:
        if conn.sock is None:
            conn.timeout = _left(deadline)  # connect, CONNECT through the proxy, handshake
            conn.connect()
        conn.sock.settimeout(_left(deadline))
        conn.request(method, target, body=payload, headers=headers)
        conn.sock.settimeout(_left(deadline))
        response = conn.getresponse()
        # Taken now: an answer that ends the connection takes its socket with it. With TLS 1.3
        # the gateway's ticket has arrived by the time its answer does.
        self._session = conn.sock.session if isinstance(conn.sock, ssl.SSLSocket) else None
        declared = (response.getheader("Content-Length") or "").strip()
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            raise MalformedAnswer(
                f"{self.url}{target} answered {declared} bytes; the limit is"
                f" {self.max_response_bytes}"
            )
        chunks: list[bytes] = []
        size = 0
        while True:
            if conn.sock is not None:  # None when the answer ends the connection
                conn.sock.settimeout(_left(deadline))
            chunk = response.read1(_READ_SIZE)
            if not chunk:
                break
            size += len(chunk)
            if size > self.max_response_bytes:
                raise MalformedAnswer(
                    f"{self.url}{target} answered more than {self.max_response_bytes} bytes"
                    " (the limit)"
                )
            chunks.append(chunk)
        response.close()  # read1() may stop at the body's end without telling the connection
        keep = not response.will_close and conn.sock is not None
        return response.status, response.headers, b"".join(chunks), keep

    def _translate(self, exc: Exception, deadline: float) -> GatewayError:
        where = f"{self.host}:{self.port}" + (f" via proxy {self.proxy}" if self.proxy else "")
        if isinstance(exc, ssl.SSLCertVerificationError):
            trust = f"the CA bundle {self.ca_file}" if self.ca_file else "the system trust store"
            detail = exc.verify_message or exc.reason or str(exc)
            return GatewayUnavailable(
                f"TLS: the gateway's certificate at {where} is not trusted ({detail});"
                f" it was checked against {trust}"
            )
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or str(exc)
            hint = ""
            if "CERTIFICATE_REQUIRED" in reason.upper() or "UNKNOWN_CA" in reason.upper():
                hint = "; the gateway did not accept this agent's client certificate (enroll?)"
            return GatewayUnavailable(f"TLS with {where} failed: {reason}{hint}")
        if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
            return GatewayUnavailable(f"no answer from {where} in time")
        if isinstance(exc, OSError):
            tunnel = _TUNNEL_FAILED.search(str(exc))
            if tunnel and self.proxy is not None:
                status = int(tunnel.group(1))
                hint = "; check the user and password in HTTPS_PROXY" if status == 407 else ""
                return ProxyError(
                    f"the proxy {self.proxy} refused a tunnel to {self.host}:{self.port}:"
                    f" {status} {_printable(tunnel.group(2))}{hint}",
                    status=status,
                )
            reason = exc.strerror or str(exc) or type(exc).__name__
            return GatewayUnavailable(f"cannot reach {where}: {reason}")
        if isinstance(exc, http.client.IncompleteRead):
            return GatewayUnavailable(f"{where} closed the connection in the middle of an answer")
        if isinstance(exc, http.client.HTTPException):
            return MalformedAnswer(f"malformed HTTP answer from {where}: {type(exc).__name__}")
        return GatewayUnavailable(f"talking to {where} failed: {type(exc).__name__}: {exc}")


class _Resuming(http.client.HTTPSConnection):
    """An HTTPS connection that offers a TLS session from an earlier one. Agents poll less
    often than a connection is kept alive (IDLE_TIMEOUT): each poll would otherwise be a full
    handshake, both certificates checked again, most of what a poll costs the gateway."""

    def __init__(self, host: str, port: int, server_name: str, context: ssl.SSLContext,
                 session: Callable[[], ssl.SSLSession | None]) -> None:
        super().__init__(host, port, context=context)
        self._server_name = server_name   # the gateway, also when `host` is the proxy
        self._tls = context
        self._session_of = session

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)  # TCP, and the CONNECT tunnel if any
        # A session the gateway no longer knows (it restarted, the ticket expired) just
        # means a full handshake.
        self.sock = self._tls.wrap_socket(self.sock, server_hostname=self._server_name,
                                          session=self._session_of())


def _tls_context(
    ca_file: Path | None, cert_file: str | Path | None, key_file: str | Path | None
) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"CA bundle {ca_file} cannot be used: {_os_reason(exc)}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            context.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"client certificate {cert_file} (key {key_file}) cannot be used: {_os_reason(exc)}"
            ) from None
    return context


def _interpret(
    status: int, headers: http.client.HTTPMessage, data: bytes
) -> tuple[int, JSONObject | None]:
    if status in (401, 403):
        raise GatewayRefused(status, _server_message(data))
    if status in (408, 429) or status >= 500:
        raise GatewayUnavailable(
            f"the gateway answered {status} {_server_message(data)}".rstrip(),
            status=status,
            retry_after=_retry_after(headers.get("Retry-After")),
        )
    if 200 <= status < 300:
        if not data:
            return status, None
        media_type = (headers.get_content_type() or "").lower()
        if media_type != "application/json":
            raise MalformedAnswer(f"the gateway answered {status} with {media_type}, not JSON")
        found = _json_object(data)
        if found is None:
            raise MalformedAnswer(f"the gateway answered {status} with malformed JSON")
        return status, found
    if 400 <= status < 500:
        return status, _json_object(data) if data else None
    raise MalformedAnswer(f"the gateway answered {status}, which the protocol does not use")


def _json_object(data: bytes) -> JSONObject | None:
    try:
        found = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return found if isinstance(found, dict) else None


def _server_message(data: bytes) -> str:
    found = _json_object(data)
    if found is not None:
        for key in ("error", "message", "detail"):
            if isinstance(found.get(key), str):
                return _printable(found[key])
        return ""
    return _printable(data[:400].decode("utf-8", "replace"))


def _printable(text: str, limit: int = 200) -> str:
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None  # an HTTP date is not worth parsing here: backoff covers it


def _dropped(sock: Any) -> bool:
    """Whether an idle kept-alive connection was closed by the other end (or is unusable)."""
    if sock is None:
        return True
    try:  # readable while idle: end of stream, or bytes nobody asked for; either way unusable
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


class Backoff(Iterator[float]):
    """Delays for a reconnect loop: full jitter, each uniform in [0, min(cap, base * 2**n)),
    n being the failures since the last reset() (call it after a success)."""

    def __init__(
        self, base: float = 1.0, cap: float = 60.0, *, random: Callable[[], float] | None = None
    ) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"backoff needs 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._random = random or _random.random

    @property
    def ceiling(self) -> float:
        """The upper bound of the next delay."""
        # Stop doubling once past the cap, so 2**n never grows without bound.
        exponent = 0
        value = self.base
        while exponent < self.attempts and value < self.cap:
            value *= 2
            exponent += 1
        return min(self.cap, value)

    def __next__(self) -> float:
        delay = self._random() * self.ceiling
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start again from `base` (after a successful connection)."""
        self.attempts = 0


def backoff(
    base: float = 1.0, cap: float = 60.0, *, random: Callable[[], float] | None = None
) -> Backoff:
    """A jittered exponential backoff iterator (full jitter, capped; reset() on success).

    `random` returns a float in [0, 1); tests pass their own.
    """
    return Backoff(base, cap, random=random)
