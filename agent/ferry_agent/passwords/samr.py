"""NT hashes set on target users: SAMR SamrSetInformationUser2, UserInternal1Information
(level 18), the hash encrypted with the SMB session key (MS-SAMR 2.2.11.1.1).

Over SMB only (ncacn_np, \\pipe\\samr on port 445), and there is deliberately no way to ask
for anything else: the DC decrypts the hash with the session key of the transport, and
ncacn_ip_tcp has none. Samba then (as Windows does) uses a key of its own, answers success
and stores garbage as the NT hash: a silent failure no check afterwards could catch.

The account needs Reset Password (User-Force-Change-Password) on each target. A hash-only
set leaves the target with the NT hash (and the RC4 Kerberos key, which is the NT hash);
its AES keys come back with the user's next password change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..sid import FIRST_ASSIGNED_RID, SidError, parse_sid
from .endpoint import DcEndpoint
from .errors import PasswordSyncError
from .rpc import logon_refused, unreachable

SMB_PORT = 445
NT_HASH_BYTES = 16
_USER_FORCE_PASSWORD_CHANGE = 0x00000010
_DOMAIN_LOOKUP = 0x00000200
_SERVER_CONNECT = 0x00000001 | 0x00000020  # SAM_SERVER_CONNECT | SAM_SERVER_LOOKUP_DOMAIN
_USER_INTERNAL1_INFORMATION = 18
_STATUS_ACCESS_DENIED = 0xC0000022
_STATUS_NO_SUCH_USER = 0xC0000064
_STATUS_NO_SUCH_DOMAIN = 0xC00000DF
_STATUS_LOGON_FAILURES = frozenset({
    0xC000006D,  # STATUS_LOGON_FAILURE
    0xC000006E,  # STATUS_ACCOUNT_RESTRICTION
    0xC0000070,  # STATUS_INVALID_WORKSTATION
    0xC0000071,  # STATUS_PASSWORD_EXPIRED
    0xC0000072,  # STATUS_ACCOUNT_DISABLED
    0xC0000193,  # STATUS_ACCOUNT_EXPIRED
    0xC0000224,  # STATUS_PASSWORD_MUST_CHANGE
    0xC0000234,  # STATUS_ACCOUNT_LOCKED_OUT
})


def set_nt_hashes(endpoint: DcEndpoint, items: Sequence[tuple[str, bytes]]) -> list[str | None]:
    """Set each (objectSid, 16-byte NT hash) on this DC; one outcome per item, in order: None
    when set, else why not (naming the SID, never the hash). Items that are not a domain
    user's SID with a 16-byte hash fail without reaching the DC; one SMB connection and one
    SAMR domain handle per domain serve the rest. A failure to connect or log on at all is
    raised (PasswordSyncError)."""
    outcomes: list[str | None] = [None] * len(items)
    valid: list[tuple[int, str, str, int, bytes]] = []
    for index, (sid_text, nt_hash) in enumerate(items):
        problem, domain, rid = _check(sid_text, nt_hash)
        if problem:
            outcomes[index] = problem
        else:
            valid.append((index, sid_text, domain, rid, nt_hash))
    if not valid:
        return outcomes
    with _SamrSession.open(endpoint) as session:
        for index, sid_text, domain, rid, nt_hash in valid:
            outcomes[index] = session.set_nt_hash(sid_text, domain, rid, nt_hash)
    return outcomes


def _check(sid_text: str, nt_hash: bytes) -> tuple[str, str, int]:
    """(why not, "", 0), or ("", the SID's domain, its RID) for an item that may be sent."""
    try:
        sid = parse_sid(sid_text)
    except SidError as exc:
        return f"set NT hash: {exc}", "", 0
    if not sid.is_domain_account:
        return f"set NT hash on {sid}: not a domain account's SID", "", 0
    if sid.rid < FIRST_ASSIGNED_RID:
        return (f"set NT hash on {sid}: refused, a built-in account (RID {sid.rid} <"
                f" {FIRST_ASSIGNED_RID})"), "", 0
    if not isinstance(nt_hash, bytes) or len(nt_hash) != NT_HASH_BYTES:
        return f"set NT hash on {sid}: an NT hash is {NT_HASH_BYTES} bytes", "", 0
    return "", sid.domain, sid.rid


@dataclass
class _SamrSession:
    """One SMB connection to the DC with SAMR bound on \\pipe\\samr."""

    endpoint: DcEndpoint
    dce: Any
    server: Any
    session_key: bytes
    domains: dict[str, Any]

    @classmethod
    @contextlib.contextmanager
    def open(cls, endpoint: DcEndpoint) -> Iterator[_SamrSession]:
        from impacket.dcerpc.v5 import samr, transport
        from impacket.dcerpc.v5.rpcrt import DCERPCException

        # The only binding there is: see the module docstring before adding another.
        rpc = transport.DCERPCTransportFactory(rf"ncacn_np:{endpoint.host}[\pipe\samr]")
        rpc.set_connect_timeout(endpoint.connect_timeout)
        rpc.set_credentials(endpoint.account, endpoint.password, endpoint.ntlm_domain, "", "")
        dce = rpc.get_dce_rpc()
        try:
            dce.connect()
        except Exception as exc:  # impacket raises SessionError, NetBIOSError or OSError
            raise _connect_error(endpoint, exc) from None
        try:
            try:
                dce.bind(samr.MSRPC_UUID_SAMR)
                server = samr.hSamrConnect5(dce, f"\\\\{endpoint.host}\x00",
                                            _SERVER_CONNECT)["ServerHandle"]
            except DCERPCException as exc:
                raise PasswordSyncError(f"{endpoint.describe()}: SAMR over SMB failed: {exc}"
                                        ) from None
            key = bytes(rpc.get_smb_connection().getSessionKey())
            yield cls(endpoint, dce, server, key, {})
        finally:
            with contextlib.suppress(Exception):
                dce.disconnect()

    def set_nt_hash(self, sid: str, domain: str, rid: int, nt_hash: bytes) -> str | None:
        from impacket import crypto
        from impacket.dcerpc.v5 import samr
        from impacket.dcerpc.v5.dtypes import NULL
        from impacket.dcerpc.v5.rpcrt import DCERPCException

        where = f"set NT hash on {sid} ({self.endpoint.describe()})"
        try:
            handle = self._domain(domain)
            user = samr.hSamrOpenUser(self.dce, handle, _USER_FORCE_PASSWORD_CHANGE,
                                      rid)["UserHandle"]
        except DCERPCException as exc:
            return f"{where}: {self._why(exc)}"
        try:
            request = samr.SamrSetInformationUser2()
            request["UserHandle"] = user
            request["UserInformationClass"] = _USER_INTERNAL1_INFORMATION
            request["Buffer"]["tag"] = _USER_INTERNAL1_INFORMATION
            info = request["Buffer"]["Internal1"]
            info["EncryptedNtOwfPassword"] = crypto.SamEncryptNTLMHash(nt_hash,
                                                                       self.session_key)
            info["EncryptedLmOwfPassword"] = NULL
            info["NtPasswordPresent"] = 1
            info["LmPasswordPresent"] = 0
            info["PasswordExpired"] = 0
            self.dce.request(request)
        except DCERPCException as exc:
            return f"{where}: {self._why(exc)}"
        finally:
            with contextlib.suppress(Exception):
                samr.hSamrCloseHandle(self.dce, user)
        return None

    def _domain(self, domain: str) -> Any:
        """The SAMR handle of the domain `domain` (S-1-5-21-X-Y-Z), opened once."""
        from impacket.dcerpc.v5 import samr

        if domain not in self.domains:
            sid = samr.RPC_SID()
            sid.fromCanonical(domain)
            self.domains[domain] = samr.hSamrOpenDomain(self.dce, self.server, _DOMAIN_LOOKUP,
                                                        sid)["DomainHandle"]
        return self.domains[domain]

    def _why(self, exc: Exception) -> str:
        code = getattr(exc, "error_code", None)
        if code == _STATUS_ACCESS_DENIED:
            return (f"access denied: {self.endpoint.user} lacks Reset Password on this user;"
                    " grant it Reset Password on the users of the target OU")
        if code == _STATUS_NO_SUCH_USER:
            return "no such user on this DC"
        if code == _STATUS_NO_SUCH_DOMAIN:
            return f"the SID is not of this DC's domain ({self.endpoint.realm})"
        return f"the DC answered {exc}"


def _connect_error(endpoint: DcEndpoint, exc: Exception) -> PasswordSyncError:
    """A failed SMB connection or logon, as what to fix."""
    code = exc.getErrorCode() if hasattr(exc, "getErrorCode") else None
    if code in _STATUS_LOGON_FAILURES:
        return logon_refused(endpoint)
    if isinstance(exc, OSError) or "Connection" in str(exc) or "timed out" in str(exc):
        return unreachable(endpoint, SMB_PORT, "SMB (for SAMR)", exc)
    return PasswordSyncError(f"{endpoint.describe()}: SMB session for SAMR failed: {exc}")
