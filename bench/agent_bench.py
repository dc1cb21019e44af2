"""Agent benchmark: a full read of USERS users direct and through real agents, and the
gateway's memory with idle agents (a one-domain Samba lab, a real `ferry gateway` over real
TLS and real `ferry-agent run` processes, loopback only).

    python bench/agent_bench.py [--users 10000] [--runs 3] [--idle-agents 5]

Brings up SRC.TEST on a free loopback address in a temporary folder and seeds USERS users,
half in each of two OUs under one parent OU, with ferry_agent.directory.write.create (about as
fast as ferry.lab.seed on this lab, ~100 users/s either way when the machine is quiet, and it
puts the users where the halves need them; two writer threads do not help, Samba serialises the
adds). Then, with ad_bench's ATTRIBUTES for every read, RUNS runs each, best run counted:
  direct         DirectorySession(endpoint).read_full(ReadScope([parent], ["user"])), consumed
  one agent      RemoteDirectory(GatewaySettings(...), "src").read_full(...) with one enrolled
                 `ferry-agent run` for src: job -> gateway -> agent -> DC and back; its runs
                 take turns with the direct ones, so a change in load hits both alike
  two agents     a second agent for src; the same single read (one work item: one agent
                 does it), and the two halves (one OU each) read concurrently from two
                 threads, one work item each (which agent took which is reported)
  (context)      the two halves read direct, concurrently from two threads
  creates        1,000 user creates with passwords, in the AD connector's batches, direct
                 (DirectorySession.write) and through the one agent (RemoteDirectory.write)
Gateway memory (VmRSS) is measured on a separate fresh gateway: idle with no agent, then with
IDLE_AGENTS agents connected and idle once each has heartbeated three times, then after they
left. The gateway listens on 127.0.0.103. Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ad_bench import ATTRIBUTES  # noqa: E402
from bench.measure import log, rss_mb  # noqa: E402
from tests.integration.gateway.harness import RunningGateway, start_gateway  # noqa: E402

from ferry.connectors.activedirectory import ActiveDirectoryConnector  # noqa: E402
from ferry.connectors.agent_session import RemoteDirectory  # noqa: E402
from ferry.lab import Lab, LabDomain  # noqa: E402
from ferry.lab.samba import DomainSpec, free_addresses  # noqa: E402
from ferry.settings import GatewaySettings  # noqa: E402
from ferry.state.store import StateStore  # noqa: E402
from ferry_agent.directory import ReadScope, ensure_ou  # noqa: E402
from ferry_agent.directory.batch import Write  # noqa: E402
from ferry_agent.directory.password import generate_password  # noqa: E402
from ferry_agent.directory.session import DirectorySession  # noqa: E402
from ferry_agent.directory.write import create, delete  # noqa: E402
from ferry_agent.dn import build_dn  # noqa: E402

GATEWAY_HOST = "127.0.0.103"
ENVIRONMENT = "src"
STOP_SECONDS = 15.0
CREATE_USERS = 1000
BATCH = ActiveDirectoryConnector.batch_size



def wait_for(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


# -- the lab -----------------------------------------------------------------------------------

def seed_users(domain: LabDomain, halves: list[str], users: int) -> float:
    """`users` enabled users, half under each OU in `halves`; the seconds it took."""
    started = time.perf_counter()
    conn = domain.connect()
    try:
        for ou in halves:
            ensure_ou(conn, ou)
        for index in range(users):
            half = index % 2
            sam = f"ab{half}{index:06d}"
            create(conn, "user", build_dn(f"Agent Bench {index:06d}", halves[half]), {
                "sAMAccountName": [sam],
                "userPrincipalName": [f"{sam}@src.test"],
                "givenName": ["Bench"],
                "sn": [f"User {index}"],
                "displayName": [f"Bench User {index}"],
                "mail": [f"{sam}@src.test"],
                "proxyAddresses": [f"SMTP:{sam}@src.test", f"smtp:{sam}@mail.src.test"],
                "employeeID": [f"E{100000 + index}"],
                "department": ["Benchmarks"],
                "title": ["Tester"],
                "telephoneNumber": [f"+1 555 {index % 900 + 100} {index % 9000 + 1000}"],
            }, enabled=True)
            if (index + 1) % 1000 == 0:
                log(f"  seeded {index + 1}/{users}")
    finally:
        conn.unbind()
    return time.perf_counter() - started


# -- agents ------------------------------------------------------------------------------------

class Agents:
    """Real `ferry-agent` processes, enrolled as tests/integration/agent does it."""

    def __init__(self, gateway: RunningGateway, folder: Path, domain: LabDomain):
        self.gateway = gateway
        self.folder = folder
        self.domain = domain
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, environment: str = ENVIRONMENT) -> str:
        """Enroll `name` for `environment` and run it; its agent id."""
        home = self.folder / name
        home.mkdir(parents=True)
        ini = home / "ad.ini"
        domain = self.domain
        ini.write_text(f"[directory]\nhost = {domain.ip}\nport = {domain.port}\n"
                       f"base_dn = {domain.base_dn}\nbind_user = {domain.admin_user}\n"
                       f"password_file = {domain.password_file}\n"
                       f"ca_file = {domain.ca_file}\n")
        env = {**os.environ, "FERRY_AGENT_TOKEN": self.gateway.token(environment)}
        enrolled = subprocess.run(
            [sys.executable, "-m", "ferry_agent.cli", "enroll", "--gateway", self.gateway.url,
             "--name", name, "--ca", str(self.gateway.ca_file),
             "--state-dir", str(home / "identity")],
            env=env, capture_output=True, text=True, timeout=60, check=False)
        if enrolled.returncode != 0:
            raise SystemExit(f"enrolling agent {name} failed: {enrolled.stderr.strip()}")
        del env["FERRY_AGENT_TOKEN"]
        with (home / "agent.log").open("ab") as agent_log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "ferry_agent.cli", "run", "--gateway", self.gateway.url,
                 "--directory", str(ini), "--state-dir", str(home / "identity")],
                env=env, stdout=agent_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)
        with StateStore(self.gateway.state) as store:
            (agent,) = [a for a in store.agents.enrolled(environment) if a.name == name]
        return agent.id

    def log(self, name: str) -> str:
        return (self.folder / name / "agent.log").read_text(errors="replace")

    def work_done(self, name: str, operation: str) -> int:
        return sum(1 for line in self.log(name).splitlines() if f": {operation} " in line)

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise SystemExit(f"agent {name} exited {process.returncode}:\n"
                                 f"{self.log(name)[-2000:]}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=STOP_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_SECONDS)


def heartbeats(gateway: RunningGateway, agent_id: str) -> int:
    """Heartbeats the gateway answered for this agent (from its JSON log lines)."""
    count = 0
    for line in gateway.log_text().splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if (event.get("event") == "request" and event.get("path") == "/v1/agent/heartbeat"
                and event.get("who") == f"agent:{agent_id}" and event.get("status") == 200):
            count += 1
    return count


def wait_connected(gateway: RunningGateway, agents: Agents, ids: list[str], beats: int = 1,
                   timeout: float = 120.0) -> None:
    def ready() -> bool:
        agents.check_alive()
        return all(heartbeats(gateway, agent_id) >= beats for agent_id in ids)

    wait_for(ready, f"{len(ids)} agent(s) to heartbeat {beats} time(s)", timeout)


# -- reads -------------------------------------------------------------------------------------

def count(entries: Any) -> int:
    return sum(1 for _ in entries)


def concurrently(actions: list[Callable[[], int]]) -> int:
    """Run the actions in threads at once; the sum of what they return."""
    results: list[int] = [0] * len(actions)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            results[index] = actions[index]()
        except BaseException as exc:  # re-raised below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sum(results)


def measured(runs: int, actions: dict[str, Callable[[], int]], expected: int
             ) -> dict[str, dict[str, Any]]:
    """Each action `runs` times, taking turns (so a change in the machine's load hits all of
    them alike); per action the best run, and every run's seconds."""
    seconds: dict[str, list[float]] = {label: [] for label in actions}
    for _ in range(runs):
        for label, action in actions.items():
            started = time.perf_counter()
            found = action()
            seconds[label].append(time.perf_counter() - started)
            if found != expected:
                raise SystemExit(f"{label}: read {found} objects, expected {expected}")
    results = {}
    for label, taken in seconds.items():
        best = min(taken)
        log(f"  {label}: {expected} objects in {best:.2f} s = {expected / best:.0f} objects/s"
            f" (runs: {', '.join(f'{t:.2f}' for t in taken)} s)")
        results[label] = {"objects": expected, "seconds": round(best, 3),
                          "objects_per_s": round(expected / best),
                          "all_runs_seconds": [round(t, 3) for t in taken]}
    return results


