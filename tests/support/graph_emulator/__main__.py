"""`python -m tests.support.graph_emulator --address 127.0.0.121 --cert C --key K
--ready-file F`: serve until SIGTERM. The admin token comes from the environment variable
GRAPH_EMULATOR_ADMIN_TOKEN (never the command line). Once listening, the process writes
`{"port": N, "pid": P}` to the ready file (atomically), so `--port 0` can pick a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import signal
import ssl
import sys
import uuid
from pathlib import Path

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from .admin import TOKEN_ENV
from .faults import Faults
from .server import build_app
from .state import EmulatorState


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.graph_emulator")
    parser.add_argument("--address", required=True, help="a loopback address to listen on")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--cert", type=Path, required=True)
    parser.add_argument("--key", type=Path, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not ipaddress.ip_address(args.address).is_loopback:
        parser.error("the emulator listens on loopback addresses only")
    token = os.environ.get(TOKEN_ENV)
    if not token:
        parser.error(f"set {TOKEN_ENV}")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(_serve(args, token))
    return 0


async def _serve(args: argparse.Namespace, token: str) -> None:
    state = EmulatorState(
        signing_key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        key_id=uuid.uuid4().hex,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    runner = web.AppRunner(build_app(state, Faults(), token), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.address, args.port, ssl_context=context, backlog=256)
    await site.start()
    port = runner.addresses[0][1]
    partial = args.ready_file.with_suffix(".tmp")
    partial.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    partial.rename(args.ready_file)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    sys.exit(main())
