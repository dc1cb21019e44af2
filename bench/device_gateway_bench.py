"""Device gateway benchmark: one real `ferry gateway` process (real TLS, its SQLite state
store) serving DEVICES simulated device agents, each with its own key and certificate.

    python bench/device_gateway_bench.py [--devices 10000] [--concurrency 64]

What is real: the gateway process and its routes; each device's requests go through its own
ferry_agent.transport.GatewayClient, the device agent's transport, with that device's
certificate: it keeps a connection alive while the gateway does (a runbook that sends the
device away for 30 s or more, or to run an action, ends it) and resumes its TLS session on a
new one, as `ferry-agent device` does; enrollment of every device through /v1/device/enroll
with one wave token (`ferry devices token create`); the plans written into the state store
with store.devices.set_plans as the controller writes them; results through
/v1/device/result.
What is simulated: the device agents are one client process (CONCURRENCY threads), not
DEVICES `ferry-agent device` processes; their keys and CSRs are made here; a device runs no
action, it reports its ReACL done. The plans hold one ReACL action, so no computer account
is staged (that needs the target's directory agents). The client shares the machine's two
cores with the gateway (and whatever else runs), so the rates are a floor; gateway CPU per
poll (from /proc) is what the gateway itself spent.

Phases: enroll every device; write a "paused" plan for each; every device polls once (its
first contact: full handshake, facts written) and again (an idle poll: TLS resumed, contact
batched); set the plans to "run" (the wave's cutover) and every device polls again: the time
from the plans written to the last device holding a runbook in state "run" is the time to
hand out the wave. Last, every device reports its action and asks again on that connection
(state "done"). Gateway RSS (VmRSS, /proc) is read before, after enrollment, and sampled
every 0.5 s for the peak. Prints one JSON document.

Measured (10,000 devices, 64 client threads, 2 cores, load 1-5 from other work): idle polls
(TLS resumed) 321/s at 2.5 ms gateway CPU each, p50 189 ms, p99 332 ms; first contacts (full
handshake, facts written) 241/s at 3.8 ms; the wave handed out in 32.6 s (316 polls/s); a
report and the poll after it 6.7 ms together; gateway RSS 92 MB idle, 122 MB at its peak.
10,000 devices polling every 60-75 s need 133-167 polls/s: about 0.4 of one core. Before
(each poll a full handshake, 2 store hand-offs, a last-contact write per idle poll): 57-124
polls/s at 7-9 ms each, p50 478-1030 ms, the wave in 157 s. Devices keeping their idle
connections open held 890 MB at 10,000, even with 32 KiB TLS buffers: runbooks now end them.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from bench.measure import log, rss_mb  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from tests.integration.gateway.harness import (  # noqa: E402
    REQUEST_SECONDS,
    RunningGateway,
    start_gateway,
)

from ferry.state.rows import DevicePlan, PlannedAction  # noqa: E402
from ferry.state.store import StateStore  # noqa: E402
from ferry_agent.transport import GatewayClient  # noqa: E402

GATEWAY_HOST = "127.0.0.104"
MIGRATION = "bench/wave-one"
STARTED = "2026-01-01T10:00:00Z"



def cpu_seconds(pid: int) -> float:
    """User + system CPU the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class PeakRss:
    """The gateway's highest VmRSS, sampled every half second in a thread."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return round(self.peak, 1)


class CountingClient(GatewayClient):
    """The device agent's own transport, counting the connections it opens."""

    opened = 0

    def new_connection(self) -> http.client.HTTPSConnection:
        self.opened += 1
        return super().new_connection()


class Device:
    """One simulated device agent: its name, key file and, once enrolled, its transport."""

    def __init__(self, index: int, folder: Path):
        self.name = f"WS{index:05d}"
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.identity = folder / f"{self.name}.pem"
        self.client: CountingClient | None = None
        self.state = ""

    def csr(self) -> str:
        built = (x509.CertificateSigningRequestBuilder()
                 .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, self.name)]))
                 .sign(self.key, hashes.SHA256()))
        return built.public_bytes(serialization.Encoding.PEM).decode()

    def enrolled(self, url: str, certificate: str, ca_file: Path) -> None:
        key = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
        self.identity.write_bytes(certificate.encode() + key)
        self.identity.chmod(0o600)
        # Kept: its TLS context (~23 KB), its kept-alive connection and TLS session.
        self.client = CountingClient(url, ca_file=ca_file, cert_file=self.identity,
                                     timeout=REQUEST_SECONDS, environ={})


async def enroll_all(gateway: RunningGateway, devices: list[Device], token: str,
                     concurrency: int) -> float:
    anonymous = ssl.create_default_context(cafile=str(gateway.ca_file))
    limit = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency, ssl=anonymous)
    async with aiohttp.ClientSession(connector=connector) as session:
        async def one(device: Device) -> None:
            async with limit:
                body = {"v": 1, "token": token, "name": device.name, "host": device.name.lower(),
                        "version": "bench", "csr": device.csr(), "os": "linux",
                        "labels": {"ring": "bench"}}
                async with session.post(f"{gateway.url}/v1/device/enroll", json=body) as answer:
                    found = await answer.json()
                    if answer.status != 200:
                        raise SystemExit(f"enrolling {device.name}: {answer.status} {found}")
            device.enrolled(gateway.url, found["certificate"], gateway.ca_file)

        started = time.perf_counter()
        await asyncio.gather(*(one(d) for d in devices))
        return time.perf_counter() - started