# -- writes ------------------------------------------------------------------------------------

def batched_creates(domain: LabDomain, session: DirectorySession, remote: RemoteDirectory,
                    parent: str, runs: int, users: int = CREATE_USERS) -> dict[str, Any]:
    """`users` user creates with passwords in the connector's batches, direct and through the
    agent, taking turns; each run into a fresh OU, deleted again untimed."""
    def creates(sink: Any, run: str) -> Callable[[], int]:
        ou = f"OU=Writes {run},{parent}"

        def action() -> int:
            done = 0
            for start in range(0, users, BATCH):
                batch = [Write("create", build_dn(f"Write Bench {run} {i:05d}", ou),
                               object_type="user", parent=ou if i == 0 else "",
                               attributes={"sAMAccountName": [f"wb{run}{i:05d}"],
                                           "userPrincipalName": [f"wb{run}{i:05d}@src.test"],
                                           "givenName": ["Write"], "sn": [f"Bench {i}"]},
                               password=generate_password(), enabled=True)
                         for i in range(start, min(start + BATCH, users))]
                done += sum(1 for result in sink.write(batch) if result.ok)
            return done
        return action

    seconds: dict[str, list[float]] = {"direct": [], "one_agent": []}
    conn = domain.connect()
    try:
        for number in range(runs):
            for label, sink in (("direct", session), ("one_agent", remote)):
                run = f"{label[0]}{number}"
                started = time.perf_counter()
                made = creates(sink, run)()
                seconds[label].append(time.perf_counter() - started)
                if made != users:
                    raise SystemExit(f"{label}: created {made} of {users} users")
                delete(conn, f"OU=Writes {run},{parent}", tree=True)
    finally:
        conn.unbind()
    result: dict[str, Any] = {"users": users, "batch": BATCH}
    for label, taken in seconds.items():
        best = min(taken)
        log(f"  creates {label}: {users} users in {best:.2f} s = {users / best:.0f}/s"
            f" (runs: {', '.join(f'{t:.2f}' for t in taken)} s)")
        result[label] = {"seconds": round(best, 3), "creates_per_s": round(users / best),
                         "all_runs_seconds": [round(t, 3) for t in taken]}
    result["one_agent_vs_direct"] = round(
        result["direct"]["seconds"] / result["one_agent"]["seconds"], 3)
    return result


