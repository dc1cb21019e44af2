"""Hives read back by parsers other than the agent's: Samba's `profiles -v` (regfio) for key
security, libregf (python3-libregf) for keys and values."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

_LIBREGF = r'''
import json, sys
import pyregf
hive = pyregf.file()
hive.open(sys.argv[1])
out = {"corrupted": bool(hive.is_corrupted()), "keys": {}}
todo = [("", hive.get_root_key())]
while todo:
    path, key = todo.pop()
    values = {}
    for value in key.values:
        data = value.data or b""
        values[value.name or ""] = data.hex()
    out["keys"][path] = values
    todo.extend((path + "\\" + sub.name, sub) for sub in key.sub_keys)
print(json.dumps(out))
'''


def key_acls(hive: Path, work: Path) -> dict[str, dict[str, Any]]:
    """{key path: {"owner", "group", "dacl": [trustee SIDs]}} as Samba's profiles tool reads
    them (run on a copy: it also writes <copy>.new)."""
    if shutil.which("profiles") is None:
        pytest.skip("Samba's profiles tool is not installed (package samba)")
    copy = work / f"{hive.name}.profiles-copy"
    shutil.copyfile(hive, copy)
    done = subprocess.run(["profiles", "-v", str(copy)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    acls: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        if match := re.fullmatch(r"ACL for (.*)", line):
            current = acls[match.group(1)] = {"dacl": []}
        elif match := re.fullmatch(r"\s+(Owner|Group) SID: (\S+)", line):
            current[match.group(1).lower()] = match.group(2)
        elif match := re.fullmatch(r"\s+Trustee SID: (\S+)", line):
            current["dacl"].append(match.group(1))
    copy.unlink()
    Path(f"{copy}.new").unlink(missing_ok=True)
    return acls


def libregf_read(hive: Path) -> dict[str, Any]:
    """{"corrupted": bool, "keys": {path: {value name: data hex}}} as libregf reads it."""
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", _LIBREGF, str(hive)],
                          capture_output=True, text=True, check=False)
    if "No module named 'pyregf'" in done.stderr:
        pytest.skip("python3-libregf is not installed (`make deps` installs it)")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))
