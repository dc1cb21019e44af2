"""The agent's work loop: heartbeat, ask for work, carry it out, push the results.

Work is asked for over the work stream (a WebSocket, see stream.py) and, where that does not
get through, by long-polling over plain HTTPS. Reconnects with jittered backoff while the
gateway is unreachable; stops when the gateway refuses the agent's identity (revoked, or
enrolled elsewhere), since retrying cannot help.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import socket
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from . import __version__
from .directory.session import DirectorySession
from .protocol import (
    POLL_WAIT_SECONDS,
    PROTOCOL_VERSION,
    Heartbeat,
    ProtocolError,
    WorkItem,
    WorkResult,
    decode,
    encode,
)
from .stream import StreamUnavailable, WorkStream
from .transport import (
    EXIT_REFUSED,
    Backoff,
    GatewayClient,
    GatewayError,
    GatewayRefused,
    GatewayUnavailable,
    backoff,
)
from .worker import Chunk, execute

log = logging.getLogger("ferry_agent")

STREAM_RETRY_SECONDS = 300.0  # after the work stream failed to open, long-poll this long


class AgentLoop:
    """Runs until stop is set (0) or the gateway refuses this agent (EXIT_REFUSED)."""

    def __init__(self, client: GatewayClient, session: DirectorySession, *,
                 stop: threading.Event | None = None, delays: Backoff | None = None,
                 use_stream: bool = True):
        self.client = client
        self.session = session
        self.stop = stop or threading.Event()
        self.delays = delays or backoff(base=0.5, cap=30.0)
        self.heartbeat_seconds = 10.0
        self.busy = False    # carrying out a work item (rather than waiting for one)
        self._leases: set[str] = set()
        self._leases_lock = threading.Lock()
        self._refused: GatewayRefused | None = None
        self._stream: WorkStream | None = None
        self._stream_after = 0.0 if use_stream else float("inf")
        self.transport = "long-poll"   # how the last work was asked for

    def run(self) -> int:
        beat = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beat.start()
        try:
            while not self.stop.is_set() and self._refused is None:
                try:
                    self._poll_once()
                    self.delays.reset()
                except GatewayRefused as exc:
                    self._refused = exc
                except (GatewayUnavailable, GatewayError, ProtocolError) as exc:
                    delay = next(self.delays)
                    log.warning("gateway unavailable (%s); retrying in %.1f s", exc, delay)
                    self.stop.wait(delay)
        finally:
            self.stop.set()
            self._close_stream()
            beat.join(timeout=5)
        if self._refused is not None:
            log.error("the gateway refused this agent: %s", self._refused)
            return EXIT_REFUSED
        return 0

    def _poll_once(self) -> None:
        request = {"v": PROTOCOL_VERSION, "wait": POLL_WAIT_SECONDS}
        stream = self._work_stream()
        if stream is not None:
            try:
                body: Any = stream.ask(request, timeout=POLL_WAIT_SECONDS + 15)
            except GatewayError:
                self._close_stream()
                raise
            status = 200
        else:
            status, body = self.client.post("/v1/agent/poll", request,
                                            timeout=POLL_WAIT_SECONDS + 15)
        work = (body or {}).get("work") if status == 200 else None
        if not work:
            return
        item: WorkItem = decode(WorkItem, work)
        with self._leases_lock:
            self._leases.add(item.lease_id)
        self.busy = True
        try:
            self._carry_out(item)
        finally:
            self.busy = False
            with self._leases_lock:
                self._leases.discard(item.lease_id)

    def _work_stream(self) -> WorkStream | None:
        """The open work stream, opening it when due; None: long-poll for now."""
        if self._stream is None and time.monotonic() >= self._stream_after:
            try:
                self._stream = WorkStream.open(self.client)
                self.transport = "stream"
                log.info("work stream open")
            except StreamUnavailable as exc:
                self._stream_after = time.monotonic() + STREAM_RETRY_SECONDS
                self.transport = "long-poll"
                log.info("%s; long-polling for work instead", exc)
        return self._stream

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def _carry_out(self, item: WorkItem) -> None:
        log.info("work %s: %s (attempt %d)", item.work_id, item.operation, item.attempt)
        with contextlib.closing(_read_ahead(execute(self.session, item))) as chunks:
            for seq, ((value, error), final) in enumerate(_with_final(chunks)):
                result = WorkResult(item.lease_id, item.work_id, seq, final, ok=error is None,
                                    value=value, error=error)
                status, _ = self.client.post("/v1/agent/result", encode(result))
                if status == 409:
                    log.warning("work %s: lease lost; the gateway gave it to another agent",
                                item.work_id)
                    return
                if status != 200:
                    raise GatewayUnavailable(f"result refused with {status}", status)

    def _heartbeats(self) -> None:
        while not self.stop.is_set():
            with self._leases_lock:
                leases = sorted(self._leases)
            try:
                status, body = self.client.post(
                    "/v1/agent/heartbeat",
                    encode(Heartbeat(__version__, socket.gethostname(), leases)), timeout=15)
                if status == 200 and body and isinstance(body.get("heartbeatSeconds"),
                                                         (int, float)):
                    self.heartbeat_seconds = max(1.0, float(body["heartbeatSeconds"]))
            except GatewayRefused as exc:
                self._refused = exc
                self.stop.set()
                return
            except GatewayError:
                pass  # the work loop reports and backs off; heartbeats just try again
            self.stop.wait(self.heartbeat_seconds)


def _read_ahead(chunks: Iterator[Chunk], depth: int = 2) -> Generator[Chunk, None, None]:
    """The chunks, with the next ones (LDAP pages) read while the caller posts this one."""
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    end = object()
    abandoned = threading.Event()

    def hand_over(chunk: Any) -> bool:
        while not abandoned.is_set():
            try:
                ready.put(chunk, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for chunk in chunks:
                if not hand_over(chunk):
                    return
        finally:
            hand_over(end)

    producer = threading.Thread(target=produce, name="read-ahead", daemon=True)
    producer.start()
    try:
        while (chunk := ready.get()) is not end:
            yield chunk
    finally:
        abandoned.set()  # a lost lease stops the producer at its next page
        producer.join()  # the session is the next work item's only once the producer is done


def _with_final(chunks: Iterator[Chunk]) -> Iterator[tuple[Chunk, bool]]:
    """Each chunk with whether it is the last one (one chunk of lookahead)."""
    previous: Any = None
    started = False
    for chunk in chunks:
        if started:
            yield previous, False
        previous, started = chunk, True
    if started:
        yield previous, True
