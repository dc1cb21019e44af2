"""Security descriptors: parsed and built back losslessly, translated by mode, source SIDs the
table lacks reported and left, bad bytes refused with an error saying where."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess

import pytest

from ferry_agent.device.descriptor import (
    Ace,
    Acl,
    DescriptorError,
    SecurityDescriptor,
    SidMap,
    build_descriptor,
    parse_descriptor,
    translate,
)
from ferry_agent.device.ntacl import NtAclError, parse_ntacl
from ferry_agent.device.outcome import ReaclMode
from ferry_agent.sid import Sid, parse_sid

SRC = "S-1-5-21-1111111111-2222222222-333333333"
TGT = "S-1-5-21-444444444-555555555-666666666"
TABLE = {f"{SRC}-1102": f"{TGT}-1201", f"{SRC}-1104": f"{TGT}-1307", f"{SRC}-513": f"{TGT}-513"}
FULL, READ = 0x001F01FF, 0x001200A9


def sid(text: str) -> Sid:
    return parse_sid(text)


def ace(who: str, mask: int = FULL, flags: int = 0, ace_type: int = 0) -> Ace:
    return Ace(ace_type, flags, mask, sid(who))


def descriptor(*aces: Ace, owner: str = f"{SRC}-1102", group: str = f"{SRC}-513",
               sacl: Acl | None = None) -> SecurityDescriptor:
    control = 0x8004 | (0x10 if sacl else 0)
    return SecurityDescriptor(control, sid(owner), sid(group), sacl, Acl(2, tuple(aces)))


def dacl_sids(sd: SecurityDescriptor) -> list[str]:
    assert sd.dacl is not None
    return [str(a.sid) for a in sd.dacl.aces]


BASE = descriptor(ace("S-1-5-18"), ace(f"{SRC}-1102", flags=0x03), ace(f"{SRC}-1104", READ),
                  ace(f"{SRC}-1109", READ), ace(f"{SRC}-1103", 0x10000, ace_type=1))


def test_replace_swaps_sids_in_place_and_owner_and_group() -> None:
    result = translate(BASE, TABLE, ReaclMode.REPLACE, SRC)
    assert dacl_sids(result.descriptor) == [
        "S-1-5-18", f"{TGT}-1201", f"{TGT}-1307", f"{SRC}-1109", f"{SRC}-1103"]
    assert str(result.descriptor.owner) == f"{TGT}-1201"
    assert str(result.descriptor.group) == f"{TGT}-513"
    assert result.changes == 4
    assert result.matched == {f"{SRC}-1102", f"{SRC}-1104", f"{SRC}-513"}
    # masks and flags go with the SID
    assert result.descriptor.dacl is not None
    assert result.descriptor.dacl.aces[1] == ace(f"{TGT}-1201", flags=0x03)


def test_source_sids_missing_from_the_table_are_reported_and_left() -> None:
    result = translate(BASE, TABLE, ReaclMode.REPLACE, SRC)
    assert result.unmatched == {f"{SRC}-1109", f"{SRC}-1103"}
    # SIDs of other domains and well-known ones are neither reported nor touched
    other = translate(descriptor(ace("S-1-5-21-9-9-9-1102"), ace("S-1-5-32-544")),
                      TABLE, ReaclMode.REPLACE, SRC)
    assert other.unmatched == set()  # owner and group are in the table
    assert dacl_sids(other.descriptor) == ["S-1-5-21-9-9-9-1102", "S-1-5-32-544"]


def test_add_keeps_the_source_ace_with_the_target_copy_right_after_it() -> None:
    result = translate(BASE, TABLE, ReaclMode.ADD, SRC)
    assert dacl_sids(result.descriptor) == [
        "S-1-5-18", f"{SRC}-1102", f"{TGT}-1201", f"{SRC}-1104", f"{TGT}-1307",
        f"{SRC}-1109", f"{SRC}-1103"]
    assert str(result.descriptor.owner) == f"{TGT}-1201"


def test_a_second_run_changes_nothing_in_any_mode() -> None:
    for mode in ReaclMode:
        once = translate(BASE, TABLE, mode, SRC)
        again = translate(once.descriptor, TABLE, mode, SRC)
        assert again.changes == 0, mode
        assert again.descriptor is once.descriptor
        assert build_descriptor(again.descriptor) == build_descriptor(once.descriptor)


def test_replace_after_add_leaves_one_target_ace_each() -> None:
    added = translate(BASE, TABLE, ReaclMode.ADD, SRC).descriptor
    replaced = translate(added, TABLE, ReaclMode.REPLACE, SRC).descriptor
    assert dacl_sids(replaced) == ["S-1-5-18", f"{TGT}-1201", f"{TGT}-1307",
                                   f"{SRC}-1109", f"{SRC}-1103"]


def test_remove_drops_source_aces_and_leaves_owner_and_group() -> None:
    added = translate(BASE, TABLE, ReaclMode.ADD, SRC).descriptor
    removed = translate(added, TABLE, ReaclMode.REMOVE, SRC)
    assert dacl_sids(removed.descriptor) == [
        "S-1-5-18", f"{TGT}-1201", f"{TGT}-1307", f"{SRC}-1109", f"{SRC}-1103"]
    plain = translate(BASE, TABLE, ReaclMode.REMOVE, SRC).descriptor
    assert str(plain.owner) == f"{SRC}-1102" and str(plain.group) == f"{SRC}-513"


def test_the_sacl_is_translated_too() -> None:
    audit = Acl(2, (ace(f"{SRC}-1104", 0x10000, flags=0xC0, ace_type=2),))
    result = translate(descriptor(ace("S-1-5-18"), sacl=audit), TABLE, ReaclMode.REPLACE, SRC)
    assert result.descriptor.sacl is not None
    assert [str(a.sid) for a in result.descriptor.sacl.aces] == [f"{TGT}-1307"]
    assert parse_descriptor(build_descriptor(result.descriptor)) == result.descriptor


def _object_ace(who: str, object_flags: int) -> bytes:
    guids = b"\x11" * 16 * bin(object_flags).count("1")
    body = struct.pack("<II", 0x30, object_flags) + guids + sid(who).to_bytes()
    return struct.pack("<BBH", 0x05, 0x02, 4 + len(body)) + body


def _raw_descriptor(aces: bytes, count: int) -> bytes:
    acl = struct.pack("<BBHHH", 4, 0, 8 + len(aces), count, 0) + aces
    return struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + acl


def test_object_aces_keep_their_guids_and_unknown_aces_stay_byte_for_byte() -> None:
    unknown = struct.pack("<BBH", 0x04, 0, 16) + b"\x01\x02\x03\x04" * 3  # compound ACE
    callback = sid(f"{SRC}-1102").to_bytes() + b"artx\x01\x02\x00\x00"     # conditional data
    cb_body = struct.pack("<I", FULL) + callback
    callback_ace = struct.pack("<BBH", 0x09, 0, 4 + len(cb_body)) + cb_body
    raw = _raw_descriptor(_object_ace(f"{SRC}-1104", 3) + unknown + _object_ace(f"{SRC}-1102", 1)
                          + callback_ace, 4)
    sd = parse_descriptor(raw)
    assert build_descriptor(sd) == raw
    assert sd.dacl is not None
    assert sd.dacl.aces[1].sid is None and sd.dacl.aces[1].body == unknown[4:]
    result = translate(sd, TABLE, ReaclMode.REPLACE, SRC)
    assert result.descriptor.dacl is not None
    new = result.descriptor.dacl.aces
    assert [str(a.sid) if a.sid else None for a in new] == [
        f"{TGT}-1307", None, f"{TGT}-1201", f"{TGT}-1201"]
    assert new[0].object_data == sd.dacl.aces[0].object_data
    assert new[3].extra == b"artx\x01\x02\x00\x00"
    again = parse_descriptor(build_descriptor(result.descriptor))
    assert again == result.descriptor


def test_windows_layout_acls_first_round_trips() -> None:
    owner, dacl = sid(f"{SRC}-1102").to_bytes(), _object_ace(f"{SRC}-1104", 0)
    acl = struct.pack("<BBHHH", 4, 0, 8 + len(dacl), 1, 0) + dacl
    raw = struct.pack("<BBHIIII", 1, 0, 0x8004, 20 + len(acl), 0, 0, 20) + acl + owner
    assert build_descriptor(parse_descriptor(raw)) == raw


SAMBA_SDDL = [
    f"O:{SRC}-1102G:{SRC}-513D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;{SRC}-1104)"
    f"(D;;0x10000;;;{SRC}-1103)",
    f"O:BAG:SYD:AI(A;ID;FA;;;{SRC}-1102)(A;CIIO;GA;;;CO)S:(AU;SAFA;FA;;;WD)",
    f"O:{SRC}-1102G:DUD:(OA;CI;RPWP;bf967a86-0de6-11d0-a285-00aa003049e2;;{SRC}-1104)"
    f"(OA;;CR;00299570-246d-11d0-a768-00aa006e0529;bf967aba-0de6-11d0-a285-00aa003049e2;AU)",
    "O:SYG:SYD:",
]


def samba_descriptors() -> list[bytes]:
    """The bytes Samba's own NDR code writes for SAMBA_SDDL (Debian's python3-samba)."""
    if shutil.which("samba-tool") is None:
        pytest.skip("Samba's Python bindings are not installed (`make deps`)")
    script = (
        "import json, sys\n"
        "from samba.dcerpc import security\n"
        "from samba.ndr import ndr_pack\n"
        f"domain = security.dom_sid({SRC!r})\n"
        "print(json.dumps([ndr_pack(security.descriptor.from_sddl(s, domain)).hex()"
        " for s in json.loads(sys.stdin.read())]))\n"
    )
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", script], input=json.dumps(SAMBA_SDDL),
                          capture_output=True, text=True, check=True)
    return [bytes.fromhex(h) for h in json.loads(done.stdout)]


def test_samba_written_descriptors_build_back_byte_identical() -> None:
    for raw in samba_descriptors():
        sd = parse_descriptor(raw)
        assert build_descriptor(sd) == raw
        unchanged = translate(sd, {"S-1-5-21-7-7-7-1": "S-1-5-21-8-8-8-1"}, "replace", SRC)
        assert unchanged.changes == 0 and build_descriptor(unchanged.descriptor) == raw


def test_a_translated_descriptor_reads_back_in_samba() -> None:
    raw = samba_descriptors()[0]
    new = build_descriptor(translate(parse_descriptor(raw), TABLE, "add", SRC).descriptor)
    script = (
        "import sys\n"
        "from samba.dcerpc import security\n"
        "from samba.ndr import ndr_unpack\n"
        "for line in sys.stdin:\n"
        "    print(ndr_unpack(security.descriptor, bytes.fromhex(line)).as_sddl())\n"
    )
    done = subprocess.run(["/usr/bin/python3", "-I", "-c", script],
                          input=f"{raw.hex()}\n{new.hex()}\n",
                          capture_output=True, text=True, check=True)
    before, after = done.stdout.splitlines()
    ace_1104 = f"(A;OICI;0x001301bf;;;{SRC}-1104)"
    assert ace_1104 in before
    assert after == (before.replace(f"O:{SRC}-1102G:{SRC}-513", f"O:{TGT}-1201G:{TGT}-513")
                     .replace(ace_1104, ace_1104 + ace_1104.replace(f"{SRC}-1104", f"{TGT}-1307")))


@pytest.mark.parametrize(("raw", "message"), [
    (b"\x01\x00\x04\x80", "less than its 20-byte header"),
    (struct.pack("<BBHIIII", 2, 0, 0x8004, 0, 0, 0, 0), "revision 2"),
    (struct.pack("<BBHIIII", 1, 0, 0x0004, 0, 0, 0, 0), "not self-relative"),
    (struct.pack("<BBHIIII", 1, 0, 0x8004, 20, 0, 0, 0) + b"\x01\x05\x00", "owner SID"),
    (struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, 20) + struct.pack("<BBHHH", 2, 0, 200, 1, 0),
     "AclSize 200"),
    (_raw_descriptor(struct.pack("<BBH", 0, 0, 40), 1), "AceSize 40"),
    (_raw_descriptor(b"", 1), "ACE 0 of 1 starts past"),
    (_raw_descriptor(struct.pack("<BBHI", 0, 0, 12, FULL) + b"\x07\x01\x00\x00", 1), "DACL ACE 0"),
])
def test_malformed_bytes_are_refused_saying_what_is_wrong(raw: bytes, message: str) -> None:
    with pytest.raises(DescriptorError, match=message):
        parse_descriptor(raw)


def test_a_bad_table_entry_is_named() -> None:
    with pytest.raises(DescriptorError, match=r"'S-1-5-21-1-2-3-4'.*'bob'"):
        SidMap({"S-1-5-21-1-2-3-4": "bob"})
    with pytest.raises(DescriptorError, match="both"):
        SidMap({f"{SRC}-1": f"{TGT}-1", f"{SRC}-2": f"{TGT}-1"}).inverted()


def test_ntacl_envelopes_of_every_version_keep_their_header() -> None:
    sd = descriptor(ace(f"{SRC}-1102"))
    for version, header in ((1, b""), (2, b"\x00" * 4 + b"\x22" * 16),
                            (3, b"\x00" * 4 + b"\x01\x00" + b"\x33" * 64 + b"\x00\x00"),
                            (4, b"\x00" * 4 + b"\x01\x00" + b"\x44" * 64 + b"posix_acl\x00"
                             + b"\x00" * 8 + b"\x55" * 64)):
        envelope = struct.pack("<HHI", version, version, 0x20000) + header
        blob = envelope + build_descriptor(sd, base=len(envelope))
        ntacl = parse_ntacl(blob)
        assert ntacl.envelope == envelope and ntacl.descriptor == sd
        assert ntacl.to_bytes() == blob
        new = translate(ntacl.descriptor, TABLE, "replace", SRC).descriptor
        rewritten = ntacl.with_descriptor(new).to_bytes()
        assert rewritten[:len(envelope)] == envelope     # hashes of the POSIX side kept
        assert parse_ntacl(rewritten).descriptor == new
    with pytest.raises(NtAclError, match="version 7"):
        parse_ntacl(struct.pack("<HHI", 7, 7, 0) + b"\x00" * 40)
