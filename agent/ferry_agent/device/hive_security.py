"""Key security of an offline registry hive (REGF): every sk cell's security descriptor
translated, in memory, on the hive file's bytes (standard library only).

hivex, the library that edits hives on Linux, has no call that reads or writes key security
(its Python binding reaches nk and vk cells only), so this module does what Windows' offreg
(ORSetKeySecurity) does: a descriptor that still fits its cell is rewritten in place; one
that grew (add mode adds ACEs) gets a new sk cell in a bin appended to the hive, takes the
old cell's place in the sk list, every key that used the old cell points to the new one,
and the old cell is freed. The caller writes the result to a new file, has hivex read it
through and only then replaces the hive, so a failure leaves the hive as it was.

REGF layout: https://github.com/msuhanov/regf (Windows registry file format specification).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import FerryAgentError
from .descriptor import DescriptorError, SidMap, build_descriptor, parse_descriptor, translate
from .figures import ReaclFigures
from .outcome import ReaclMode

BASE_BLOCK = 0x1000
BIN_HEADER = 0x20
BIN_SIZE = 0x1000
_SK_HEADER = 4 + 20       # cell size, "sk", reserved, flink, blink, refcount, SD size
_NK_SECURITY = 4 + 44     # offset of an nk cell's security cell index
_NO_CELL = 0xFFFFFFFF


class HiveError(FerryAgentError):
    """A hive file this module cannot read; nothing was changed."""


@dataclass
class _Sk:
    offset: int          # cell offset, relative to the first bin
    cell_size: int
    flink: int
    blink: int
    refcount: int
    descriptor: bytes


def translate_hive(data: bytes, table: SidMap, mode: ReaclMode, source_domain: str,
                   name: str, figures: ReaclFigures) -> bytes | None:
    """The hive `data` with every key's security translated, or None if nothing changed.
    Figures count keys (scanned, changed); `name` labels errors."""
    buf = bytearray(data)
    _check_base_block(buf, name)
    sks: dict[int, _Sk] = {}
    users: dict[int, list[int]] = {}     # sk offset -> nk offsets using it
    for offset, size, signature in _cells(buf, name):
        cell = BASE_BLOCK + offset
        if signature == b"sk":
            flink, blink, refcount, sd_size = struct.unpack_from("<IIII", buf, cell + 8)
            if _SK_HEADER + sd_size > size:
                figures.error(f"{name}: sk cell 0x{offset:x} says its descriptor is {sd_size}"
                              f" bytes, more than its {size}-byte cell: left as it is")
                continue
            sks[offset] = _Sk(offset, size, flink, blink, refcount,
                              bytes(buf[cell + _SK_HEADER:cell + _SK_HEADER + sd_size]))
        elif signature == b"nk":
            (security,) = struct.unpack_from("<I", buf, cell + _NK_SECURITY)
            users.setdefault(security, []).append(offset)
    figures.scanned += sum(len(keys) for keys in users.values())
    grown: dict[int, bytes] = {}
    touched = False
    for sk in sks.values():
        try:
            result = translate(parse_descriptor(sk.descriptor), table, mode, source_domain)
            figures.matched |= result.matched
            figures.unmatched |= result.unmatched
            if not result.changes:
                continue
            new = build_descriptor(result.descriptor)
        except DescriptorError as exc:
            keys = len(users.get(sk.offset, ()))
            figures.error(f"{name}: the security of {keys} key(s) (sk cell 0x{sk.offset:x})"
                          f" left as it is: {exc}")
            continue
        figures.changed += len(users.get(sk.offset, ()))
        touched = True
        if _SK_HEADER + len(new) <= sk.cell_size:
            cell = BASE_BLOCK + sk.offset
            struct.pack_into("<I", buf, cell + 20, len(new))
            buf[cell + _SK_HEADER:cell + sk.cell_size] = new.ljust(sk.cell_size - _SK_HEADER, b"\0")
        else:
            grown[sk.offset] = new
    if not touched:
        return None
    if grown:
        _relocate(buf, sks, users, grown)
    _seal_base_block(buf)
    _verify(buf, name)
    return bytes(buf)


def _verify(buf: bytearray, name: str) -> None:
    """What hivex does not check: every key points to an sk cell whose descriptor parses,
    the sk cells form one ring, and each counts the keys that use it."""
    sks: dict[int, tuple[int, int, int]] = {}
    uses: dict[int, int] = {}
    for offset, _, signature in _cells(buf, name):
        cell = BASE_BLOCK + offset
        if signature == b"sk":
            flink, blink, refcount, sd_size = struct.unpack_from("<IIII", buf, cell + 8)
            try:
                parse_descriptor(bytes(buf[cell + _SK_HEADER:cell + _SK_HEADER + sd_size]))
            except DescriptorError as exc:
                raise HiveError(f"{name}: rewritten sk cell 0x{offset:x} does not parse: {exc}"
                                ) from None
            sks[offset] = (flink, blink, refcount)
        elif signature == b"nk":
            (security,) = struct.unpack_from("<I", buf, cell + _NK_SECURITY)
            uses[security] = uses.get(security, 0) + 1
    for security, count in uses.items():
        if security not in sks:
            raise HiveError(f"{name}: {count} key(s) would point to 0x{security:x}, no sk cell")
    for offset, (flink, blink, refcount) in sks.items():
        if flink not in sks or blink not in sks or sks[flink][1] != offset:
            raise HiveError(f"{name}: sk cell 0x{offset:x} would break the sk list")
        if refcount < uses.get(offset, 0):
            raise HiveError(f"{name}: sk cell 0x{offset:x} would count {refcount} keys,"
                            f" {uses.get(offset, 0)} use it")


def _relocate(buf: bytearray, sks: dict[int, _Sk], users: dict[int, list[int]],
              grown: dict[int, bytes]) -> None:
    """Give each grown descriptor a new sk cell in one bin appended to the hive."""
    (bins_size,) = struct.unpack_from("<I", buf, 0x28)
    start = bins_size                      # the new bin's offset, relative to the first bin
    moved: dict[int, int] = {}
    cells = b""
    for old, descriptor in grown.items():
        size = _cell_size(_SK_HEADER - 4 + len(descriptor))
        moved[old] = start + BIN_HEADER + len(cells)
        cells += struct.pack("<i", -size) + b"\0" * (size - 4)   # filled below
    length = -(-(BIN_HEADER + len(cells)) // BIN_SIZE) * BIN_SIZE
    free = length - BIN_HEADER - len(cells)
    hbin = (struct.pack("<4sII", b"hbin", start, length) + b"\0" * 20 + cells
            + (struct.pack("<i", free) + b"\0" * (free - 4) if free else b""))
    del buf[BASE_BLOCK + bins_size:]       # anything past the bins is no part of the hive
    buf += hbin
    struct.pack_into("<I", buf, 0x28, bins_size + length)

    def new(offset: int) -> int:
        return moved.get(offset, offset)

    for old, descriptor in grown.items():
        sk = sks[old]
        cell = BASE_BLOCK + moved[old]
        struct.pack_into("<2sHIIII", buf, cell + 4, b"sk", 0, new(sk.flink), new(sk.blink),
                         sk.refcount, len(descriptor))
        buf[cell + _SK_HEADER:cell + _SK_HEADER + len(descriptor)] = descriptor
        for key in users.get(old, ()):
            struct.pack_into("<I", buf, BASE_BLOCK + key + _NK_SECURITY, moved[old])
        struct.pack_into("<i", buf, BASE_BLOCK + old, sk.cell_size)   # positive: free
    for sk in sks.values():                # neighbours of moved cells point to the new ones
        if sk.offset not in moved:
            struct.pack_into("<II", buf, BASE_BLOCK + sk.offset + 8, new(sk.flink), new(sk.blink))


def _cell_size(data_length: int) -> int:
    return -(-(4 + data_length) // 8) * 8


def _cells(buf: bytearray, name: str) -> Iterator[tuple[int, int, bytes]]:
    """(offset relative to the first bin, size, signature) of every allocated cell."""
    (bins_size,) = struct.unpack_from("<I", buf, 0x28)
    end = BASE_BLOCK + bins_size
    if end > len(buf):
        raise HiveError(f"{name}: its base block counts {bins_size} bytes of bins, the file"
                        f" has {len(buf) - BASE_BLOCK}: not a complete hive")
    position = BASE_BLOCK
    while position < end:
        if buf[position:position + 4] != b"hbin":
            raise HiveError(f"{name}: no hbin at offset 0x{position - BASE_BLOCK:x}")
        (length,) = struct.unpack_from("<I", buf, position + 8)
        if length < BIN_SIZE or length % BIN_SIZE or position + length > end:
            raise HiveError(f"{name}: hbin at 0x{position - BASE_BLOCK:x} has size {length}")
        cell = position + BIN_HEADER
        while cell < position + length:
            (size,) = struct.unpack_from("<i", buf, cell)
            if size == 0 or cell + abs(size) > position + length:
                raise HiveError(f"{name}: cell at 0x{cell - BASE_BLOCK:x} has size {size}")
            if size < 0:
                yield cell - BASE_BLOCK, -size, bytes(buf[cell + 4:cell + 6])
            cell += abs(size)
        position += length


def _check_base_block(buf: bytearray, name: str) -> None:
    if len(buf) < BASE_BLOCK + BIN_SIZE or buf[:4] != b"regf":
        raise HiveError(f"{name}: not a registry hive (no regf base block)")
    primary, secondary = struct.unpack_from("<II", buf, 4)
    if primary != secondary:
        raise HiveError(f"{name}: its sequence numbers differ ({primary}, {secondary}): it was"
                        " not written to the end and has changes in its .LOG1/.LOG2 files;"
                        " load and unload it once on Windows (or replay the logs), then"
                        " run again")
    if _checksum(buf) != struct.unpack_from("<I", buf, 0x1FC)[0]:
        raise HiveError(f"{name}: the base block's checksum is wrong: a damaged hive")


def _seal_base_block(buf: bytearray) -> None:
    """One more write: both sequence numbers up, the checksum recomputed."""
    (sequence,) = struct.unpack_from("<I", buf, 4)
    struct.pack_into("<II", buf, 4, sequence + 1, sequence + 1)
    struct.pack_into("<I", buf, 0x1FC, _checksum(buf))


def _checksum(buf: bytearray) -> int:
    value = 0
    for (word,) in struct.iter_unpack("<I", bytes(buf[:0x1FC])):
        value ^= word
    return {0: 1, _NO_CELL: 0xFFFFFFFE}.get(value, value)
