"""Certificates for TLS tests, made with `cryptography`: a CA, server certificates with an IP
SAN, and client certificates signed from a CSR (as the gateway will sign an agent's)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed EC P-256 CA that issues short-lived certificates."""

    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "Ferry Test CA") -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (
            _builder(subject, subject, key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(name, key, cert)

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        """Write the CA certificate (a CA bundle of one) to `path`."""
        path.write_bytes(self.pem)
        return path

    def issue_server(self, address: str, folder: Path) -> tuple[Path, Path]:
        """A server certificate for the IP `address`; returns (cert file, key file)."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            self._leaf(_name(address), key.public_key(), ExtendedKeyUsageOID.SERVER_AUTH)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = folder / f"server-{address}.crt", folder / f"server-{address}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file

    def sign_csr(self, csr_pem: bytes) -> bytes:
        """A client certificate (PEM) for the CSR's key and subject."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the CSR's signature is not valid")
        cert = self._leaf(csr.subject, csr.public_key(), ExtendedKeyUsageOID.CLIENT_AUTH).sign(
            self.key, hashes.SHA256()
        )
        return cert.public_bytes(serialization.Encoding.PEM)

    def _leaf(
        self, subject: x509.Name, public_key: object, usage: x509.ObjectIdentifier
    ) -> x509.CertificateBuilder:
        return (
            _builder(subject, self.cert.subject, public_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _builder(subject: x509.Name, issuer: x509.Name, public_key: object) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
    )
