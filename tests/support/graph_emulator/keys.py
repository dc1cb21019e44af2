"""Credential material for tests: an app's certificate (for CertificateCredential) and an
external OIDC issuer that signs workload identity tokens (for ClientAssertionCredential and
WorkloadIdentityCredential). Register the public halves with `EmulatorAdmin.register_app`."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .state import TOKEN_EXCHANGE_AUDIENCE


def _private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@dataclass(frozen=True)
class AppCertificate:
    """A self-signed RSA certificate, as uploaded to an app registration (Entra wants RSA)."""

    cert_pem: bytes
    key_pem: bytes

    @classmethod
    def create(cls, name: str = "ferry-sync") -> AppCertificate:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=2))
            .sign(key, hashes.SHA256())
        )
        return cls(cert.public_bytes(serialization.Encoding.PEM), _private_pem(key))

    def write(self, path: Path) -> Path:
        """Key and certificate in one PEM file: what `CertificateCredential(certificate_path=)`
        reads."""
        path.write_bytes(self.key_pem + self.cert_pem)
        path.chmod(0o600)
        return path


@dataclass(frozen=True)
class FederatedIssuer:
    """An external identity provider (a Kubernetes service account issuer, say)."""

    issuer: str
    key: rsa.RSAPrivateKey
    key_id: str

    @classmethod
    def create(cls, issuer: str = "https://oidc.ferry.test/cluster") -> FederatedIssuer:
        return cls(issuer, rsa.generate_private_key(public_exponent=65537, key_size=2048),
                   uuid.uuid4().hex)

    @property
    def public_key_pem(self) -> str:
        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def token(self, subject: str, audience: str = TOKEN_EXCHANGE_AUDIENCE,
              lifetime: int = 600) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": [audience], "iat": now,
                  "nbf": now, "exp": now + lifetime, "jti": uuid.uuid4().hex}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.key_id})

    def write_token(self, path: Path, subject: str, audience: str = TOKEN_EXCHANGE_AUDIENCE,
                    lifetime: int = 600) -> Path:
        """A projected service account token file, as WorkloadIdentityCredential reads."""
        path.write_text(self.token(subject, audience, lifetime))
        return path
