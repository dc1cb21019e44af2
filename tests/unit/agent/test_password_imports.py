"""impacket stays out of an agent that does not sync passwords: importing the password modules
loads none of it; only a call that talks to a DC does."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_password_modules_loads_no_impacket() -> None:
    statement = ("import ferry_agent.passwords.replication, ferry_agent.passwords.samr,"
                 " ferry_agent.passwords.targets; import sys;"
                 " print(sorted(m for m in sys.modules if m.split('.')[0] in"
                 " ('impacket', 'Cryptodome', 'OpenSSL')))")
    done = subprocess.run([sys.executable, "-c", statement], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip() == "[]"
