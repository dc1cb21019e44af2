"""Whether a DC takes TCP connections on the ports password sync needs besides LDAPS: the RPC
endpoint mapper (135: DRSUAPI replication and SAMR over TCP) and SMB (445: SAMR over
\\pipe\\samr, the only path on which Samba takes an NT hash). `ferry check` reports these."""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

RPC_ENDPOINT_MAPPER = 135
SMB = 445
# What serves each port, and what to switch on when it is refused.
_SERVICES = {
    RPC_ENDPOINT_MAPPER: ("RPC endpoint mapper", "the DC needs its RPC server (Samba: 'rpc' in"
                          " server services; Windows: the RPC Endpoint Mapper service)"),
    SMB: ("SMB", "the DC needs smbd (Samba: 's3fs' in server services; Windows: the Server"
                 " service)"),
}  # fmt: skip


@dataclass(frozen=True)
class PortProbe:
    """One TCP connect: `state` is open, refused, timeout, unresolved or unreachable."""

    host: str
    port: int
    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state == "open"

    @property
    def message(self) -> str:
        service, needs = _SERVICES.get(self.port, ("TCP", "start the service that serves it"))
        where = f"{self.port} ({service}) on {self.host}"
        if self.state == "open":
            return f"{where} is open"
        if self.state == "refused":
            return f"{where} refused: {needs}"
        if self.state == "timeout":
            return (f"{where} did not answer within {self.detail}: a firewall drops it; allow"
                    f" TCP {self.port} from Ferry to the DC")
        if self.state == "unresolved":
            return f"{self.host} does not resolve ({self.detail}); check the DC's name"
        return f"{where} is unreachable ({self.detail}); check the route to the DC"


def probe_port(host: str, port: int, timeout: float = 5.0) -> PortProbe:
    """Open and close one TCP connection to host:port within `timeout` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return PortProbe(host, port, "open")
    except ConnectionRefusedError:
        return PortProbe(host, port, "refused")
    except TimeoutError:
        return PortProbe(host, port, "timeout", f"{timeout:g} s")
    except socket.gaierror as exc:
        return PortProbe(host, port, "unresolved", exc.strerror or str(exc))
    except OSError as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0, str(exc))
        return PortProbe(host, port, "unreachable", reason)


@dataclass(frozen=True)
class RpcPorts:
    """The RPC endpoint mapper and SMB probes of one DC."""

    host: str
    probes: tuple[PortProbe, ...]

    @property
    def ok(self) -> bool:
        return all(probe.ok for probe in self.probes)

    @property
    def message(self) -> str:
        failed = [probe.message for probe in self.probes if not probe.ok]
        if not failed:
            ports = ", ".join(str(probe.port) for probe in self.probes)
            return f"{self.host} takes connections on {ports} (RPC, SMB)"
        return "; ".join(failed)


def rpc_ports(host: str, timeout: float = 5.0) -> RpcPorts:
    """Probe 135 and 445 on `host`."""
    ports = (RPC_ENDPOINT_MAPPER, SMB)
    return RpcPorts(host, tuple(probe_port(host, port, timeout) for port in ports))
