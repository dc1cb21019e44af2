"""The Samba and MIT Kerberos client tools, run the way a user of the lab would run them.

Each call gets its own folder: a client smb.conf whose lock, state, cache and private folders
are there (the machine's /etc/samba, /run/samba and /var/lib/samba stay untouched), an
authentication file instead of a password on the command line, and a ticket cache.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ferry.lab import LabDomain
from ferry.lab.services import KRB5_CONF

TOOLS = ("kinit", "klist", "kvno", "rpcclient")


def require_tools() -> None:
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} missing (`make deps` installs krb5-user, smbclient)")


class Clients:
    """Client tools against one lab, with their files under `folder`."""

    def __init__(self, lab_root: Path, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.conf = folder / "smb.conf"
        self.conf.write_text(
            "[global]\n"
            + "".join(
                f"\t{key} = {folder / sub}\n"
                for key, sub in (
                    ("lock directory", "lock"),
                    ("state directory", "state"),
                    ("cache directory", "cache"),
                    ("private dir", "private"),
                    ("ncalrpc dir", "ncalrpc"),
                )
            )
            + f"\tlog file = {folder / 'client.log'}\n",
            encoding="utf-8",
        )
        self.env = {
            **os.environ,
            "KRB5_CONFIG": str(lab_root / KRB5_CONF),
            "KRB5CCNAME": f"FILE:{folder / 'ccache'}",
        }

    def kinit(self, principal: str, password: str) -> subprocess.CompletedProcess[str]:
        """kinit with the password on stdin."""
        return self._run(["kinit", principal], stdin=password + "\n")

    def klist(self) -> subprocess.CompletedProcess[str]:
        return self._run(["klist"])

    def kvno(self, *principals: str) -> subprocess.CompletedProcess[str]:
        return self._run(["kvno", *principals])

    def rpcclient(
        self,
        binding: str,
        command: str,
        *,
        domain: LabDomain,
        user: str,
        password: str,
        extra: tuple[str, ...] = (),
    ) -> subprocess.CompletedProcess[str]:
        """rpcclient as DOMAIN\\user (NTLM unless `extra` asks for Kerberos)."""
        auth = self.folder / "auth"
        fd = os.open(auth, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"username = {user}\npassword = {password}\ndomain = {domain.netbios}\n")
        try:
            return self._run(
                ["rpcclient", "-s", str(self.conf), "-A", str(auth), *extra, binding,
                 "-c", command]
            )  # fmt: skip
        finally:
            auth.unlink()

    def rpcclient_kerberos(
        self, domain: LabDomain, command: str
    ) -> subprocess.CompletedProcess[str]:
        """rpcclient over SMB to the DC by name, with the tickets kinit left in the cache."""
        return self._run(
            ["rpcclient", "-s", str(self.conf), "--use-kerberos=required",
             f"--use-krb5-ccache={self.env['KRB5CCNAME']}", "-I", domain.ip, domain.host_name,
             "-c", command]
        )  # fmt: skip

    def _run(self, command: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, input=stdin, env=self.env, capture_output=True, text=True, timeout=120,
            check=False,
        )  # fmt: skip
