"""One directory session: every operation Ferry performs on an AD domain, as methods.

This is the boundary between Ferry's connector and Active Directory. In direct mode the
connector calls a DirectorySession itself; in agent mode the same calls travel through the
gateway as work items (ferry_agent.protocol) and an agent runs them on its own session.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import ldap3
from ldap3.core.exceptions import LDAPException

from ..dn import parent_dn
from . import batch as ad_batch
from . import read as ad_read
from .connection import DirectoryEndpoint, connect
from .subtrees import WriteSubtrees

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..dc import LocalSambaDc, SidHistoryRequest, SidHistoryResult
    from ..errors import FerryAgentError
    from ..passwords.endpoint import DcEndpoint
    from ..passwords.transfer import PasswordSet, SealedReads
    from ..scripts.allowed import AllowedPrograms
    from ..sealed import Recipient


class DirectorySession:
    """A lazily opened, bound LDAP connection to one domain and the operations on it;
    `write_subtrees` (an agent's) refuses every write outside them, None leaves writes as
    the server allows them; `dc` is the domain controller the agent runs on, if any;
    `scripts` the programs script steps may run with (None: none); `write_connections`
    how many connections a batch of writes may spread over (batch.apply_pooled)."""

    def __init__(self, endpoint: DirectoryEndpoint, write_subtrees: WriteSubtrees | None = None,
                 dc: LocalSambaDc | None = None,
                 key: ec.EllipticCurvePrivateKey | None = None,
                 scripts: AllowedPrograms | None = None, write_connections: int = 1):
        self.endpoint = endpoint
        self.write_connections = write_connections
        self.write_subtrees = write_subtrees
        self.dc = dc
        self.scripts = scripts
        self.key = key   # opens the secrets sealed to this side (the agent's own key)
        # What the DC's password change sender is doing ("": none runs here), for checks.
        self.password_changes = ""
        self._conn: ldap3.Connection | None = None
        self._writers: dict[int, ldap3.Connection] = {}   # the write pool's others, by number
        self._writers_lock = threading.Lock()

    @property
    def conn(self) -> ldap3.Connection:
        if self._conn is None:
            self._conn = connect(self.endpoint)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.unbind()
            self._conn = None
        with self._writers_lock:
            writers, self._writers = list(self._writers.values()), {}
        for conn in writers:
            with contextlib.suppress(LDAPException):
                conn.unbind()

    def _writer(self, number: int) -> ldap3.Connection:
        """The write pool's connection `number` (0 is the session's own), opened when first
        needed and kept: ldap3 connections are not thread-safe, so one per thread."""
        if number == 0:
            return self.conn
        with self._writers_lock:
            conn = self._writers.get(number)
        if conn is None or conn.closed:
            conn = connect(self.endpoint)
            with self._writers_lock:
                self._writers[number] = conn
        return conn

    # reading ---------------------------------------------------------------------------
    def exists(self, dn: str) -> bool:
        return ad_read.exists(self.conn, dn)

    def initial_watermark(self, scope: ad_read.ReadScope) -> ad_read.AdWatermark:
        return ad_read.initial_watermark(self.conn, scope)

    def read_full(self, scope: ad_read.ReadScope, attributes: Sequence[str]
                  ) -> Iterator[ad_read.Entry]:
        return ad_read.read_full(self.conn, scope, attributes)

    def read_changes(self, scope: ad_read.ReadScope, attributes: Sequence[str],
                     watermark: ad_read.AdWatermark) -> ad_read.Changes:
        return ad_read.read_changes(self.conn, scope, attributes, watermark)

    def stream_changes(self, scope: ad_read.ReadScope, attributes: Sequence[str],
                       watermark: ad_read.AdWatermark) -> ad_read.ChangeStream:
        return ad_read.stream_changes(self.conn, scope, attributes, watermark)

    def read_by_guids(self, guids: Sequence[str], attributes: Sequence[str]
                      ) -> Iterator[ad_read.Entry]:
        return ad_read.read_by_guids(self.conn, guids, attributes)

    def read_by_values(self, attribute: str, values: Sequence[str], attributes: Sequence[str],
                       scope: ad_read.ReadScope) -> Iterator[ad_read.Entry]:
        return ad_read.read_by_values(self.conn, attribute, values, attributes, scope)

    def resolve_dns(self, dns: Sequence[str]) -> dict[str, str]:
        return ad_read.resolve_dns(self.conn, dns)

    # writing ---------------------------------------------------------------------------
    def write(self, writes: Sequence[ad_batch.Write], *, check_first: bool = False,
              connections: int | None = None) -> Iterator[ad_batch.WriteResult]:
        """Apply a batch of writes, one result per write in their order, over up to
        `connections` (default write_connections) connections (batch.apply_pooled)."""
        size = self.write_connections if connections is None else connections
        if size <= 1:
            return ad_batch.apply(self.conn, writes, check_first=check_first,
                                  subtrees=self.write_subtrees)
        return iter(ad_batch.apply_pooled(self._writer, size, writes, check_first=check_first,
                                          subtrees=self.write_subtrees))

    # computers (device moves) -----------------------------------------------------------
    def stage_computer(self, name: str, ou: str, dns_domain: str, mode: str, recipient: str,
                       domain_controller: str = "") -> dict[str, object]:
        """Create or reset NAME$ inside write_subtrees; its machine secret (a one-time
        password or an offline join blob) sealed to `recipient` (PEM), bound to the name."""
        from ..sealed import Recipient
        from .computers import stage_computer

        return stage_computer(self.conn, name=name, ou=ou, dns_name=dns_domain, mode=mode,
                              recipients=[Recipient.from_pem(recipient)],
                              subtrees=self.write_subtrees,
                              logon=(self._logon_name(), self.endpoint.password),
                              host=self.endpoint.host, domain_controller=domain_controller)

    def disable_computer(self, name: str) -> dict[str, object]:
        """Disable NAME$ (a moved workstation's old account), inside write_subtrees."""
        from .computers import disable_computer

        return disable_computer(self.conn, name, self.write_subtrees)

    # script steps ------------------------------------------------------------------------
    def run_script(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """A workflow's script step, run here if the INI allows its program."""
        from ..scripts.remote import run_remote_script

        return run_remote_script(arguments, self.scripts, self.key)

    # passwords ---------------------------------------------------------------------------
    def recipients(self) -> list[Recipient]:
        """The keys secrets for this side are sealed to: its own, if it has one."""
        from ..sealed import Recipient, key_id

        if self.key is None:
            return []
        public = self.key.public_key()
        return [Recipient(key_id(public), public)]

    def read_passwords(self, watermark: str | None, guids: Sequence[str] | None,
                       recipients: Sequence[Recipient]) -> SealedReads:
        """Source side: NT hashes by replication, each sealed to `recipients` as it is read."""
        from ..passwords.transfer import read_sealed

        return read_sealed(self.dc_endpoint(), watermark, guids, recipients)

    def set_passwords(self, items: Sequence[PasswordSet]) -> list[str | None]:
        """Target side: open each sealed password with this side's key and set it (SAMR)."""
        from ..passwords.errors import PasswordSyncError
        from ..passwords.transfer import set_sealed

        if self.key is None:
            raise PasswordSyncError("this side has no key to open sealed passwords with")
        return set_sealed(self.conn, self.dc_endpoint(), items, self.key, self.write_subtrees)

    def dc_endpoint(self) -> DcEndpoint:
        """The same DC and account for RPC (DRSUAPI, SAMR) as for LDAP."""
        from ..passwords.endpoint import DcEndpoint

        ep = self.endpoint
        return DcEndpoint(host=ep.host, user=self._logon_name(), password=ep.password,
                          base_dn=ep.base_dn or ad_read.naming_context(self.conn))

    def _logon_name(self) -> str:
        """The bind account as NTLM names it: a UPN or DOMAIN\\user as given; for a DN, the
        account's userPrincipalName (RPC has no DN logon)."""
        user = self.endpoint.bind_user
        if "=" not in user:
            return user
        upn = ad_read.read_attribute(self.conn, user, "userPrincipalName")
        if not upn:
            from ..passwords.errors import PasswordSyncError

            raise PasswordSyncError(f"{user}: the bind account has no userPrincipalName, and"
                                    " RPC logons take no DN; bind as a UPN or DOMAIN\\user")
        return upn[0]

    def check_migration(self, replication: bool, reset_password_ous: Sequence[str],
                        sid_history: bool, dc_agent: bool = False,
                        source_domains: Sequence[str] = ()) -> list[tuple[bool, str]]:
        """What password sync and SID history need of this domain, as (ok, message) each:
        the replication rights on the domain root, Reset Password on the target OUs, the RPC
        and SMB ports, a DC to write sIDHistory on, and the DC's password change sender."""
        from . import ports, rights

        found: list[tuple[bool, str]] = []
        account = rights.bound_account(self.conn) if replication or reset_password_ous \
            else None
        if replication:
            finding = rights.replication_rights(self.conn, self.endpoint.base_dn
                                                or ad_read.naming_context(self.conn),
                                                account=account)
            found.append((finding.ok, finding.message))
        for ou in reset_password_ous:
            # An OU Ferry has yet to create gets what its parent passes down: check there.
            existing = ou
            while existing and not ad_read.exists(self.conn, existing):
                existing = parent_dn(existing)
            finding = rights.reset_password_right(self.conn, existing or ou, account=account)
            found.append((finding.ok, finding.message))
        if replication or reset_password_ous:
            probed = ports.rpc_ports(self.endpoint.host)
            found.append((probed.ok, probed.message))
        if sid_history and self.dc is None and not self._samba():
            # A Windows DC: DsAddSidHistory over the network, if its prerequisites hold.
            from ..dc.windows import prerequisite_checks

            base = self.endpoint.base_dn or ad_read.naming_context(self.conn)
            found += [(not c.failed, c.describe())
                      for c in prerequisite_checks(self.conn, base, source_domains,
                                                   self.endpoint.host)]
        elif sid_history:
            if self.dc is None:
                found.append((False, "sIDHistory: this agent runs on no domain controller; run"
                               " it on a DC of the domain with [dc] smb_conf in its INI"))
            elif not self.dc.smb_conf.is_file():
                found.append((False, f"sIDHistory: [dc] smb_conf {self.dc.smb_conf} is missing"))
            else:
                found.append((True, f"sIDHistory: written on this DC ({self.dc.smb_conf})"))
        if dc_agent:
            state = self.password_changes
            found.append((state.startswith("running"), f"password changes: {state}" if state
                          else "password changes: this agent does not send its DC's password"
                          " changes; set [dc] smb_conf, password_changes = true and gnupg_home"
                          " in its INI"))
        return found

    def _samba(self) -> bool:
        """Whether the DC is Samba (its rootDSE names its vendor; Windows' names none)."""
        return any("samba" in v.lower() for v in ad_read.root_dse(self.conn)["vendorName"])

    def add_sid_history(self, requests: Sequence[SidHistoryRequest]
                        ) -> list[SidHistoryResult | FerryAgentError]:
        """Each target's outcome, through the local DC's database (no network way exists)."""
        from ..dc import LocalDcError, add_sid_histories
        from .subtrees import SETTING, WriteSubtrees

        if self.dc is None and os.name == "nt":
            # A Windows DC: over the network, by DsAddSidHistoryW.
            from ..dc.windows import add_sid_histories_windows
            from ..dn import dns_domain

            base = self.endpoint.base_dn or ad_read.naming_context(self.conn)
            return add_sid_histories_windows(self.conn, requests, dns_domain(base),
                                             self.endpoint.host, self.write_subtrees)
        if self.dc is None:
            raise LocalDcError("config", "sIDHistory is written on the target domain controller"
                               " itself: run this agent on a DC of the domain and set"
                               " [dc] smb_conf in its configuration")
        return list(add_sid_histories(
            self.dc, requests,
            subtrees=self.write_subtrees or WriteSubtrees((), f"{SETTING} (unset)")))


def describe(session: Any) -> str:
    """Where a session points, for messages (never the password)."""
    endpoint = getattr(session, "endpoint", None)
    if endpoint is None:
        return "directory"
    return f"{endpoint.host}:{endpoint.port}"
