"""The names an offline domain join blob is for, read without Samba.

A djoin/`net offlinejoin` savefile is UTF-16LE text (with a BOM) holding base64 of an NDR
type-serialized ODJ_PROVISION_DATA; its first ODJ_WIN7BLOB starts with three conformant
varying strings, lpDomain (DNS), lpMachineName and lpMachinePassword, and its
DnsDomainInfo's first buffers are the NetBIOS and DNS domain names; then DcInfo names the DC
the account was made on ("\\\\name", "\\\\address"). smb.conf must name that domain before
`net offlinejoin requestodj` takes the blob, so the device reads them here; the DC is where
the keytab is made later. The password is skipped over, never decoded.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

from ferry_agent.errors import FerryAgentError

_MAX_CHARS = 1024   # no name in a blob is longer; a larger count is no string header


class OdjError(FerryAgentError):
    """The bytes are not an offline domain join blob."""


@dataclass(frozen=True)
class OdjNames:
    dns_domain: str
    machine: str
    netbios_domain: str
    dc_name: str = ""        # DcInfo's DomainControllerName, less its two backslashes
    dc_address: str = ""     # and its DomainControllerAddress


def odj_names(blob: bytes) -> OdjNames:
    """The DNS domain, machine and NetBIOS domain names of an ODJ blob; OdjError if it is
    none."""
    data = _ndr(blob)
    position = _first_string(data)
    if position < 0:
        raise OdjError("the offline join blob holds no domain name")
    strings: list[str] = []
    while len(strings) < 3:   # lpDomain, lpMachineName, lpMachinePassword: back to back
        text, position = _string(data, position, decode=len(strings) < 2)
        strings.append(text)
    netbios = ""
    while position + 12 <= len(data) and not netbios:
        found = _string_at(data, position)
        if found is None:
            position += 4
            continue
        netbios, position = found
    dns, machine = strings[0].rstrip("\0"), strings[1].rstrip("\0")
    netbios = netbios.rstrip("\0")
    if not dns or not machine or not netbios or "." not in dns:
        raise OdjError("the offline join blob does not name a domain and a machine")
    dc_name, dc_address = _dc_info(data, position)
    return OdjNames(dns.lower(), machine.upper(), netbios.upper(), dc_name, dc_address)


def _dc_info(data: bytes, position: int) -> tuple[str, str]:
    """DcInfo's DC name and address: the first two "\\\\..." strings after `position`."""
    found: list[str] = []
    while position + 12 <= len(data) and len(found) < 2:
        string = _string_at(data, position)
        if string is None:
            position += 4
            continue
        text, position = string
        if text.startswith("\\\\"):
            found.append(text.rstrip("\0")[2:])
    found += ["", ""]
    return found[0], found[1]


def _ndr(blob: bytes) -> bytes:
    try:
        bom = blob[:2] == b"\xff\xfe"
        text = blob[2:].decode("utf-16-le") if bom else blob.decode("ascii")
        return base64.b64decode(text.strip("\ufeff\0\r\n "), validate=True)
    except (UnicodeDecodeError, binascii.Error, ValueError):
        raise OdjError("the offline join blob is not base64 text (a djoin savefile)") from None


def _first_string(data: bytes) -> int:
    for position in range(0, len(data) - 12, 4):
        found = _string_at(data, position)
        if found is not None and "." in found[0]:
            return position
    return -1


def _string_at(data: bytes, position: int) -> tuple[str, int] | None:
    """A printable conformant varying UTF-16 string at `position`, and where it ends."""
    if position + 12 > len(data):
        return None
    maximum, offset, actual = struct.unpack_from("<III", data, position)
    if offset != 0 or not 0 < actual <= maximum <= _MAX_CHARS:
        return None
    end = position + 12 + 2 * actual
    if end > len(data):
        return None
    try:
        text = data[position + 12:end].decode("utf-16-le")
    except UnicodeDecodeError:
        return None
    if not text.rstrip("\0") or not all(c.isprintable() for c in text.rstrip("\0")):
        return None
    return text, end + (-end % 4)


def _string(data: bytes, position: int, *, decode: bool) -> tuple[str, int]:
    if position + 12 > len(data):
        raise OdjError("the offline join blob ends early")
    _maximum, _offset, actual = struct.unpack_from("<III", data, position)
    end = position + 12 + 2 * actual
    if end > len(data):
        raise OdjError("the offline join blob ends early")
    text = data[position + 12:end].decode("utf-16-le", "replace") if decode else ""
    return text, end + (-end % 4)
