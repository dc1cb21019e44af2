"""Each lab DC's GPG key: Samba stores every new password encrypted to it (Primary:SambaGPG in
supplementalCredentials), which is what the DC agent's password sync reads (DCAgent mode).

The key lives in <dc>/gnupg (0700), made on the DC's first `ferry lab up` without a passphrase
(ed25519 with a cv25519 encryption subkey: ~50 ms, a few times faster than RSA-2048);
smb.conf names it in `password hash gpg key ids`, and samba starts with GNUPGHOME=<dc>/gnupg.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ferry.errors import FerryError

FOLDER = "gnupg"
SMB_CONF_OPTION = "password hash gpg key ids"


class LabGpgError(FerryError):
    """The DC's GPG key could not be made or read; the message says what to do."""


def gnupg_home(folder: Path) -> Path:
    """The DC's GNUPGHOME (seen from outside its namespace, the same path inside)."""
    return folder / FOLDER


def ensure_key(folder: Path) -> str:
    """The fingerprint of the DC's key, made first if the DC has none."""
    home = gnupg_home(folder)
    home.mkdir(mode=0o700, exist_ok=True)
    os.chmod(home, 0o700)  # gpg refuses (warns about) a home others can read
    fingerprint = _fingerprint(home)
    if fingerprint:
        return fingerprint
    realm = folder.name
    _gpg(home, "--passphrase", "", "--quick-gen-key", f"Ferry lab DC <dc1@{realm}>",
         "future-default", "default", "never")  # fmt: skip
    fingerprint = _fingerprint(home)
    # Making a key starts a gpg-agent for this home; the lab needs none running.
    stop_agent(home)
    if not fingerprint:
        raise LabGpgError(f"{home}: gpg made no key; run `gpg --homedir {home} -k` to see why")
    return fingerprint


def stop_agent(home: Path) -> None:
    """End the gpg-agent of this GNUPGHOME, if one runs (gpgconf starts none)."""
    gpgconf = shutil.which("gpgconf")
    if gpgconf and home.is_dir():
        subprocess.run([gpgconf, "--kill", "gpg-agent"], env={**os.environ, "GNUPGHOME": str(home)},
                       capture_output=True, check=False)  # fmt: skip


def _fingerprint(home: Path) -> str:
    # Public keys: listing secret ones would start a gpg-agent. Only ensure_key adds keys here,
    # and always with their secret part.
    listed = _gpg(home, "--with-colons", "--list-keys")
    for line in listed.splitlines():
        fields = line.split(":")
        if fields[0] == "fpr" and len(fields) > 9:
            return fields[9]  # the first fpr line follows the primary key's sec line
    return ""


def _gpg(home: Path, *args: str) -> str:
    if shutil.which("gpg") is None:
        raise LabGpgError("gpg not found; install Debian's gnupg (`make deps` does)")
    done = subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", *args],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise LabGpgError(f"gpg in {home} failed (exit {done.returncode}):"
                          f" {done.stderr.strip()[-500:]}")
    return done.stdout
