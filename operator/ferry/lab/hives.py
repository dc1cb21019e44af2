"""Registry hive files (REGF 1.5) written from scratch, for the lab and the tests: Debian
ships no sample hive, and a device ReACL test needs a SOFTWARE hive with a ProfileList and a
user's NTUSER.DAT whose key security names source-domain SIDs.

Pure Python, written independently of what the agent edits hives with (hivex and
ferry_agent.device.hive_security), so a test reads its result with other parsers. One bin
holds every cell; sk cells are shared by keys with the same descriptor, as Windows does.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ferry_agent.device.descriptor import Ace, Acl, SecurityDescriptor, build_descriptor
from ferry_agent.sid import parse_sid

REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD = 1, 2, 3, 4
PROFILE_LIST = ("Microsoft", "Windows NT", "CurrentVersion", "ProfileList")
KEY_ALL_ACCESS = 0x000F003F
CONTAINER_INHERIT = 0x02
_NONE = 0xFFFFFFFF
_BIN_SIZE = 0x1000


@dataclass(frozen=True)
class Value:
    name: str
    kind: int
    data: bytes


@dataclass
class Key:
    """A key with its values and subkeys; `security` None: the parent's descriptor."""

    name: str
    values: list[Value] = field(default_factory=list)
    children: list[Key] = field(default_factory=list)
    security: bytes | None = None

    def child(self, name: str) -> Key:
        for key in self.children:
            if key.name.lower() == name.lower():
                return key
        key = Key(name)
        self.children.append(key)
        return key


def key_security(owner: str, full_control: Sequence[str], group: str = "S-1-5-18") -> bytes:
    """A key's descriptor: `owner`, and full control (inherited by subkeys) for each SID."""
    aces = tuple(Ace(0x00, CONTAINER_INHERIT, KEY_ALL_ACCESS, parse_sid(s)) for s in full_control)
    return build_descriptor(SecurityDescriptor(0x8004, parse_sid(owner), parse_sid(group),
                                               None, Acl(2, aces)))


def text(value: str) -> bytes:
    return (value + "\0").encode("utf-16-le")


def dword(value: int) -> bytes:
    return struct.pack("<I", value)


def profile_values(sid: str, image_path: str) -> list[Value]:
    """The values Windows keeps under ProfileList\\<SID>."""
    return [Value("ProfileImagePath", REG_EXPAND_SZ, text(image_path)),
            Value("Sid", REG_BINARY, parse_sid(sid).to_bytes()),
            Value("Flags", REG_DWORD, dword(0)), Value("State", REG_DWORD, dword(0)),
            Value("RefCount", REG_DWORD, dword(0)), Value("FullProfile", REG_DWORD, dword(1)),
            Value("LocalProfileLoadTimeLow", REG_DWORD, dword(0x1234)),
            Value("LocalProfileLoadTimeHigh", REG_DWORD, dword(0x01DB))]


def software_hive(path: Path, profiles: Mapping[str, str], security: bytes,
                  key_owners: Mapping[str, bytes] | None = None) -> None:
    """A SOFTWARE hive: ProfileList with one key per {SID: profile folder name} (and the
    system profile), plus Ferry\\<name> keys with their own descriptors (`key_owners`)."""
    root = Key("ROOT", security=security)
    plist = root
    for part in PROFILE_LIST:
        plist = plist.child(part)
    plist.children.append(Key("S-1-5-18", [Value(
        "ProfileImagePath", REG_EXPAND_SZ, text(r"%systemroot%\system32\config\systemprofile"))]))
    for sid, folder in profiles.items():
        plist.children.append(Key(sid, profile_values(sid, rf"C:\Users\{folder}")))
    apps = root.child("Ferry")
    for name, descriptor in (key_owners or {}).items():
        apps.children.append(Key(name, [Value("Path", REG_SZ, text(rf"C:\Apps\{name}"))],
                                 security=descriptor))
    write_hive(path, root, r"\??\C:\Windows\System32\config\SOFTWARE")


def ntuser_hive(path: Path, user_sid: str, folder: str) -> None:
    """A user's NTUSER.DAT whose keys' security names the user's SID (owner, full control)."""
    security = key_security(user_sid, ["S-1-5-18", "S-1-5-32-544", user_sid], group=user_sid)
    root = Key("ROOT", security=security)
    root.child("Environment").values.append(
        Value("TEMP", REG_EXPAND_SZ, text(r"%USERPROFILE%\AppData\Local\Temp")))
    root.child("Software").child("Microsoft").child("Office")
    write_hive(path, root, rf"\??\C:\Users\{folder}\ntuser.dat")


