"""The gateway's TLS: its server certificate (TLS 1.2+), optional client certificates from the
agent CA, the agent id a connection proved, and the CA bundle agents get to verify the gateway."""

from __future__ import annotations

import hashlib
import ssl
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509

from ferry.errors import InvalidInput
from ferry.gateway.ca import AgentCA, agent_id_of, issued_by


class TLSConfigError(InvalidInput):
    """The server certificate, key or CA bundle cannot be used; the message names the file."""


def server_context(cert_file: Path, key_file: Path, agent_ca: AgentCA) -> ssl.SSLContext:
    """A server context that asks for a client certificate but does not require one.

    Enrollment has no certificate yet, so the handshake must succeed without one; the routes
    that need an agent check for it. A certificate that is presented must chain to the agent
    CA, or the handshake fails (Python's ssl offers no way to defer that to a 403).
    """
    # Built by hand, not create_default_context: client certificates are trusted from the
    # agent CA alone, never the system store, and no SSLKEYLOGFILE applies.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
        raise TLSConfigError(f"server certificate {cert_file} with key {key_file} cannot be"
                             f" used: {reason}") from None
    context.load_verify_locations(cadata=agent_ca.pem.decode("ascii"))
    context.verify_mode = ssl.CERT_OPTIONAL
    # Agents resume their TLS session on their next connection (a device polls every minute
    # or so, past any keep-alive): one ticket each is enough, and the default is two.
    context.num_tickets = 1
    return context


def peer_agent_id(ssl_object: ssl.SSLObject | ssl.SSLSocket | None,
                  agent_ca: AgentCA) -> str | None:
    """The agent id of the verified client certificate on a connection, or None."""
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    found = _agent_id(der, agent_ca) if der else None
    return found[0] if found is not None and _unexpired(found[1]) else None


class PeerIdentities:
    """peer_agent_id, its answers kept by certificate: an agent presents the same one on every
    connection, and parsing and checking it costs more than the rest of a runbook poll."""

    def __init__(self, agent_ca: AgentCA, most: int = 100_000):
        self._ca = agent_ca
        self._most = most
        self._known: dict[bytes, tuple[str, datetime] | None] = {}   # SHA-256 of the DER

    def __call__(self, ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> str | None:
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        digest = hashlib.sha256(der).digest()
        if digest in self._known:
            found = self._known[digest]
        else:
            if len(self._known) >= self._most:  # a new set of certificates: start again
                self._known.clear()
            found = self._known[digest] = _agent_id(der, self._ca)
        return found[0] if found is not None and _unexpired(found[1]) else None


def _agent_id(der: bytes, agent_ca: AgentCA) -> tuple[str, datetime] | None:
    """The agent id a certificate proves and until when it is valid."""
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return None
    # The handshake verified the chain already; checked again so that a context that trusts
    # more than the agent CA can never turn another CA's certificate into an agent.
    agent_id = agent_id_of(cert) if issued_by(cert, agent_ca.cert) else None
    return (agent_id, cert.not_valid_after_utc) if agent_id else None


def _unexpired(not_after: datetime) -> bool:
    # A resumed TLS session is not verified again: without this, a certificate that expired
    # since its session began would go on being accepted.
    return datetime.now(UTC) < not_after


def agent_trust_bundle(server_cert_file: Path, server_ca_file: Path | None,
                       agent_ca: AgentCA) -> tuple[str, bool]:
    """The PEM bundle enrollment hands agents to verify the gateway, and whether it does.

    The bundle is `server_ca_file` when given, else the agent CA (when it also issued the
    server certificate). False means the server certificate was not issued by any of them.
    """
    try:
        pem = server_ca_file.read_bytes() if server_ca_file else agent_ca.pem
        bundle = x509.load_pem_x509_certificates(pem)
        chain = x509.load_pem_x509_certificates(server_cert_file.read_bytes())
    except OSError as exc:
        raise TLSConfigError(f"{exc.filename}: cannot read: {exc.strerror}") from None
    except ValueError:
        raise TLSConfigError(f"{server_ca_file or server_cert_file}: not PEM certificates"
                             ) from None
    # Any certificate of the served chain (leaf or intermediate) anchored in the bundle will do.
    anchored = any(cert == ca or issued_by(cert, ca) for cert in chain for ca in bundle)
    return pem.decode("ascii"), anchored

