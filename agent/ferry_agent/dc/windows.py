"""SID history on Windows DCs, by contract: the DsAddSidHistory call the agent's Windows
backend makes and the prerequisites `ferry check` verifies first. Not executed on Linux.

The backend binds to a writable DC of the target domain (DsBindWithCredW; the target PDC
emulator is simplest) and calls DsAddSidHistoryW, which is DRSUAPI IDL_DRSAddSidHistory
(opnum 20, DRS_MSG_ADDSIDREQ_V1) on the wire. Windows then reads the source principal's
objectSid, and its own sIDHistory, from the source PDC and audits the change in both domains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from ..directory.rights import ExtendedRight
from ..directory.subtrees import WriteSubtrees
from ..errors import FerryAgentError
from .sid_history import SidHistoryRefused, SidHistoryRequest, SidHistoryResult, target_query

DRSUAPI_ADD_SID_HISTORY_OPNUM = 20
MIGRATE_SID_HISTORY_RIGHT = "ba33815a-4f93-4c76-87f3-57574bff8109"  # controlAccessRight GUID
MIGRATE_SID_HISTORY = ExtendedRight("Migrate-SID-History", "Migrate SID History",
                                    MIGRATE_SID_HISTORY_RIGHT)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9-]{1,63})*", re.ASCII)


@dataclass(frozen=True)
class SourceCredential:
    """An administrator of the source domain. The password is never part of a request: the
    backend takes it from the secret named here, sealed to the agent's key."""

    user: str
    domain: str
    secret: str = field(default="")  # the secret's reference, not its value


@dataclass(frozen=True)
class DsAddSidHistoryRequest:
    """One DsAddSidHistoryW call: principals by sAMAccountName, domains and DCs by DNS name."""

    src_domain: str
    src_principal: str
    src_domain_controller: str          # the source PDC emulator
    dst_domain: str
    dst_principal: str
    dst_domain_controller: str          # the DC to bind to; must hold the target principal
    src_credential: SourceCredential | None = None  # None: the agent's own identity
    flags: int = 0                      # reserved by the API: always 0

    def __post_init__(self) -> None:
        for name in ("src_domain", "src_domain_controller", "dst_domain",
                     "dst_domain_controller"):
            if not _HOST.fullmatch(getattr(self, name)):
                raise SidHistoryRefused(f"DsAddSidHistory: {name} must be a DNS or NetBIOS"
                                        f" name, not {getattr(self, name)!r}")
        for name in ("src_principal", "dst_principal"):
            value = getattr(self, name)
            if "sam" not in target_query(value):
                raise SidHistoryRefused(f"DsAddSidHistory: {name} takes a sAMAccountName,"
                                        f" not a DN ({value!r})")
        if self.flags != 0:
            raise SidHistoryRefused("DsAddSidHistory: flags must be 0 (reserved)")

    def win32_arguments(self) -> list[tuple[str, object]]:
        """DsAddSidHistoryW's parameters after hDS, in order; SrcDomainCreds is the identity
        DsMakePasswordCredentialsW builds from the credential, or NULL for the caller's own."""
        cred = self.src_credential
        return [
            ("Flags", self.flags),
            ("SrcDomain", self.src_domain),
            ("SrcPrincipal", self.src_principal),
            ("SrcDomainController", self.src_domain_controller),
            ("SrcDomainCreds", None if cred is None else f"{cred.domain}\\{cred.user}"),
            ("DstDomain", self.dst_domain),
            ("DstPrincipal", self.dst_principal),
        ]


