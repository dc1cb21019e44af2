"""`make bench`: every benchmark, one after the other, each printing its own table.

    python bench/run.py    # start-up of the commands, AD read/create throughput, what
                           # changed-objects-only runs cost, the
                           # engine at 100k and 1M, a 100k full run's memory,
                           # the operator, reads through agents,
                           # the gateway's memory, Entra ID writes and reads, DC agent
                           # password changes, their relay to the target, and the
                           # gateway serving 10,000 device agents
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = [
    ("Start-up: ferry --help and ferry-agent --help, best of 5 (limit 0.3 s)",
     ["startup_bench.py", "5"]),
    ("AD connector vs ldapsearch / bare ldap3 (Samba lab)", ["ad_bench.py"]),
    ("A run costs what changed: ferry run end to end on a Samba pair, 1 change, no change"
     " (vs ldapsearch), 1,000 changes (vs reading them + bare modifies)",
     ["delta_bench.py", "--users", "5000", "--changes", "1000"]),
    ("Engine: match + stage + diff", ["engine_bench.py", "100000", "1000000"]),
    ("Memory: peak RSS of a full ferry run on a 100,000-user Samba pair, seeded offline and"
     " cached (limit 1 GB)", ["memory_bench.py", "--users", "100000"]),
    ("Operator: run request to Job, memory (real API server)",
     ["operator_bench.py", "50", "200"]),
    ("Agents: full read direct vs through one and two agents, gateway memory (Samba lab)",
     ["agent_bench.py"]),
    ("Password sync: NT hashes read by DRSUAPI (full, per object), set by SAMR (Samba lab)",
     ["password_bench.py"]),
    ("Entra ID: sustained writes under the write quota, full read of 50,000 users (emulator)",
     ["entra_bench.py"]),
    ("DC agent password sync: change on a Samba DC to cleartext in the agent (Samba lab)",
     ["dc_agent_bench.py"]),
    ("DC agent password sync end to end: change on the source DC to set on the target"
     " (Samba lab, gateway, agents; within seconds)", ["relay_bench.py"]),
    ("Device ReACL: files per second, replace and add (10,000 files, smbd-written ACLs)",
     ["device_reacl_bench.py"]),
    ("Device gateway: 10,000 simulated device agents enrolling and polling runbooks over"
     " mTLS (memory, time to hand out a wave, polls/s)",
     ["device_gateway_bench.py", "--devices", "10000"]),
]


def main() -> int:
    failed = 0
    for title, (script, *args) in BENCHES:
        print(f"\n=== {title} ===", flush=True)
        done = subprocess.run([sys.executable, str(HERE / script), *args], check=False)
        failed += done.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
