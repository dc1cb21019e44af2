"""A TCP forwarder on loopback that holds every chunk a fixed time each way: a directory a
network away, for benchmarks on one machine (it adds latency, never limits throughput)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                delay: float) -> None:
    """Copy reader to writer, each chunk sent `delay` s after it arrived, in order."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(OSError):
        await sender


@contextmanager
def latency_proxy(host: str, port: int, delay: float, listen: str = "127.0.0.1"
                  ) -> Iterator[int]:
    """Forward a free port on `listen` to host:port with `delay` s one way; yields the port."""
    loop = asyncio.new_event_loop()
    writers: set[asyncio.StreamWriter] = set()
    handlers: set[asyncio.Task[None]] = set()

    async def forward(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        writers.add(client_w)
        try:
            server_r, server_w = await asyncio.open_connection(host, port)
        except OSError:
            client_w.close()
            return
        writers.add(server_w)
        await asyncio.gather(_pipe(client_r, server_w, delay), _pipe(server_r, client_w, delay),
                             return_exceptions=True)

    def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        task = loop.create_task(forward(client_r, client_w))
        handlers.add(task)
        task.add_done_callback(handlers.discard)

    async def serve() -> asyncio.Server:
        return await asyncio.start_server(handle, listen, 0)

    async def shut_down() -> None:
        server.close()
        for writer in writers:   # every pipe then ends by itself
            writer.close()
        await asyncio.wait_for(asyncio.gather(*handlers, return_exceptions=True), 10)

    thread = threading.Thread(target=loop.run_forever, daemon=True, name="latency-proxy")
    thread.start()
    server = asyncio.run_coroutine_threadsafe(serve(), loop).result(timeout=10)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
