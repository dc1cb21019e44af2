"""The work stream: one long-lived WebSocket (RFC 6455) to the gateway over which the agent
asks for work, instead of a new long-poll request each time.

The agent sends a PollRequest as a text message and the gateway answers one `{"work": ...}`
message, as the long-poll route would; results and heartbeats still go as HTTPS POSTs. The
WebSocket is opened through the same proxy tunnel and TLS (client certificate) as every other
request. Where something on the way does not pass WebSockets, the agent long-polls instead.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import struct
import time
from typing import Any

from .transport import GatewayClient, GatewayRefused, GatewayUnavailable, MalformedAnswer

STREAM_PATH = "/v1/agent/stream"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455, section 1.3
_TEXT, _CLOSE, _PING, _PONG, _CONTINUATION = 0x1, 0x8, 0x9, 0xA, 0x0


class StreamUnavailable(GatewayUnavailable):
    """The gateway (or something before it) did not accept the WebSocket: long-poll instead."""


class WorkStream:
    """An open WebSocket to the gateway; ask() sends one message and returns the answer."""

    def __init__(self, conn: Any, reader: Any):
        self._conn, self._sock, self._reader = conn, conn.sock, reader

    @classmethod
    def open(cls, client: GatewayClient, timeout: float = 30.0) -> WorkStream:
        """Upgrade a new connection to a WebSocket; StreamUnavailable when refused."""
        conn = client.new_connection()
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        try:
            conn.timeout = timeout
            conn.connect()
            conn.request("GET", client.base_path + STREAM_PATH, headers={
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": key,
                "Sec-WebSocket-Version": "13", "User-Agent": client.user_agent})
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise StreamUnavailable(f"opening the work stream failed: {exc}") from None
        if response.status in (401, 403):
            conn.close()
            raise GatewayRefused(response.status, "the gateway refused the work stream")
        expected = base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()
        if response.status != 101 or response.getheader("Sec-WebSocket-Accept") != expected:
            conn.close()
            raise StreamUnavailable(f"the gateway answered {response.status} to the work"
                                    " stream upgrade")
        # The response's buffered reader may already hold the first frames: read through it.
        return cls(conn, response.fp)

    def ask(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send `message`, return the gateway's answer (a JSON object)."""
        deadline = time.monotonic() + timeout
        try:
            self._send(_TEXT, json.dumps(message, separators=(",", ":")).encode())
            while True:
                opcode, payload = self._receive(deadline)
                if opcode == _PING:
                    self._send(_PONG, payload)
                elif opcode == _CLOSE:
                    reason = payload[2:].decode("utf-8", "replace") if len(payload) > 2 else ""
                    raise GatewayUnavailable(f"the gateway closed the work stream {reason}")
                elif opcode == _TEXT:
                    answer = json.loads(payload)
                    if not isinstance(answer, dict):
                        raise MalformedAnswer("the work stream sent something other than an"
                                            " object")
                    return answer
        except (OSError, ValueError) as exc:
            raise GatewayUnavailable(f"the work stream broke: {type(exc).__name__}") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._send(_CLOSE, struct.pack("!H", 1000))
        self._conn.close()

    # frames ---------------------------------------------------------------------------------
    def _send(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)  # clients mask every frame (RFC 6455, 5.3)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 1 << 16:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self._sock.sendall(header + mask + masked)

    def _receive(self, deadline: float) -> tuple[int, bytes]:
        """One whole message (fragments joined): its opcode and payload."""
        message_opcode: int | None = None
        parts: list[bytes] = []
        size = 0
        while True:
            first, second = self._exact(2, deadline)
            opcode, final, length = first & 0x0F, bool(first & 0x80), second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self._exact(2, deadline))
            elif length == 127:
                (length,) = struct.unpack("!Q", self._exact(8, deadline))
            size += length
            if size > MAX_MESSAGE_BYTES:
                raise MalformedAnswer("the work stream sent a message over the size limit")
            mask = self._exact(4, deadline) if second & 0x80 else b""
            payload = self._exact(length, deadline) if length else b""
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            if opcode >= _CLOSE:   # control frames may come between fragments
                return opcode, payload
            if opcode != _CONTINUATION:
                message_opcode, parts, size = opcode, [], length
            parts.append(payload)
            if final and message_opcode is not None:
                return message_opcode, b"".join(parts)

    def _exact(self, count: int, deadline: float) -> bytes:
        data = b""
        while len(data) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer on the work stream in time")
            self._sock.settimeout(left)
            chunk = self._reader.read1(count - len(data))
            if not chunk:
                raise ConnectionError("the gateway ended the work stream")
            data += chunk
        return data
