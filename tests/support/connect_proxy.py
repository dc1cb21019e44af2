"""A real HTTP CONNECT proxy for tests: loopback only, Basic credentials required, stdlib only.

`with ConnectProxy("user", "secret") as proxy:` listens on a free port of 127.0.0.1 (or the
given 127.0.0.x); `proxy.url` carries the credentials, `proxy.tunnels` counts tunnels opened,
`proxy.refused` counts CONNECTs answered 407. Only loopback targets are tunnelled (403 else).
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import selectors
import socket
import socketserver
import threading
from urllib.parse import quote

_MAX_HEAD = 64 * 1024
_IO_TIMEOUT = 10.0  # a stuck test client must not hold a handler thread forever


class ConnectProxy:
    """Tunnels `CONNECT host:port` for clients that send the right Proxy-Authorization."""

    def __init__(self, username: str, password: str, *, address: str = "127.0.0.1") -> None:
        if not ipaddress.ip_address(address).is_loopback:
            raise ValueError(f"{address} is not a loopback address")
        self.username = username
        self.password = password
        self.address = address
        self.port = 0
        self.tunnels = 0
        self.refused = 0
        self.targets: list[str] = []  # host:port of every CONNECT, allowed or not
        self._expected = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """http://user:password@address:port, as HTTPS_PROXY holds it."""
        return self.url_with(self.username, self.password)

    def url_with(self, username: str, password: str) -> str:
        """The proxy's URL with these credentials (others than its own are refused)."""
        credentials = f"{quote(username, safe='')}:{quote(password, safe='')}"
        return f"http://{credentials}@{self.address}:{self.port}"

    def __enter__(self) -> ConnectProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ConnectProxy:
        server = _Server((self.address, 0), _Handler)
        server.proxy = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open tunnel."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            sockets, self._open = list(self._open), set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None

    # -- used by the handler ------------------------------------------------------------------

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.add(sock)

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)

    def _count(self, target: str, *, tunnel: bool = False, refused: bool = False) -> None:
        with self._lock:
            self.targets.append(target)
            self.tunnels += tunnel
            self.refused += refused


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: ConnectProxy


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        proxy = self.server.proxy
        client: socket.socket = self.request
        client.settimeout(_IO_TIMEOUT)
        proxy._track(client)
        try:
            self._serve(proxy, client)
        except OSError:
            pass  # a client or target that went away: nothing to report
        finally:
            proxy._untrack(client)

    def _serve(self, proxy: ConnectProxy, client: socket.socket) -> None:
        head, rest = _read_head(client)
        if head is None:
            return
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split()
        if len(parts) != 3 or parts[0].upper() != "CONNECT":
            _answer(client, "405 Method Not Allowed", "Allow: CONNECT\r\n")
            return
        target = parts[1]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("proxy-authorization") != proxy._expected:
            proxy._count(target, refused=True)
            _answer(
                client,
                "407 Proxy Authentication Required",
                'Proxy-Authenticate: Basic realm="ferry-test"\r\n',
            )
            return
        host, _, port_text = target.rpartition(":")
        host = host.strip("[]")
        try:
            allowed = ipaddress.ip_address(host).is_loopback and port_text.isdigit()
        except ValueError:
            allowed = False
        if not allowed:  # tests must never reach beyond loopback through this proxy
            proxy._count(target)
            _answer(client, "403 Forbidden", "")
            return
        try:
            upstream = socket.create_connection((host, int(port_text)), timeout=_IO_TIMEOUT)
        except OSError:
            proxy._count(target)
            _answer(client, "502 Bad Gateway", "")
            return
        proxy._track(upstream)
        try:
            proxy._count(target, tunnel=True)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                upstream.sendall(rest)
            _pump(client, upstream)
        finally:
            proxy._untrack(upstream)
            upstream.close()


def _read_head(sock: socket.socket) -> tuple[bytes | None, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            return None, b""
        chunk = sock.recv(4096)
        if not chunk:
            return None, b""
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _answer(sock: socket.socket, status: str, extra_headers: str) -> None:
    head = f"HTTP/1.1 {status}\r\n{extra_headers}Content-Length: 0\r\nConnection: close\r\n\r\n"
    sock.sendall(head.encode("latin-1"))


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or the proxy stops)."""
    peers = {a: b, b: a}
    with selectors.DefaultSelector() as selector:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        while True:
            events = selector.select(timeout=_IO_TIMEOUT)
            if not events:
                return  # idle for too long: a test client that forgot us
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if not data:
                    return
                peers[source].sendall(data)
