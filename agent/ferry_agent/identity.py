"""The agent's identity: an EC P-256 key and its CSR, then the certificate and CA bundle from
enrollment, kept in a state folder only the agent's user can read (0700 folder, 0600 files).

The key is stored unencrypted, like an SSH host key: a passphrase would have to sit beside it
for an unattended service, so the file permissions are the protection, and they are checked on
every load. On Windows the folder's ACL is the installer's job and mode bits are not checked.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from ferry_agent.certificates import FILE_MODE, FOLDER_MODE, new_key, same_key, write_atomically
from ferry_agent.errors import FerryAgentError

KEY_FILE = "agent.key"
CERT_FILE = "agent.crt"
CA_FILE = "ca.crt"
# A certificate's CN is at most 64 characters (RFC 5280 ub-common-name).
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_POSIX = os.name == "posix"


class IdentityError(FerryAgentError):
    """An identity file or the state folder is missing, unreadable, invalid or too open."""

    def __init__(self, path: Path, problem: str):
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class Identity:
    """A loaded identity: the file paths (for ssl.SSLContext) and what the certificate says."""

    folder: Path
    key_file: Path
    cert_file: Path
    ca_file: Path | None  # verifies the gateway; None: the system trust store
    name: str  # the certificate's subject CN
    not_valid_after: datetime


def create_key(folder: Path, agent_name: str) -> bytes:
    """Make a new key in `folder` (created 0700 if missing) and return a PEM CSR for it.

    The CSR's subject is CN=`agent_name`. An existing key is replaced: enrolling again means a
    new key, so a certificate left from an earlier enrollment no longer matches and is removed.
    """
    if not _AGENT_NAME.fullmatch(agent_name):
        raise ValueError(
            f"agent name {agent_name!r} is not usable: 1-64 characters, letters, digits,"
            " '.', '-' or '_', starting with a letter or digit"
        )
    ensure_folder(folder)
    key, pem = new_key()
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_name)]))
           .sign(key, hashes.SHA256()))
    for stale in (CERT_FILE, CA_FILE):
        with contextlib.suppress(FileNotFoundError):
            (folder / stale).unlink()
    write_atomically(folder / KEY_FILE, pem)
    return csr.public_bytes(serialization.Encoding.PEM)


def store_certificate(folder: Path, cert_pem: bytes, ca_pem: bytes | None) -> Identity:
    """Keep the enrolled certificate (and the CA bundle that verifies the gateway) and load all.

    The certificate must be for the key already in `folder`; `ca_pem` None keeps no bundle, so
    the gateway is then verified against the system trust store.
    """
    key_path = folder / KEY_FILE
    key = _load_key(key_path)
    cert_path = folder / CERT_FILE
    leaf = _parse_certificates(cert_path, cert_pem)[0]
    if not same_key(leaf, key):
        raise IdentityError(cert_path, f"the certificate received is not for the key in {key_path}")
    if ca_pem is not None:
        _parse_certificates(folder / CA_FILE, ca_pem)
    write_atomically(cert_path, cert_pem)
    if ca_pem is not None:
        write_atomically(folder / CA_FILE, ca_pem)
    else:
        with contextlib.suppress(FileNotFoundError):
            (folder / CA_FILE).unlink()
    return load_identity(folder)


def load_identity(folder: Path) -> Identity:
    """Load and check the identity in `folder`; IdentityError names the file at fault."""
    _check_owner_only(folder, folder=True, missing="run `ferry-agent enroll` first")
    key_path, cert_path, ca_path = folder / KEY_FILE, folder / CERT_FILE, folder / CA_FILE
    key = _load_key(key_path)
    leaf = _parse_certificates(cert_path, _read_private(cert_path))[0]
    if not same_key(leaf, key):
        raise IdentityError(cert_path, f"certificate does not match the key in {key_path}")
    has_ca = ca_path.exists()
    if has_ca:
        _parse_certificates(ca_path, _read_private(ca_path))
    names = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not names:
        raise IdentityError(cert_path, "certificate has no subject CN (the agent's name)")
    return Identity(
        folder=folder,
        key_file=key_path,
        cert_file=cert_path,
        ca_file=ca_path if has_ca else None,
        name=str(names[0].value),
        not_valid_after=leaf.not_valid_after_utc,
    )


def private_key(identity: Identity) -> ec.EllipticCurvePrivateKey:
    """The identity's key: what secrets sealed to this agent open with (ferry_agent.sealed)."""
    key = _load_key(identity.key_file)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IdentityError(identity.key_file, "not an EC key; run `ferry-agent enroll` again")
    return key


def ensure_folder(folder: Path) -> None:
    """Create `folder` 0700 (parents as usual) or check that an existing one is owner-only.

    An existing folder that is too open is refused, not tightened: it may be shared (/tmp).
    """
    try:
        folder.mkdir(mode=FOLDER_MODE, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise IdentityError(folder, f"cannot create the state folder: {exc.strerror}") from None
    else:
        if _POSIX:
            os.chmod(folder, FOLDER_MODE)  # mkdir's mode is narrowed by the umask, never widened
    _check_owner_only(folder, folder=True, missing="")


def _check_owner_only(path: Path, *, folder: bool, missing: str) -> None:
    what, mode = ("folder", FOLDER_MODE) if folder else ("file", FILE_MODE)
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = f"; {missing}" if missing else ""
        raise IdentityError(path, f"{what} not found{hint}") from None
    except OSError as exc:
        raise IdentityError(path, f"cannot read the {what}: {exc.strerror}") from None
    if not (stat.S_ISDIR if folder else stat.S_ISREG)(st.st_mode):
        raise IdentityError(path, "not a folder" if folder else "not a regular file")
    if not _POSIX:
        return
    if st.st_uid != os.geteuid():
        raise IdentityError(
            path, f"{what} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
        )
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise IdentityError(
            path,
            f"{what} is readable by others (mode {stat.S_IMODE(st.st_mode):04o});"
            f" run `chmod {mode:o} {path}`",
        )


def _read_private(path: Path) -> bytes:
    _check_owner_only(path, folder=False, missing="run `ferry-agent enroll` again")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IdentityError(path, f"cannot read the file: {exc.strerror}") from None


def _load_key(path: Path) -> PrivateKeyTypes:
    data = _read_private(path)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise IdentityError(path, "not an unencrypted PEM private key") from None


def _parse_certificates(path: Path, pem: bytes) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise IdentityError(path, "not PEM certificates") from None
