"""Ferry's agent CA: loaded from files, or created once in a folder; signs agents' CSRs."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ferry.errors import InvalidInput
from ferry_agent.certificates import FOLDER_MODE, new_key, same_key, write_atomically

CA_CERT_FILE = "ca.crt"
CA_KEY_FILE = "ca.key"
AGENT_URI_PREFIX = "urn:ferry:agent:"
AGENT_CERT_DAYS = 365
CA_DAYS = 3650
_BACKDATE = timedelta(minutes=5)  # tolerate clocks a little behind the gateway's
_EC_CURVES = (ec.SECP256R1, ec.SECP384R1, ec.SECP521R1)


class CAError(InvalidInput):
    """The CA's files are missing, unreadable or unusable; the message names the file."""


class CSRError(InvalidInput, ValueError):
    """A certificate signing request that Ferry does not sign; the text says why."""


@dataclass(frozen=True)
class AgentCA:
    """The CA whose certificates identify agents (CN and a urn:ferry:agent: URI = agent id)."""

    cert: x509.Certificate
    key: CertificateIssuerPrivateKeyTypes

    @classmethod
    def load(cls, cert_file: Path, key_file: Path) -> AgentCA:
        """The CA from a PEM certificate and an unencrypted PEM key (e.g. a mounted Secret)."""
        cert = _load_cert(cert_file)
        key = _load_key(key_file)
        if not same_key(cert, key):
            raise CAError(f"{key_file}: this key does not belong to the certificate {cert_file}")
        return cls(cert, key)

    @classmethod
    def load_or_create(cls, folder: Path, name: str = "Ferry Agent CA") -> AgentCA:
        """ca.crt and ca.key in `folder`, made on first use (key 0600); never replaced."""
        folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        cert_file, key_file = folder / CA_CERT_FILE, folder / CA_KEY_FILE
        with _locked(folder / ".ca.lock"):  # two gateways starting at once make one CA
            if cert_file.exists() and key_file.exists():
                return cls.load(cert_file, key_file)
            if cert_file.exists():
                raise CAError(f"{key_file} is missing but {cert_file} exists; restore the key"
                              " (agents enrolled with this CA would be cut off otherwise)")
            if key_file.exists():  # a crash between the two writes: finish the job
                key = _load_key(key_file)
            else:
                key, pem = new_key()
                write_atomically(key_file, pem)
            cert = _self_signed(key, name)
            write_atomically(cert_file, cert.public_bytes(serialization.Encoding.PEM), 0o644)
            return cls(cert, key)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def sign_agent(self, csr: x509.CertificateSigningRequest, agent_id: str, *,
                   days: int = AGENT_CERT_DAYS, now: datetime | None = None) -> x509.Certificate:
        """A client certificate for the CSR's key: CN = agent id, URI SAN, client-auth EKU."""
        now = now or datetime.now(UTC)
        not_after = min(now + timedelta(days=days), self.cert.not_valid_after_utc)
        ca_public = self.key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
            .issuer_name(self.cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(
                [x509.UniformResourceIdentifier(AGENT_URI_PREFIX + agent_id)]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_public),
                           critical=False)
            .sign(self.key, _hash_for(self.key))
        )


def check_csr(pem: str) -> x509.CertificateSigningRequest:
    """Parse a PEM CSR and check its signature and key strength; CSRError says what is wrong."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise CSRError("csr: not a PEM certificate signing request") from None
    if not csr.is_signature_valid:
        raise CSRError("csr: the signature does not match its key")
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, _EC_CURVES):
            raise CSRError(f"csr: curve {key.curve.name} is not accepted (use P-256)")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise CSRError(f"csr: an RSA key of {key.key_size} bits is too small (2048+)")
    elif not isinstance(key, ed25519.Ed25519PublicKey):
        raise CSRError(f"csr: {type(key).__name__} keys are not accepted (use EC P-256)")
    return csr


def issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` signed `cert`."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def agent_id_of(cert: x509.Certificate) -> str | None:
    """The agent id a certificate names in its urn:ferry:agent: URI, if it has exactly one."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    ids = [uri[len(AGENT_URI_PREFIX):]
           for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
           if uri.startswith(AGENT_URI_PREFIX)]
    return ids[0] if len(ids) == 1 and ids[0] else None


def _self_signed(key: CertificateIssuerPrivateKeyTypes, name: str) -> x509.Certificate:
    now = datetime.now(UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Ferry"),
                         x509.NameAttribute(NameOID.COMMON_NAME, name)])
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, _hash_for(key))
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False)


def _hash_for(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | None:
    # Ed25519/Ed448 sign without a separate digest.
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def _load_cert(path: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise CAError(f"{path}: cannot read the CA certificate: {exc.strerror}") from None
    except ValueError:
        raise CAError(f"{path}: not a PEM certificate") from None


def _load_key(path: Path) -> CertificateIssuerPrivateKeyTypes:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise CAError(f"{path}: cannot read the CA key: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise CAError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
                      | ed25519.Ed25519PrivateKey):
        raise CAError(f"{path}: a {type(key).__name__} cannot sign certificates here")
    return key


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock
