"""DCE/RPC plumbing shared by the DRSUAPI reads and the SAMR sets: endpoint mapper lookups,
calls that keep the server's status code, and failures turned into messages that say what
to fix.

impacket is imported inside the functions that use it, so importing this module is cheap.
"""

from __future__ import annotations

import socket
from typing import Any

from .endpoint import DcEndpoint
from .errors import PasswordSyncError

EPM_PORT = 135
# How Samba and Windows end an RPC call whose NTLM logon failed: Samba answers the first
# request with nca_s_proto_error (the AUTH3 leg has no reply of its own), Windows with
# access denied.
_LOGON_FAULTS = ("nca_s_proto_error", "rpc_s_access_denied", "nca_s_fault_access_denied")
_WIN32_NAMES = {
    0x5: "ERROR_ACCESS_DENIED",
    0x57: "ERROR_INVALID_PARAMETER",
    0x20EF: "ERROR_DS_DRA_BAD_DN",
    0x20F5: "ERROR_DS_DRA_BAD_NC",
    0x2105: "ERROR_DS_DRA_ACCESS_DENIED",
    0x2106: "ERROR_DS_DRA_SCHEMA_MISMATCH",
    0x2107: "ERROR_DS_DRA_SOURCE_DISABLED",
    0x2120: "ERROR_DS_DRA_OBJ_NC_MISMATCH",
    0x2121: "ERROR_DS_DRA_SOURCE_IS_PARTIAL_REPLICA",
    0x2124: "ERROR_DS_DRA_BUSY",
    0x212F: "ERROR_DS_DRA_INTERNAL_ERROR",
    0x20F7: "ERROR_DS_DRA_GENERIC",
    0x2110: "ERROR_DS_DRA_REF_NOT_FOUND",
}
ACCESS_DENIED_CODES = frozenset({0x5, 0x2105})


class RpcFault(PasswordSyncError):
    """A call the server answered with a non-zero status (`code`, a WERROR or NTSTATUS)."""

    def __init__(self, message: str, code: int):
        self.code = code
        super().__init__(message)


def status_name(code: int) -> str:
    """`0x2105 (ERROR_DS_DRA_ACCESS_DENIED)`: the code as the DC logs and documents it."""
    name = _WIN32_NAMES.get(code)
    return f"0x{code:x} ({name})" if name else f"0x{code:x}"


def call(dce: Any, request: Any, what: str) -> Any:
    """`dce.request` that keeps the status code: impacket parses a failed DRSUAPI answer's
    status from the wrong offset (it reports 0x0 ERROR_SUCCESS for access denied)."""
    from impacket.dcerpc.v5.rpcrt import DCERPCException

    dce.call(request.opnum, request)
    try:
        answer = dce.recv()
    except DCERPCException as exc:
        raise CallEnded(f"{what}: the DC ended the call ({exc})", str(exc)) from None
    code = int.from_bytes(answer[-4:], "little")
    if code:
        raise RpcFault(f"{what}: the DC answered {status_name(code)}", code)
    module = __import__(request.__module__, fromlist=["_"])
    return getattr(module, type(request).__name__ + "Response")(answer)


class CallEnded(PasswordSyncError):
    """The DC answered a call with an RPC fault instead of a result (`fault`, impacket's name)."""

    def __init__(self, message: str, fault: str):
        self.fault = fault
        super().__init__(message)

    @property
    def logon_failed(self) -> bool:
        """How Samba and Windows end the first call after a failed NTLM logon."""
        return self.fault in _LOGON_FAULTS


class LogonRefused(PasswordSyncError):
    """The DC refused the NTLM logon of the endpoint's account."""


class Unreachable(PasswordSyncError):
    """Nothing answers on the port (the message names host, port and service)."""


def tcp_binding(endpoint: DcEndpoint, interface: bytes, service: str) -> str:
    """`ncacn_ip_tcp:HOST[PORT]` of `interface` from the DC's endpoint mapper (port 135)."""
    from impacket.dcerpc.v5 import epm, transport
    from impacket.dcerpc.v5.rpcrt import DCERPCException

    rpc = transport.DCERPCTransportFactory(f"ncacn_ip_tcp:{endpoint.host}[{EPM_PORT}]")
    rpc.set_connect_timeout(endpoint.connect_timeout)
    dce = rpc.get_dce_rpc()
    try:
        dce.connect()
    except (DCERPCException, OSError) as exc:
        raise unreachable(endpoint, EPM_PORT, "the endpoint mapper", exc) from None
    try:
        rpc.get_socket().settimeout(endpoint.receive_timeout)
        return str(epm.hept_map(endpoint.host, interface, protocol="ncacn_ip_tcp", dce=dce))
    except (DCERPCException, OSError) as exc:
        raise PasswordSyncError(
            f"{endpoint.describe()}: the endpoint mapper on port {EPM_PORT} names no {service}"
            f" endpoint ({exc}); is this host a domain controller?"
        ) from None
    finally:
        dce.disconnect()


def unreachable(endpoint: DcEndpoint, port: int, service: str, exc: BaseException) -> Unreachable:
    reason = "timed out" if isinstance(exc, socket.timeout | TimeoutError) else str(exc)
    return Unreachable(
        f"{endpoint.describe()}: cannot reach {service} on port {port} ({reason}); check that"
        f" the host is a DC and that a firewall lets this machine reach TCP {port}"
    )


def logon_refused(endpoint: DcEndpoint) -> LogonRefused:
    return LogonRefused(
        f"{endpoint.describe()}: the DC refused the NTLM logon of {endpoint.user!r}: check the"
        " user name and password (and that the account is enabled, not locked or expired)"
    )