# -- phases ------------------------------------------------------------------------------------

def gateway_memory(root: Path, domain: LabDomain, idle_agents: int,
                   cleanup: list[Callable[[], None]]) -> dict[str, float]:
    """RSS of a fresh gateway idle, with `idle_agents` idle agents, and after they left."""
    gateway = start_gateway(root / "gateway-memory", GATEWAY_HOST)
    cleanup.append(gateway.stop)
    agents = Agents(gateway, root / "agents-memory", domain)
    cleanup.append(agents.stop)
    time.sleep(3)  # settle: start-up work done
    idle = rss_mb(gateway.process.pid)
    log(f"gateway idle, no agents: {idle:.1f} MB")
    ids = [agents.start(f"idle-agent-{n}") for n in range(1, idle_agents + 1)]
    # Every agent heartbeats at once on start, then every heartbeatSeconds (15 s by default).
    wait_connected(gateway, agents, ids, beats=3)
    time.sleep(1)
    loaded = rss_mb(gateway.process.pid)
    log(f"gateway idle, {idle_agents} agents connected: {loaded:.1f} MB")
    agents.stop()
    time.sleep(3)
    after = rss_mb(gateway.process.pid)
    if not gateway.alive():
        raise SystemExit(f"the gateway died:\n{gateway.log_text()[-2000:]}")
    gateway.stop()
    return {"idle_no_agents": round(idle, 1), f"idle_{idle_agents}_agents": round(loaded, 1),
            "after_agents_left": round(after, 1)}


