"""Manifests, objects and the ferry CLI for the report tests on the session's Samba lab."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from ferry.lab.samba import LabDomain

ENVIRONMENT = """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  type: ActiveDirectory
  connection: direct
  activeDirectory:
    host: {ip}
    port: 636
    baseDN: {base}
    tls: {{ca: {{secretKeyRef: {{name: {name}-ad, key: ca.pem}}}}}}
    credentials:
      username: Administrator@{realm}
      password: {{secretKeyRef: {{name: {name}-ad, key: password}}}}
  scope:
    ous: ["{ou}"]
    objectTypes: [{types}]
"""
_EPOCH_TICKS = 116444736000000000   # FILETIME of 1970-01-01


def environment(name: str, domain: LabDomain, ou: str, types: str = "users, groups") -> str:
    realm = domain.base_dn.replace("DC=", "").replace(",", ".").lower()
    return ENVIRONMENT.format(name=name, ip=domain.ip, base=domain.base_dn, realm=realm, ou=ou,
                              types=types)


def add(domain: LabDomain, dn: str, classes: list[str], **attributes: object) -> str:
    conn = domain.connect()
    try:
        assert conn.add(dn, classes, attributes), conn.result
    finally:
        conn.unbind()
    return dn


def add_user(domain: LabDomain, ou: str, sam: str, *, enabled: bool = True,
             **attributes: str) -> str:
    """CN=sam in ou: enabled without a password (NORMAL_ACCOUNT | PASSWD_NOTREQD), or
    disabled as well."""
    return add(domain, f"CN={sam},{ou}", ["top", "person", "organizationalPerson", "user"],
               sAMAccountName=sam, userAccountControl=str(0x220 if enabled else 0x222),
               **attributes)


def modify(domain: LabDomain, dn: str, **values: str) -> None:
    conn = domain.connect()
    try:
        assert conn.modify(dn, {k: [("MODIFY_REPLACE", [v])] for k, v in values.items()}), \
            conn.result
    finally:
        conn.unbind()


def filetime(when: datetime) -> str:
    return str(_EPOCH_TICKS + int(when.timestamp() * 10_000_000))


class Ferry:
    """The ferry CLI as a user runs it, in one folder with one state store."""

    def __init__(self, folder: Path, secrets: Path) -> None:
        self.folder, self.secrets = folder, secrets
        self.manifests = folder / "manifests"
        self.state = folder / "state.sqlite"

    def __call__(self, *args: str, binary: bool = False) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "ferry", *args, "--state", str(self.state)]
        env = {**os.environ, "FERRY_SECRETS_DIR": str(self.secrets), "COLUMNS": "200"}
        return subprocess.run(command, env=env, cwd=self.folder, capture_output=True,
                              text=not binary, timeout=300, check=False)

    def ok(self, *args: str) -> str:
        done = self(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout
