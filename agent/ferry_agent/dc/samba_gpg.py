"""The GPG side of Samba's cleartext store: which keys the DC encrypts new passwords to, whether
this agent holds one of their private keys, and decrypting one stored password into memory.

Samba keeps a new password's cleartext only encrypted, in supplementalCredentials
Primary:SambaGPG, and only when smb.conf names the keys (`password hash gpg key ids`); the
agent decrypts it with the `gpg` program (the agent has no GPG library), passing the
ciphertext on stdin and reading the cleartext from stdout: no file, no argument, no variable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import FerryAgentError

SMB_CONF_OPTION = "password hash gpg key ids"
GPG_TIMEOUT = 60.0  # one decryption; generous, the DC may be busy


class PasswordChangesError(FerryAgentError):
    """Password changes cannot be read here (`kind`: config, gpg, syncpasswords, hook); the
    message names the file, setting or account and what to do, never a password."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


def gpg_key_ids(smb_conf: Path) -> tuple[str, ...]:
    """The DC's `password hash gpg key ids`, as Samba itself reads smb.conf (testparm)."""
    testparm = shutil.which("testparm")
    if testparm is None:
        raise PasswordChangesError("config", "testparm not found; install Samba's tools"
                                   " (Debian: samba-common-bin)")
    done = subprocess.run(
        [testparm, "--suppress-prompt", f"--parameter-name={SMB_CONF_OPTION}", str(smb_conf)],
        capture_output=True, text=True, check=False, timeout=GPG_TIMEOUT,
    )
    if done.returncode != 0:
        raise PasswordChangesError("config", f"{smb_conf}: Samba cannot read it:"
                                   f" {done.stderr.strip()[-500:]}")
    ids = tuple(part for part in done.stdout.replace(",", " ").split() if part)
    if not ids:
        raise PasswordChangesError(
            "config", f"{smb_conf}: `{SMB_CONF_OPTION}` is not set, so Samba keeps no"
            f" password it could hand over; add `{SMB_CONF_OPTION} = <fingerprint>` to"
            " [global] (a key whose private part the agent's GNUPGHOME holds) and restart"
            " samba with GNUPGHOME set to a keyring holding its public part; passwords set"
            " from then on are synced")
    return ids


def gpg_environment(gnupg_home: Path) -> dict[str, str]:
    return {**os.environ, "GNUPGHOME": str(gnupg_home)}


def check_secret_key(gnupg_home: Path, key_ids: tuple[str, ...], smb_conf: Path) -> str:
    """The first of `key_ids` whose private key GNUPGHOME holds; an error naming both if none."""
    if shutil.which("gpg") is None:
        raise PasswordChangesError("gpg", "gpg not found; install GnuPG (Debian: gnupg)")
    if not gnupg_home.is_dir():
        raise PasswordChangesError("gpg", f"GNUPGHOME {gnupg_home} does not exist; name the"
                                   " folder with the private key of the DC's"
                                   f" `{SMB_CONF_OPTION}` ({smb_conf})")
    for key in key_ids:
        done = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys", "--", key],
            capture_output=True, text=True, env=gpg_environment(gnupg_home), check=False,
            timeout=GPG_TIMEOUT,
        )
        if done.returncode == 0 and any(line.startswith("sec") for line in done.stdout
                                        .splitlines()):
            return key
    raise PasswordChangesError(
        "gpg", f"GNUPGHOME {gnupg_home} holds no private key for {', '.join(key_ids)}"
        f" (`{SMB_CONF_OPTION}` in {smb_conf}); import it there (gpg --import) or name the"
        " GNUPGHOME that has it")


def decrypt(gnupg_home: Path, ciphertext: bytes, account: str) -> str:
    """One stored password: Primary:SambaGPG (a GPG message of the UTF-16LE cleartext)."""
    try:
        done = subprocess.run(
            ["gpg", "--batch", "--quiet", "--no-tty", "--decrypt"],
            input=ciphertext, capture_output=True, env=gpg_environment(gnupg_home),
            check=False, timeout=GPG_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise PasswordChangesError("gpg", f"{account}: gpg did not decrypt the password within"
                                   f" {GPG_TIMEOUT:.0f}s (GNUPGHOME {gnupg_home})") from None
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip()[-300:]
        raise PasswordChangesError("gpg", f"{account}: gpg cannot decrypt the stored password"
                                   f" with GNUPGHOME {gnupg_home}: {why}; the private key of"
                                   f" `{SMB_CONF_OPTION}` must be there, without a passphrase")
    try:
        return done.stdout.decode("utf-16-le")
    except UnicodeDecodeError:
        raise PasswordChangesError("gpg", f"{account}: the stored password is not UTF-16LE"
                                   " text (not a password Samba stored)") from None


def stop_gpg_agent(gnupg_home: Path) -> None:
    """End the gpg-agent that decrypting started for this GNUPGHOME (gpgconf starts none)."""
    if shutil.which("gpgconf") and gnupg_home.is_dir():
        subprocess.run(["gpgconf", "--kill", "gpg-agent"], env=gpg_environment(gnupg_home),
                       capture_output=True, check=False, timeout=GPG_TIMEOUT)  # fmt: skip