def sweep(gateway: RunningGateway, devices: list[Device], concurrency: int,
          want: str, report: bool = False) -> dict[str, Any]:
    """Every device polls its runbook once through its own transport, as the agent does
    (a kept-alive connection if it has one, else a new one resuming its TLS session); with
    `report`, it first reports its action done, as the agent does before asking again. When
    the last one got a runbook in state `want`, the polls per second, the connections opened.
    """
    latencies: list[float] = []
    opened = sum(d.client.opened for d in devices if d.client)
    cpu = cpu_seconds(gateway.process.pid)

    def one(device: Device) -> None:
        assert device.client is not None
        if report:
            status, body = device.client.post("/v1/device/result", {
                "v": 1, "generation": 1, "actionId": "1-ReACL", "attempt": 1, "ok": True,
                "message": "ReACL done", "details": {"files": {"scanned": 1000}},
                "startedAt": STARTED, "finishedAt": STARTED})
            if status != 200:
                raise SystemExit(f"result of {device.name}: {status} {body}")
        began = time.perf_counter()
        status, found = device.client.post("/v1/device/runbook", {
            "v": 1, "facts": {"domain": "SRC", "computerName": device.name}})
        if status != 200 or found is None:
            raise SystemExit(f"runbook of {device.name}: {status} {found}")
        latencies.append(time.perf_counter() - began)
        device.state = found["state"]

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, devices))
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(gateway.process.pid) - cpu
    wrong = [d.name for d in devices if d.state != want]
    if wrong:
        raise SystemExit(f"{len(wrong)} device(s) did not get state {want}: {wrong[:5]}")
    latencies.sort()
    return {"seconds": round(seconds, 2), "polls_per_s": round(len(devices) / seconds),
            f"gateway_cpu_ms_per_{'report_and_poll' if report else 'poll'}":
                round(cpu / len(devices) * 1000, 2),
            "latency_ms_p50": round(latencies[len(latencies) // 2] * 1000, 1),
            "latency_ms_p99": round(latencies[int(len(latencies) * 0.99)] * 1000, 1),
            "new_connections": sum(d.client.opened for d in devices if d.client) - opened}


def write_plans(state: str, devices: list[Device], run: bool) -> float:
    plans = [DevicePlan(MIGRATION, d.name, "wave-one", 1, "run" if run else "paused", "src",
                        "tgt", (PlannedAction("1-ReACL", "ReACL", {"mode": "add",
                                                                   "scopes": ["Files"]}),))
             for d in devices]
    started = time.perf_counter()
    with StateStore(state) as store:
        store.devices.set_plans(MIGRATION, plans)
    return time.perf_counter() - started


async def bench(gateway: RunningGateway, root: Path, count: int,
                concurrency: int) -> dict[str, Any]:
    pid = gateway.process.pid
    await asyncio.sleep(2)   # settle: start-up work done
    idle_rss = rss_mb(pid)
    log(f"gateway idle: {idle_rss:.1f} MB")
    peak = PeakRss(pid)
    folder = root / "devices"
    folder.mkdir(mode=0o700)
    devices = [Device(i, folder) for i in range(1, count + 1)]
    done = gateway.cli("devices", "token", "create", MIGRATION, "--ttl", "6h")
    if done.returncode != 0:
        raise SystemExit(f"token: {done.stderr}")
    enrolling = await enroll_all(gateway, devices, done.stdout.strip(), min(concurrency, 32))
    log(f"enrolled {count} devices in {enrolling:.1f} s ({count / enrolling:.0f}/s)")
    enrolled = rss_mb(pid)

    paused_plans = await asyncio.to_thread(write_plans, gateway.state, devices, False)
    log(f"{count} paused plans written in {paused_plans:.1f} s")
    first = await asyncio.to_thread(sweep, gateway, devices, concurrency, "paused")
    log(f"first contact (full handshakes), wave paused: {first}")
    idle = await asyncio.to_thread(sweep, gateway, devices, concurrency, "paused")
    log(f"idle sweep (TLS sessions resumed), wave paused: {idle}")

    cutover = time.perf_counter()
    run_plans = await asyncio.to_thread(write_plans, gateway.state, devices, True)
    handed = await asyncio.to_thread(sweep, gateway, devices, concurrency, "run")
    hand_out = time.perf_counter() - cutover
    log(f"wave handed out in {hand_out:.1f} s (plans {run_plans:.1f} s, polls {handed})")
    reported = await asyncio.to_thread(sweep, gateway, devices, concurrency, "done", True)
    log(f"each device reports its action, then polls on that connection: {reported}")
    after = rss_mb(pid)
    highest = peak.stop()
    if not gateway.alive():
        raise SystemExit(f"the gateway died:\n{gateway.log_text()[-2000:]}")
    for device in devices:
        if device.client is not None:
            device.client.close()
    return {
        "devices": count, "client_threads": concurrency,
        "enroll": {"seconds": round(enrolling, 1), "per_s": round(count / enrolling)},
        "plans_written_seconds": {"paused": round(paused_plans, 2), "run": round(run_plans, 2)},
        "sweep_first_contact": first, "sweep_idle": idle,
        "wave_hand_out_seconds": round(hand_out, 1), "sweep_hand_out": handed,
        "sweep_report_then_poll": reported,
        "gateway_rss_mb": {"idle": round(idle_rss, 1), "after_enrolling": round(enrolled, 1),
                           "peak": highest, "after": round(after, 1)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64,
                        help="client threads polling at once")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="ferry-device-bench-"))
    gateway = None
    try:
        gateway = start_gateway(root / "gateway", GATEWAY_HOST)
        found = asyncio.run(bench(gateway, root, args.devices, args.concurrency))
    finally:
        if gateway is not None:
            gateway.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(json.dumps({**found, "cpus": os.cpu_count(),
                      "load_average_at_start": [round(x, 2) for x in load_before],
                      "bench_seconds": round(time.perf_counter() - started, 1)}, indent=2))


if __name__ == "__main__":
    main()
