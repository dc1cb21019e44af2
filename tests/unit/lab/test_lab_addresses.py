"""Two test sessions starting labs at the same moment never get the same loopback address."""

from __future__ import annotations

import subprocess
import sys

ASK = ("import sys; from ferry.lab.samba import free_addresses;"
       " print(' '.join(free_addresses(2, first=200)), flush=True); sys.stdin.read()")


def test_an_address_handed_to_one_process_is_not_handed_to_another() -> None:
    first = subprocess.Popen([sys.executable, "-c", ASK], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert first.stdout is not None
        held = first.stdout.readline().split()  # nothing listens on them: only the hold counts
        second = subprocess.run([sys.executable, "-c", ASK], input="", capture_output=True,
                                text=True, timeout=120, check=True)
        assert len(held) == 2
        assert not set(held) & set(second.stdout.split()), (held, second.stdout)
    finally:
        first.communicate(input="", timeout=120)
