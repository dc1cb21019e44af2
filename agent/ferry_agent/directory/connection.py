"""Connecting to a directory server: LDAPS with certificate checks unless told otherwise."""

from __future__ import annotations

import contextlib
import re
import ssl
from dataclasses import dataclass, field

import ldap3
from ldap3.core.exceptions import LDAPException

from .errors import DirectoryConnectionError

_SECURE_TLS_VERSIONS = ("TLSv1.2", "TLSv1.3")


@dataclass(frozen=True, kw_only=True)
class DirectoryEndpoint:
    """Where a directory is and how to authenticate to it.

    The certificate is always verified (against `ca_file` and/or `ca_data` (PEM), else the
    system trust store) and its name checked against `server_name` or `host`, unless
    `insecure` is set. Plain LDAP (`use_ssl=False`) is only allowed together with `insecure`.
    """

    host: str
    bind_user: str
    password: str = field(repr=False)
    base_dn: str = ""
    port: int = 636
    use_ssl: bool = True
    ca_file: str | None = None
    ca_data: str | None = field(default=None, repr=False)
    insecure: bool = False
    server_name: str | None = None
    connect_timeout: int = 10
    receive_timeout: int = 300


def connect(endpoint: DirectoryEndpoint) -> ldap3.Connection:
    """Open and bind a synchronous connection; raise DirectoryConnectionError naming the cause.

    The connection returns results instead of raising (so one failed object does not end a
    run), never follows referrals, and leaves ranged attributes to the caller.
    """
    host, port = endpoint.host, endpoint.port
    if not endpoint.use_ssl and not endpoint.insecure:
        raise DirectoryConnectionError(
            host, port, "plain LDAP sends the password unencrypted; use LDAPS or set insecure"
        )
    tls = None
    if endpoint.use_ssl:
        try:
            tls = ldap3.Tls(
                validate=ssl.CERT_NONE if endpoint.insecure else ssl.CERT_REQUIRED,
                ca_certs_file=endpoint.ca_file,
                ca_certs_data=endpoint.ca_data,
                valid_names=[endpoint.server_name] if endpoint.server_name else None,
                sni=endpoint.server_name,
            )
        except LDAPException as exc:
            raise DirectoryConnectionError(
                host, port, f"CA file {endpoint.ca_file!r} is not usable: {exc}"
            ) from None
    server = ldap3.Server(
        host,
        port=port,
        use_ssl=endpoint.use_ssl,
        tls=tls,
        get_info=ldap3.NONE,
        connect_timeout=endpoint.connect_timeout,
    )
    conn = ldap3.Connection(
        server,
        user=endpoint.bind_user,
        password=endpoint.password,
        authentication=ldap3.SIMPLE,
        raise_exceptions=False,
        auto_referrals=False,
        auto_range=False,
        return_empty_attributes=False,
        check_names=False,
        receive_timeout=endpoint.receive_timeout,
    )
    try:
        conn.open()
        bound = conn.bind()
    except LDAPException as exc:
        _close(conn)
        raise DirectoryConnectionError(host, port, _describe(exc)) from None
    if not bound:
        result = conn.result or {}
        _close(conn)
        description = result.get("description") or "rejected"
        message = str(result.get("message") or "").strip()
        reason = f"bind as {endpoint.bind_user!r} failed: {description}"
        raise DirectoryConnectionError(host, port, f"{reason} ({message})" if message else reason)
    if endpoint.use_ssl:
        version = conn.socket.version() if conn.socket is not None else None
        if version not in _SECURE_TLS_VERSIONS:
            _close(conn)
            raise DirectoryConnectionError(host, port, f"negotiated {version}; TLS 1.2+ needed")
    return conn


def _describe(exc: LDAPException) -> str:
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        found = re.search(r"certificate verify failed: ([^(]+)", text)
        detail = found.group(1).strip() if found else "verify failed"
        return f"certificate not trusted ({detail}); check ca_file"
    if "doesn't match any name" in text:
        return "certificate name does not match the host (set server_name to the DC's name)"
    return f"{type(exc).__name__}: {text}"


def _close(conn: ldap3.Connection) -> None:
    with contextlib.suppress(LDAPException):
        conn.unbind()
