"""Enrollment: single-use, expiring tokens (only their SHA-256 is stored) exchanged once for an
agent certificate from the agent CA."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import serialization

from ferry.errors import FerryError
from ferry.gateway.ca import AgentCA, check_csr
from ferry.state.rows import AgentInfo
from ferry.state.store import StateStore
from ferry_agent.protocol import EnrollRequest, EnrollResponse, ProtocolError

MAX_TTL = timedelta(days=30)
# As ferry_agent.identity: a certificate CN is at most 64 characters.
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Environment names as they appear in manifests (Kubernetes names), with room for NS/NAME.
_ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,252}")
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


def create_token(store: StateStore, environment: str, ttl: timedelta) -> tuple[str, datetime]:
    """A new token for `environment` and when it expires; the caller shows it once."""
    token = new_token()
    expires = datetime.now(UTC) + ttl
    store.agents.add_token(token_hash(token), check_environment(environment), expires)
    return token, expires


def enroll(store: StateStore, ca: AgentCA, request: EnrollRequest,
           trust_bundle: str) -> tuple[EnrollResponse, AgentInfo]:
    """Check the request, use the token (once), register the agent and sign its certificate.

    The CSR is checked before the token is used, so a malformed request does not burn it.
    """
    if not _AGENT_NAME.fullmatch(request.name):
        raise ProtocolError("EnrollRequest.name: 1-64 letters, digits, '.', '-' or '_',"
                            " starting with a letter or digit")
    for field, value, limit in (("host", request.host, 255), ("version", request.version, 40)):
        if not value or len(value) > limit or not value.isprintable():
            raise ProtocolError(f"EnrollRequest.{field}: 1-{limit} printable characters")
    try:
        csr = check_csr(request.csr)
    except ValueError as exc:
        raise ProtocolError(f"EnrollRequest.{exc}") from None
    hashed = token_hash(request.token)
    agent_id = "agent-" + secrets.token_hex(8)
    # Kept so secrets for this agent can be sealed to its key (ferry_agent.sealed).
    public_key = csr.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    agent = store.agents.enroll(hashed, agent_id, request.name, request.host, request.version,
                                public_key)
    if agent is None:
        raise EnrollmentRefused(store.agents.token_state(hashed))
    cert = ca.sign_agent(csr, agent_id)
    response = EnrollResponse(agent_id=agent_id, environment=agent.environment,
                              certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
                              ca=trust_bundle)
    return response, agent
