"""Device ReACL benchmark: files ReACL'd per second on a real smbd file server (acl_xattr).

    python bench/device_reacl_bench.py [--folders 100] [--files 100]

Seeds FOLDERS x FILES files (10,000 by default, plus the folders) whose NT ACLs smbd wrote
(templates set with smbcacls over SMB, copied to every object), then times reacl_files on
the tree: replace, a repeat of it (nothing to change), and add on a fresh tree. Prints one
JSON document; the numbers depend on the machine's load, which is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ferry.lab.fileserver import file_server, seed_tree, template_acls  # noqa: E402
from ferry.lab.samba import free_addresses  # noqa: E402
from ferry_agent.device.descriptor import SidMap  # noqa: E402
from ferry_agent.device.files import reacl_files  # noqa: E402
from ferry_agent.device.outcome import ReaclMode  # noqa: E402

SRC = "S-1-5-21-1004336348-1177238915-682003330"
TGT = "S-1-5-21-3623811015-3361044348-30300820"
TABLE = {f"{SRC}-1102": f"{TGT}-2201", f"{SRC}-1104": f"{TGT}-3104", f"{SRC}-513": f"{TGT}-513"}


def timed(label: str, root: Path, mode: ReaclMode) -> dict[str, object]:
    started = time.perf_counter()
    figures = reacl_files([root], SidMap(TABLE), mode, SRC)
    seconds = time.perf_counter() - started
    return {"run": label, "objects": figures.scanned, "changed": figures.changed,
            "errors": figures.error_count, "seconds": round(seconds, 2),
            "objects_per_s": round(figures.scanned / seconds)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--folders", type=int, default=100)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    (ip,) = free_addresses(1)
    results = []
    with tempfile.TemporaryDirectory(prefix="ferry-reacl-bench-") as work, \
            file_server(Path(work), ip) as server:
        acls = template_acls(SRC)
        started = time.perf_counter()
        tree = seed_tree(server, "replace", acls, args.folders, args.files)[0]
        seeded = time.perf_counter() - started
        results.append(timed("replace", tree, ReaclMode.REPLACE))
        results.append(timed("replace again (no-op)", tree, ReaclMode.REPLACE))
        tree = seed_tree(server, "add", acls, args.folders, args.files)[0]
        results.append(timed("add", tree, ReaclMode.ADD))
    print(json.dumps({"files": args.folders * args.files, "folders": args.folders + 1,
                      "seed_seconds": round(seeded, 1), "results": results,
                      "load_average": os.getloadavg(), "cpus": os.cpu_count()}, indent=1))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
