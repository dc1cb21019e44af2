"""Start-up benchmark: how long `ferry --help` and `ferry-agent --help` take, against 0.3 s.

    python bench/startup_bench.py [RUNS]      (default: 5; the best run counts)

Each command runs as a user runs it, a fresh interpreter per run; the best of RUNS is what the
code costs (the others measure the machine's other work). Beside the wall time,
`python -X importtime` gives the cumulative import time of the command's module, the part
of the start-up that Ferry's own imports decide. Exit 1 when a command is over the limit.
"""

from __future__ import annotations

import subprocess
import sys
import time

LIMIT_S = 0.3
COMMANDS = [  # (shown as, argv after the interpreter, the module `import` loads)
    ("ferry --help", ["-m", "ferry", "--help"], "ferry.cli"),
    ("ferry-agent --help", ["-m", "ferry_agent.cli", "--help"], "ferry_agent.cli"),
]


def wall_seconds(argv: list[str]) -> float:
    """One run of the command, start to exit."""
    started = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True)
    return time.perf_counter() - started


def import_seconds(module: str) -> float:
    """Cumulative import time of `module` in a fresh interpreter, from -X importtime."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          check=True, capture_output=True, text=True)
    # Lines read "import time: self [us] | cumulative | name"; the module's own comes last.
    for line in reversed(done.stderr.splitlines()):
        _, cumulative, name = line.split("|")
        if name.strip() == module:
            return int(cumulative) / 1e6
    raise RuntimeError(f"-X importtime did not report {module}")


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv else 5
    print(f"{'command':<20} {'best s':>7} {'worst s':>8} {'import s':>9} {'limit s':>8}")
    over = 0
    for shown, args, module in COMMANDS:
        walls = [wall_seconds(args) for _ in range(runs)]
        imported = min(import_seconds(module) for _ in range(runs))
        verdict = "within" if min(walls) < LIMIT_S else "OVER"
        over += verdict == "OVER"
        print(f"{shown:<20} {min(walls):>7.3f} {max(walls):>8.3f} {imported:>9.3f} "
              f"{LIMIT_S:>8.1f}  {verdict}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
