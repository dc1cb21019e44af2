"""Keys and key files: what the agent's identity and the gateway's CA share.

Keys are EC P-256 in unencrypted PKCS#8 PEM: a service that starts unattended would need a
passphrase beside the key, so owner-only file modes are the protection.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

FOLDER_MODE = 0o700
FILE_MODE = 0o600
_POSIX = os.name == "posix"


def new_key() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    """A new EC P-256 key and its PEM (PKCS#8, unencrypted)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())


def same_key(cert: x509.Certificate, key: PrivateKeyTypes) -> bool:
    """Whether `cert` is for `key`."""
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)


def write_atomically(path: Path, data: bytes, mode: int = FILE_MODE) -> None:
    """Replace `path` with `data`, `mode` set before the first byte (a key is never readable by
    others); readers see the old file or the new one, and so does a power cut."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        if _POSIX:  # on Windows the folder's ACL protects the files
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    if _POSIX:  # the rename itself must survive a power cut too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