def write_hive(path: Path, root: Key, hive_name: str) -> None:
    """`root` and everything below it as a hive file at `path`."""
    layout = _Layout()
    layout.place(root, None, root.security or b"")
    data = layout.render()
    filetime = int((time.time() + 11644473600) * 10**7)
    base = bytearray(0x1000)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, filetime, 1, 5, 0, 1,
                     layout.offsets[id(root)], len(data), 1)
    name = hive_name.encode("utf-16-le")[:64]
    base[0x30:0x30 + len(name)] = name
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:0x1FC])):
        checksum ^= word
    struct.pack_into("<I", base, 0x1FC, {0: 1, _NONE: 0xFFFFFFFE}.get(checksum, checksum))
    path.write_bytes(bytes(base) + data)


class _Layout:
    """Cells are placed first (their sizes do not depend on offsets), then written."""

    def __init__(self) -> None:
        self.offsets: dict[int, int] = {}
        self.next = 0x20
        self.sks: dict[bytes, int] = {}                   # descriptor -> sk offset
        self.sk_users: dict[bytes, int] = {}
        self.keys: list[tuple[Key, int | None, bytes]] = []
        self.value_cells: dict[int, tuple[int, int | None]] = {}  # id(value) -> (vk, data)

    def alloc(self, length: int) -> int:
        size = -(-(4 + length) // 8) * 8
        offset = self.next
        self.next += size
        return offset

    def place(self, key: Key, parent: int | None, inherited: bytes) -> None:
        security = key.security or inherited
        nk = self.alloc(76 + len(key.name))
        self.offsets[id(key)] = nk
        if security not in self.sks:
            self.sks[security] = self.alloc(20 + len(security))
        self.sk_users[security] = self.sk_users.get(security, 0) + 1
        for value in key.values:
            vk = self.alloc(20 + len(value.name))
            data = self.alloc(len(value.data)) if len(value.data) > 4 else None
            self.value_cells[id(value)] = (vk, data)
        if key.values:
            self.offsets[id(key.values)] = self.alloc(4 * len(key.values))
        if key.children:
            self.offsets[id(key.children)] = self.alloc(4 + 8 * len(key.children))
        self.keys.append((key, parent, security))
        for child in key.children:
            self.place(child, nk, security)

    def render(self) -> bytes:
        length = -(-self.next // _BIN_SIZE) * _BIN_SIZE
        buf = bytearray(length)
        struct.pack_into("<4sII", buf, 0, b"hbin", 0, length)
        filled: list[tuple[int, int]] = []

        def cell(offset: int, data: bytes) -> None:
            size = -(-(4 + len(data)) // 8) * 8
            struct.pack_into("<i", buf, offset, -size)
            buf[offset + 4:offset + 4 + len(data)] = data
            filled.append((offset, size))

        for key, parent, security in self.keys:
            nk = self.offsets[id(key)]
            children = sorted(key.children, key=lambda k: k.name.upper())
            flags = 0x20 | (0x0C if parent is None else 0)   # compressed name; root entry
            cell(nk, struct.pack(
                "<2sHQIIIIIIIIIIIIIIIHH", b"nk", flags, 0, 0, parent or 0, len(children), 0,
                self.offsets[id(key.children)] if children else _NONE, _NONE, len(key.values),
                self.offsets[id(key.values)] if key.values else _NONE, self.sks[security], _NONE,
                max((2 * len(k.name) for k in children), default=0), 0,
                max((2 * len(v.name) for v in key.values), default=0),
                max((len(v.data) for v in key.values), default=0), 0, len(key.name), 0)
                + key.name.encode("ascii"))
            for value in key.values:
                vk, data = self.value_cells[id(value)]
                size = len(value.data)
                inline = size <= 4
                cell(vk, struct.pack("<2sHIIIHH", b"vk", len(value.name),
                                     size | (0x80000000 if inline else 0),
                                     int.from_bytes(value.data.ljust(4, b"\0"), "little")
                                     if inline else data or 0, value.kind,
                                     1 if value.name else 0, 0) + value.name.encode("ascii"))
                if data is not None:
                    cell(data, value.data)
            if key.values:
                cell(self.offsets[id(key.values)], b"".join(
                    struct.pack("<I", self.value_cells[id(v)][0]) for v in key.values))
            if children:
                cell(self.offsets[id(key.children)], struct.pack("<2sH", b"lh", len(children))
                     + b"".join(struct.pack("<II", self.offsets[id(k)], _name_hash(k.name))
                                for k in children))
        ring = list(self.sks.items())
        for index, (descriptor, offset) in enumerate(ring):
            flink = ring[(index + 1) % len(ring)][1]
            blink = ring[index - 1][1]
            cell(offset, struct.pack("<2sHIIII", b"sk", 0, flink, blink,
                                     self.sk_users[descriptor], len(descriptor)) + descriptor)
        end = max(offset + size for offset, size in filled)
        if end < length:
            struct.pack_into("<i", buf, end, length - end)             # the rest: one free cell
        return bytes(buf)


def _name_hash(name: str) -> int:
    value = 0
    for char in name.upper():
        value = (value * 37 + ord(char)) & _NONE
    return value
