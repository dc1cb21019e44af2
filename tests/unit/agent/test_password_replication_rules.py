"""The pure parts of the replication read: ATTIDs in the standard prefix numbering (Samba gets
no prefix table from us), and hashes that never show in a repr."""

from __future__ import annotations

import pytest

from ferry_agent.passwords.replication import NtHash, standard_attid


@pytest.mark.parametrize(("oid", "attid"), [
    ("1.2.840.113556.1.4.221", 0x000900DD),   # sAMAccountName (DRSUAPI_ATTID_sAMAccountName)
    ("1.2.840.113556.1.4.90", 0x0009005A),    # unicodePwd
    ("1.2.840.113556.1.4.302", 0x0009012E),   # sAMAccountType
    ("1.2.840.113556.1.4.146", 0x00090092),   # objectSid
    ("2.5.4.3", 0x00000003),                  # cn
    ("1.2.840.113556.1.2.120", 0x00080078),   # uSNChanged
    ("1.2.840.113556.1.4.20000", 0x00098E20),  # past 16383: the high bit marks the split
])
def test_standard_attids(oid: str, attid: int) -> None:
    assert standard_attid(oid) == attid


def test_an_oid_outside_the_standard_prefixes_is_refused() -> None:
    with pytest.raises(ValueError, match="not under a standard prefix"):
        standard_attid("1.3.6.1.4.1.7165.4.1.1")


def test_a_hash_is_not_in_the_repr() -> None:
    found = NtHash("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "S-1-5-21-1-2-3-1104", "alice",
                   bytes.fromhex("8846f7eaee8fb117ad06bdd830b7586c"))
    assert "8846f7" not in repr(found) and "\\x88" not in repr(found)
    assert "alice" in repr(found)