def throughput(root: Path, domain: LabDomain, parent: str, halves: list[str], users: int,
               runs: int, cleanup: list[Callable[[], None]]) -> dict[str, Any]:
    full = ReadScope([parent], ["user"])
    parts = [ReadScope([ou], ["user"]) for ou in halves]
    sizes = [(users + 1) // 2, users // 2]
    found: dict[str, Any] = {}

    sessions = [DirectorySession(domain.endpoint()) for _ in range(2)]
    cleanup.extend(session.close for session in sessions)
    for session in sessions:
        _ = session.conn  # bound before timing, as an agent's session is after its first item

    def direct() -> int:
        return count(sessions[0].read_full(full, ATTRIBUTES))

    log("direct, two halves concurrently (for context)")
    found.update(measured(runs, {"direct_two_halves_concurrent": lambda: concurrently(
        [lambda i=i: count(sessions[i].read_full(parts[i], ATTRIBUTES)) for i in range(2)])},
        users))

    gateway = start_gateway(root / "gateway", GATEWAY_HOST)
    cleanup.append(gateway.stop)
    agents = Agents(gateway, root / "agents", domain)
    cleanup.append(agents.stop)
    settings = GatewaySettings(url=gateway.url, ca_file=str(gateway.ca_file),
                               token=gateway.credential(ENVIRONMENT))
    remotes = [RemoteDirectory(settings, ENVIRONMENT) for _ in range(2)]
    cleanup.extend(remote.close for remote in remotes)

    def remote(index: int, scope: ReadScope) -> int:
        return count(remotes[index].read_full(scope, ATTRIBUTES))

    log("direct and one agent, taking turns")
    first = agents.start("src-agent-1")
    wait_connected(gateway, agents, [first])
    remotes[0].exists(parent)  # warm up: the agent binds to the DC, the job's TLS connection
    found.update(measured(runs, {"direct": direct, "one_agent": lambda: remote(0, full)},
                          users))
    found["writes"] = batched_creates(domain, sessions[0], remotes[0], parent, runs)

    log("two agents")
    second = agents.start("src-agent-2")
    wait_connected(gateway, agents, [second])
    concurrently([lambda r=r: int(r.exists(parent)) for r in remotes])  # warm up both
    spread: list[dict[str, int]] = []  # read_full items each agent took, per halves run

    def halves() -> int:
        before = {name: agents.work_done(name, "read_full") for name in agents.processes}
        done = concurrently([lambda i=i: remote(i, parts[i]) for i in range(2)])
        spread.append({name: agents.work_done(name, "read_full") - before[name]
                       for name in agents.processes})
        return done

    found.update(measured(runs, {"two_agents_one_read": lambda: remote(0, full),
                                 "two_agents_two_halves_concurrent": halves}, users))
    found["two_agents_two_halves_concurrent"]["half_sizes"] = sizes
    found["two_agents_two_halves_concurrent"]["items_per_agent_each_run"] = spread
    agents.check_alive()
    if not gateway.alive():
        raise SystemExit(f"the gateway died:\n{gateway.log_text()[-2000:]}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--idle-agents", type=int, default=5)
    args = parser.parse_args()

    # SIGTERM (e.g. from a CI timeout) unwinds like Ctrl-C, so the cleanup below runs.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.perf_counter()
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="ferry-agent-bench-"))
    lab = Lab(max_runtime=3 * 3600)  # Samba ends itself even if this process is killed
    cleanup: list[Callable[[], None]] = []
    try:
        (ip,) = free_addresses(1, first=40)
        up = time.perf_counter()
        (domain,) = lab.up(root / "lab", [DomainSpec("SRC.TEST", "SRC", ip)])
        log(f"lab up in {time.perf_counter() - up:.1f} s on {ip}")
        parent = f"OU=AgentBench,{domain.base_dn}"
        halves = [f"OU=HalfA,{parent}", f"OU=HalfB,{parent}"]
        seeded = seed_users(domain, halves, args.users)
        log(f"seeded {args.users} users in {seeded:.1f} s ({args.users / seeded:.0f}/s)")

        memory = gateway_memory(root, domain, args.idle_agents, cleanup)
        reads = throughput(root, domain, parent, halves, args.users, args.runs, cleanup)
    finally:
        for action in reversed(cleanup):
            try:
                action()
            except Exception as exc:  # keep cleaning up
                log(f"cleanup: {type(exc).__name__}: {exc}")
        try:
            lab.down(root / "lab")
        except Exception as exc:
            log(f"cleanup: lab down: {type(exc).__name__}: {exc}")
        shutil.rmtree(root, ignore_errors=True)

    order = ["direct", "one_agent", "two_agents_one_read", "two_agents_two_halves_concurrent",
             "direct_two_halves_concurrent"]
    per_s = {name: reads[name]["objects_per_s"] for name in order}
    print(json.dumps({
        "users": args.users,
        "attributes": len(ATTRIBUTES),
        "runs_best_of": args.runs,
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(x, 2) for x in load_before],
        "seed": {"tool": "ferry_agent.directory.write.create", "seconds": round(seeded, 1),
                 "users_per_s": round(args.users / seeded)},
        "full_read_objects_per_s": per_s,
        "one_agent_vs_direct": round(per_s["one_agent"] / per_s["direct"], 3),
        "target_one_agent_vs_direct": 0.8,
        "reads": {name: reads[name] for name in order},
        "creates": reads["writes"],
        "gateway_rss_mb": memory,
        "bench_seconds": round(time.perf_counter() - started, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
