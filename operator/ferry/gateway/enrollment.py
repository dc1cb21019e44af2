"""Enrollment: expiring tokens (only their SHA-256 is stored) exchanged for a certificate from
the agent CA: an agent's token works once, a device token (of a DeviceMigration) as often as
it allows. Both check the request the same way, and the CSR before the token is used."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ferry.errors import FerryError
from ferry.gateway.ca import AgentCA, check_csr
from ferry.state.rows import AgentInfo, DeviceAgentInfo
from ferry.state.store import StateStore
from ferry_agent.protocol import (
    DeviceEnrollRequest,
    DeviceEnrollResponse,
    EnrollRequest,
    EnrollResponse,
    ProtocolError,
)

MAX_TTL = timedelta(days=30)
# As ferry_agent.identity: a certificate CN is at most 64 characters.
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Environment names as they appear in manifests (Kubernetes names), with room for NS/NAME.
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}")
# A DeviceMigration: namespace/name, as Kubernetes names them.
_MIGRATION = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[a-z0-9]([-.a-z0-9]{0,251}[a-z0-9])?")
# A computer name: a NetBIOS name, at most 15 characters (sAMAccountName is NAME$).
_COMPUTER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,14}")
_LABEL_KEY = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,98}[A-Za-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?")
MAX_LABELS = 32
DEVICE_OS = ("linux", "windows")
_TTL = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class EnrollmentRefused(FerryError):
    """The token is unknown, used or expired; `reason` is for the log, never for the caller."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"enrollment refused: token {reason}")


def new_token() -> str:
    """256 random bits, URL-safe: nothing to guess, nothing to escape in a shell."""
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def parse_ttl(text: str) -> timedelta:
    """'90s', '30m', '24h' or '7d' (at most 30 days)."""
    match = _TTL.fullmatch(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"TTL {text!r} is not usable: give a number and a unit, e.g. 30m,"
                         " 24h or 7d")
    ttl = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if ttl > MAX_TTL:
        raise ValueError(f"TTL {text!r} is longer than 30 days; enrollment tokens are short-lived")
    return ttl


def check_environment(name: str) -> str:
    if not _ENVIRONMENT.fullmatch(name):
        raise ValueError(f"environment {name!r} is not a usable name: letters, digits and"
                         " . _ : / -, starting with a letter or digit, at most 253")
    return name


def check_migration(name: str) -> str:
    if not _MIGRATION.fullmatch(name):
        raise ValueError(f"migration {name!r} is not a DeviceMigration's NAMESPACE/NAME (lower"
                         " case letters, digits and -, e.g. default/wave-one)")
    return name


def create_token(store: StateStore, environment: str, ttl: timedelta) -> tuple[str, datetime]:
    """A new token for `environment` and when it expires; the caller shows it once."""
    token = new_token()
    expires = datetime.now(UTC) + ttl
    store.agents.add_token(token_hash(token), check_environment(environment), expires)
    return token, expires


def create_device_token(store: StateStore, migration: str, ttl: timedelta,
                        max_uses: int | None) -> tuple[str, datetime]:
    """A new device token of `migration`: None uses until revoked or expired (a wave token),
    or at most `max_uses` devices; and when it expires. The caller shows it once."""
    if max_uses is not None and max_uses < 1:
        raise ValueError(f"a token that enrolls {max_uses} devices is of no use: give 1 or more")
    token = new_token()
    expires = datetime.now(UTC) + ttl
    store.devices.add_token(token_hash(token), check_migration(migration), max_uses, expires)
    return token, expires


def enroll(store: StateStore, ca: AgentCA, request: EnrollRequest,
           trust_bundle: str) -> tuple[EnrollResponse, AgentInfo]:
    """Check the request, use the token (once), register the agent and sign its certificate.

    The CSR is checked before the token is used, so a malformed request does not burn it.
    """
    if not _AGENT_NAME.fullmatch(request.name):
        raise ProtocolError("EnrollRequest.name: 1-64 letters, digits, '.', '-' or '_',"
                            " starting with a letter or digit")
    csr, public_key = _checked("EnrollRequest", request.host, request.version, request.csr)
    hashed = token_hash(request.token)
    agent_id = "agent-" + secrets.token_hex(8)
    agent = store.agents.enroll(hashed, agent_id, request.name, request.host, request.version,
                                public_key)
    if agent is None:
        raise EnrollmentRefused(store.agents.token_state(hashed))
    response = EnrollResponse(agent_id=agent_id, environment=agent.environment,
                              certificate=_certificate(ca, csr, agent_id), ca=trust_bundle)
    return response, agent


def enroll_device(store: StateStore, ca: AgentCA, request: DeviceEnrollRequest,
                  trust_bundle: str) -> tuple[DeviceEnrollResponse, DeviceAgentInfo]:
    """As `enroll`, for a device agent: the token is a device token of one migration, the
    name a computer name (kept upper case), and the certificate's identity "device-<hex>"."""
    if not _COMPUTER_NAME.fullmatch(request.name):
        raise ProtocolError("DeviceEnrollRequest.name: a computer name, 1-15 letters, digits"
                            " or '-', starting with a letter or digit")
    if request.os not in DEVICE_OS:
        raise ProtocolError(f"DeviceEnrollRequest.os: {' or '.join(DEVICE_OS)}, not"
                            f" {request.os[:20]!r}")
    _check_labels(request.labels)
    csr, public_key = _checked("DeviceEnrollRequest", request.host, request.version,
                               request.csr)
    hashed = token_hash(request.token)
    agent_id = "device-" + secrets.token_hex(8)
    device = store.devices.enroll(hashed, agent_id, request.name.upper(), request.host,
                                  request.version, request.os, request.labels, public_key)
    if device is None:
        raise EnrollmentRefused(store.devices.token_state(hashed))
    response = DeviceEnrollResponse(agent_id=agent_id, migration=device.migration,
                                    certificate=_certificate(ca, csr, agent_id),
                                    ca=trust_bundle)
    return response, device


def _checked(kind: str, host: str, version: str,
             csr_pem: str) -> tuple[x509.CertificateSigningRequest, str]:
    """The request's CSR, checked, and its public key (PEM): kept so that secrets for the
    agent can be sealed to it (ferry_agent.sealed)."""
    for field, value, limit in (("host", host, 255), ("version", version, 40)):
        if not value or len(value) > limit or not value.isprintable():
            raise ProtocolError(f"{kind}.{field}: 1-{limit} printable characters")
    try:
        csr = check_csr(csr_pem)
    except ValueError as exc:
        raise ProtocolError(f"{kind}.{exc}") from None
    public_key = csr.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return csr, public_key


def _certificate(ca: AgentCA, csr: x509.CertificateSigningRequest, agent_id: str) -> str:
    return ca.sign_agent(csr, agent_id).public_bytes(serialization.Encoding.PEM).decode()


def _check_labels(labels: dict[str, str]) -> None:
    if len(labels) > MAX_LABELS:
        raise ProtocolError(f"DeviceEnrollRequest.labels: at most {MAX_LABELS} labels")
    for key, value in labels.items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            raise ProtocolError(f"DeviceEnrollRequest.labels: {key[:100]!r}={value[:63]!r} is"
                                " not a label (as Kubernetes labels: letters, digits, '.', '-',"
                                " '_', values at most 63 characters)")
