"""Job credentials: short-lived tokens that bind whoever holds one to a few environments.

The operator (or an admin, `ferry job-credential create`) signs each with the job signing key,
an EC P-256 key; the gateway holds only its public half and verifies. A token is a JWT (ES256)
whose claims say who it is for (`sub`: one run), what it may do (`role`), which environments
it may reach (`environments`) and until when (`exp`). Nothing is stored: a token is valid
because of its signature, until it expires. Sync Jobs get one per run; the operator signs one
for itself for each agents check (`role: operator`: list agents, never submit work).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ferry.errors import FerryError, InvalidInput
from ferry_agent.certificates import new_key

AUDIENCE = "ferry-gateway"
ISSUER = "ferry"
ALGORITHM = "ES256"
ROLE_JOB = "job"            # submit work to, and collect results from, its environments
ROLE_OPERATOR = "operator"  # list the agents of any environment; nothing else
ROLES = (ROLE_JOB, ROLE_OPERATOR)
MAX_TTL = timedelta(days=7)
LEEWAY_SECONDS = 60         # clocks of the operator's and the gateway's nodes may differ
MAX_TOKEN_CHARS = 16_384    # a few hundred environments; anything longer is not ours


class JobAuthError(InvalidInput):
    """A signing or verification key that cannot be used; the message names the file."""


class CredentialRefused(FerryError):
    """The token is malformed, forged, expired or not for this gateway; `reason` is for the
    gateway's log, never for the caller."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class JobCredential:
    """What a verified token says."""

    subject: str
    role: str
    environments: frozenset[str]
    expires: datetime

    def binds(self, environment: str) -> bool:
        return environment in self.environments


def new_signing_key() -> tuple[bytes, bytes]:
    """A new key pair as PEM: (private key for the operator, public key for the gateway)."""
    key, private = new_key()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


def write_signing_key(folder: Path) -> tuple[Path, Path]:
    """A new key pair in folder: job-signing.key (owner-only) and job-signing.pub."""
    private, public = new_signing_key()
    folder.mkdir(parents=True, exist_ok=True)
    key_file, pub_file = folder / "job-signing.key", folder / "job-signing.pub"
    for path in (key_file, pub_file):
        if path.exists():
            raise JobAuthError(f"{path} exists already; remove it or pick another folder")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    pub_file.write_bytes(public)
    return key_file, pub_file


def load_signing_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The job signing key (PEM, EC P-256, unencrypted: it is mounted from a Secret)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise JobAuthError(f"job signing key {path}: {exc.strerror}") from None
    except (ValueError, TypeError) as exc:
        raise JobAuthError(f"job signing key {path}: not an unencrypted PEM key ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise JobAuthError(f"job signing key {path}: expected an EC P-256 key")
    return key


def load_verify_key(path: Path) -> ec.EllipticCurvePublicKey:
    """The public half of the job signing key: a PEM public key, or a certificate holding it."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JobAuthError(f"--job-key {path}: {exc.strerror}") from None
    key: object
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            key = x509.load_pem_x509_certificate(data).public_key()
        elif b"PRIVATE KEY-----" in data:
            raise JobAuthError(f"--job-key {path}: this is a private key; the gateway gets the"
                               " public half only (job-signing.pub)")
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise JobAuthError(f"--job-key {path}: not a PEM public key or certificate"
                           f" ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise JobAuthError(f"--job-key {path}: expected an EC P-256 public key")
    return key


def mint(key: ec.EllipticCurvePrivateKey, subject: str, environments: Iterable[str],
         ttl: timedelta, role: str = ROLE_JOB, now: datetime | None = None) -> str:
    """A signed token for `subject`, bound to `environments`, valid for `ttl`."""
    if role not in ROLES:
        raise ValueError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    if not timedelta(0) < ttl <= MAX_TTL:
        raise ValueError(f"a job credential lives between 1 s and {MAX_TTL.days} days")
    issued = now or datetime.now(UTC)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": subject, "role": role,
              "environments": sorted(set(environments)), "iat": issued,
              "exp": issued + ttl, "jti": secrets.token_hex(8)}
    return jwt.encode(claims, key, algorithm=ALGORITHM)


def verify(key: ec.EllipticCurvePublicKey, token: str) -> JobCredential:
    """The credential the token carries, if this key signed it and it has not expired."""
    if len(token) > MAX_TOKEN_CHARS:
        raise CredentialRefused("token too long")
    try:
        claims = jwt.decode(token, key, algorithms=[ALGORITHM], audience=AUDIENCE,
                            issuer=ISSUER, leeway=LEEWAY_SECONDS,
                            options={"require": ["exp", "iat", "sub", "aud", "iss"]})
    except jwt.ExpiredSignatureError:
        raise CredentialRefused("token expired") from None
    except jwt.InvalidTokenError as exc:
        raise CredentialRefused(f"token invalid: {type(exc).__name__}") from None
    role, environments, subject = claims.get("role"), claims.get("environments"), claims["sub"]
    if role not in ROLES or not isinstance(subject, str) or not isinstance(environments, list) \
            or not all(isinstance(e, str) for e in environments):
        raise CredentialRefused("token claims malformed")
    return JobCredential(subject, role, frozenset(environments),
                         datetime.fromtimestamp(claims["exp"], UTC))
