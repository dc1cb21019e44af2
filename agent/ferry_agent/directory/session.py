"""One directory session: every operation Ferry performs on an AD domain, as methods.

This is the boundary between Ferry's connector and Active Directory. In direct mode the
connector calls a DirectorySession itself; in agent mode the same calls travel through the
gateway as work items (ferry_agent.protocol) and an agent runs them on its own session.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import ldap3

from . import read as ad_read
from . import write as ad_write
from .connection import DirectoryEndpoint, connect


class DirectorySession:
    """A lazily opened, bound LDAP connection to one domain and the operations on it."""

    def __init__(self, endpoint: DirectoryEndpoint):
        self.endpoint = endpoint
        self._conn: ldap3.Connection | None = None

    @property
    def conn(self) -> ldap3.Connection:
        if self._conn is None:
            self._conn = connect(self.endpoint)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.unbind()
            self._conn = None

    # reading ---------------------------------------------------------------------------
    def exists(self, dn: str) -> bool:
        self.conn.search(dn, "(objectClass=*)", "BASE", attributes=["1.1"])
        return bool(self.conn.result["result"] == 0)

    def initial_watermark(self, scope: ad_read.Scope) -> ad_read.Watermark:
        return ad_read.initial_watermark(self.conn, scope)

    def read_full(self, scope: ad_read.Scope, attributes: Sequence[str]
                  ) -> Iterator[ad_read.Entry]:
        return ad_read.read_full(self.conn, scope, attributes)

    def read_changes(self, scope: ad_read.Scope, attributes: Sequence[str],
                     watermark: ad_read.Watermark) -> ad_read.Changes:
        return ad_read.read_changes(self.conn, scope, attributes, watermark)

    def read_by_guids(self, guids: Sequence[str], attributes: Sequence[str]
                      ) -> Iterator[ad_read.Entry]:
        return ad_read.read_by_guids(self.conn, guids, attributes)

    def resolve_dns(self, dns: Sequence[str]) -> dict[str, str]:
        return ad_read.resolve_dns(self.conn, dns)

    # writing ---------------------------------------------------------------------------
    def create(self, object_type: str, dn: str, attributes: dict[str, list[str]], *,
               password: str | None = None, must_change_password: bool = False,
               enabled: bool | None = None) -> str:
        return ad_write.create(self.conn, object_type, dn, attributes, password=password,
                               must_change_password=must_change_password, enabled=enabled)

    def update(self, dn: str, changes: dict[str, list[str] | None]) -> None:
        ad_write.update(self.conn, dn, changes)

    def set_enabled(self, dn: str, enabled: bool) -> None:
        ad_write.set_enabled(self.conn, dn, enabled)

    def move(self, dn: str, new_dn: str) -> None:
        ad_write.move(self.conn, dn, new_dn)

    def delete(self, dn: str) -> None:
        ad_write.delete(self.conn, dn)

    def add_members(self, group_dn: str, member_dns: Sequence[str]) -> None:
        ad_write.add_members(self.conn, group_dn, member_dns)

    def remove_members(self, group_dn: str, member_dns: Sequence[str]) -> None:
        ad_write.remove_members(self.conn, group_dn, member_dns)

    def ensure_ou(self, dn: str) -> list[str]:
        return ad_write.ensure_ou(self.conn, dn)


def describe(session: Any) -> str:
    """Where a session points, for messages (never the password)."""
    endpoint = getattr(session, "endpoint", None)
    if endpoint is None:
        return "directory"
    return f"{endpoint.host}:{endpoint.port}"