class Prerequisite(Enum):
    """What DsAddSidHistory needs, each with the fix `ferry check` names when it is missing."""

    TRUST = ("trust", "the target domain reaches the source PDC: a trust between the forests,"
             " or an administrator credential of the source domain in the request")
    SOURCE_AUDITING = ("sourceAuditing", "on the source DCs, audit account management"
                       " (success and failure) and directory service access")
    TARGET_AUDITING = ("targetAuditing", "on the target DCs, audit account management"
                       " (success and failure) and directory service access")
    SOURCE_GROUP = ("sourceGroup", "an empty domain local security group named"
                    " <SOURCE NETBIOS>$$$ in the source domain")
    TCPIP_CLIENT_SUPPORT = ("tcpipClientSupport", "DWORD HKLM\\System\\CurrentControlSet"
                            "\\Control\\Lsa\\TcpipClientSupport = 1 on the source PDC emulator,"
                            " then restart it")
    SOURCE_ADMIN = ("sourceAdmin", "the source credential is in the source domain's"
                    " Administrators group (directly or nested)")
    MIGRATE_RIGHT = ("migrateSidHistory", "the agent's account holds the control access"
                     f" right Migrate SID History ({MIGRATE_SID_HISTORY_RIGHT}) on the target"
                     " domain's root object")
    RPC_PORTS = ("rpcPorts", "TCP 135 and the dynamic RPC ports open from the agent to the"
                 " target PDC, and from the target PDC to the source PDC")

    @property
    def key(self) -> str:
        return self.value[0]

    @property
    def fix(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class PrerequisiteCheck:
    """One prerequisite as found: met or not, and what was seen (never a secret)."""

    prerequisite: Prerequisite
    met: bool
    detail: str = ""
    checked: bool = True   # False: not visible from where Ferry checks; the admin verifies

    @property
    def failed(self) -> bool:
        return self.checked and not self.met

    def describe(self) -> str:
        state = ("ok" if self.met else f"missing: {self.prerequisite.fix}") if self.checked \
            else f"verify: {self.prerequisite.fix}"
        return f"SID history {self.prerequisite.key}: {state}" + (
            f" ({self.detail})" if self.detail else "")


def prerequisite_checks(conn: Any, target_base_dn: str, source_domains: Sequence[str],
                        pdc: str) -> list[PrerequisiteCheck]:
    """What `ferry check` verifies for DsAddSidHistory from the target domain over LDAP and
    TCP (the Migrate SID History right, the trusts, port 135 on the PDC), and the rest named
    as unverified: auditing, the $$$ group and TcpipClientSupport live on the source side."""
    from ..directory import ports, rights

    checks: list[PrerequisiteCheck] = []
    verdict = rights.has_extended_right(conn, target_base_dn, MIGRATE_SID_HISTORY)
    checks.append(PrerequisiteCheck(Prerequisite.MIGRATE_RIGHT, verdict.granted,
                                    f"on {target_base_dn}"))
    conn.search(f"CN=System,{target_base_dn}", "(objectClass=trustedDomain)",
                attributes=["trustPartner", "flatName"])
    partners = {str(v).lower() for e in conn.response or [] if e.get("type") == "searchResEntry"
                for key in ("trustPartner", "flatName")
                for v in _values(e.get("attributes", {}).get(key))}
    for domain in source_domains:
        checks.append(PrerequisiteCheck(
            Prerequisite.TRUST, domain.lower() in partners,
            f"{domain}: {'a trust' if domain.lower() in partners else 'no trust'} in"
            f" CN=System,{target_base_dn}"))
    probe = ports.probe_port(pdc, 135)
    checks.append(PrerequisiteCheck(Prerequisite.RPC_PORTS, probe.ok, probe.message))
    checks += [PrerequisiteCheck(p, False, "not visible from the target over LDAP; verify it",
                                 checked=False)
               for p in (Prerequisite.SOURCE_AUDITING, Prerequisite.TARGET_AUDITING,
                         Prerequisite.SOURCE_GROUP, Prerequisite.TCPIP_CLIENT_SUPPORT,
                         Prerequisite.SOURCE_ADMIN)]
    return checks


def _values(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [] if value is None else [value]


# Win32 errors DsAddSidHistoryW answers that Ferry tells apart (winerror.h).
ERROR_DS_SRC_SID_EXISTS_IN_FOREST = 8536   # the SID is already someone's: already added
ERROR_ACCESS_DENIED = 5


class DsAddSidHistoryFailed(SidHistoryRefused):
    """DsBindWithCredW or DsAddSidHistoryW answered an error; `code` is the Win32 error."""

    def __init__(self, call: str, code: int, message: str):
        self.call, self.code = call, code
        super().__init__(f"{call}: Win32 error {code}: {message}")


def call_ds_add_sid_history(request: DsAddSidHistoryRequest, source_password: str | None,
                            ntdsapi: Any = None) -> bool:
    """Make the call on Windows: bind to the target DC, add the source principal's SID to
    the target principal's sIDHistory, unbind. True when added, False when the SID was in
    the forest already (a repeat). `ntdsapi` is ntdsapi.dll (a stand-in in contract tests)."""
    import ctypes

    library = ntdsapi if ntdsapi is not None else ctypes.WinDLL("ntdsapi")  # type: ignore[attr-defined]
    handle = ctypes.c_void_p()
    code = library.DsBindWithCredW(request.dst_domain_controller, request.dst_domain, None,
                                   ctypes.byref(handle))
    if code:
        raise DsAddSidHistoryFailed("DsBindWithCredW", code, _win32_hint(code))
    credentials = ctypes.c_void_p()
    try:
        cred = request.src_credential
        if cred is not None:
            if source_password is None:
                raise SidHistoryRefused("DsAddSidHistory: the source credential's password"
                                        f" ({cred.secret or 'its secret'}) was not given")
            code = library.DsMakePasswordCredentialsW(cred.user, cred.domain, source_password,
                                                      ctypes.byref(credentials))
            if code:
                raise DsAddSidHistoryFailed("DsMakePasswordCredentialsW", code,
                                            _win32_hint(code))
        arguments = dict(request.win32_arguments())
        code = library.DsAddSidHistoryW(
            handle, arguments["Flags"], arguments["SrcDomain"], arguments["SrcPrincipal"],
            arguments["SrcDomainController"], credentials if cred is not None else None,
            arguments["DstDomain"], arguments["DstPrincipal"])
        if code == ERROR_DS_SRC_SID_EXISTS_IN_FOREST:
            return False
        if code:
            raise DsAddSidHistoryFailed("DsAddSidHistoryW", code, _win32_hint(code))
        return True
    finally:
        if credentials.value:
            library.DsFreePasswordCredentials(credentials)
        library.DsUnBindW(ctypes.byref(handle))


def _win32_hint(code: int) -> str:
    if code == ERROR_ACCESS_DENIED:
        return (f"access denied; {Prerequisite.MIGRATE_RIGHT.fix}, and"
                f" {Prerequisite.SOURCE_ADMIN.fix}")
    return "see `ferry check` for the DsAddSidHistory prerequisites"


def add_sid_histories_windows(conn: Any, requests: Sequence[SidHistoryRequest],
                              target_domain: str, target_dc: str,
                              subtrees: WriteSubtrees | None, ntdsapi: Any = None
                              ) -> list[SidHistoryResult | FerryAgentError]:
    """The add_sid_history work on a Windows DC's agent: each target found by objectGUID over
    LDAP and checked as on Samba (built-in, protected, outside the subtrees: refused before
    any call), then one DsAddSidHistoryW with the agent's own identity (the trust)."""
    from ..passwords import targets

    outcomes: list[SidHistoryResult | FerryAgentError] = []
    for request in requests:
        guid = request.target[6:-1] if request.target.startswith("<GUID=") else ""
        if not guid or request.source is None or len(request.sids) != 1:
            outcomes.append(SidHistoryRefused(
                f"DsAddSidHistory: {request.target}: needs a <GUID=...> target, one SID and"
                " its source principal"))
            continue
        (found,) = targets.resolve(conn, [guid], subtrees, operation="DsAddSidHistory",
                                   account_types=targets.USERS | targets.GROUPS)
        if found.refusal:
            outcomes.append(SidHistoryRefused(found.refusal))
            continue
        call = DsAddSidHistoryRequest(
            request.source.domain, request.source.principal,
            request.source.domain_controller, target_domain, found.sam, target_dc)
        try:
            added = call_ds_add_sid_history(call, None, ntdsapi)
        except SidHistoryRefused as exc:
            outcomes.append(exc)
            continue
        sid = request.sids[0]
        outcomes.append(SidHistoryResult(found.dn, (sid,) if added else (),
                                         () if added else (sid,)))
    return outcomes
