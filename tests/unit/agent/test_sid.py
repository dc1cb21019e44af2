"""SIDs parse strictly: a typo is an error naming the value, never a different SID."""

from __future__ import annotations

import pytest

from ferry_agent.directory.values import sid_from_bytes, sid_to_bytes
from ferry_agent.sid import SidError, parse_sid

DOMAIN = "S-1-5-21-1004336348-1177238915-682003330"


def test_a_domain_account_sid_has_its_domain_and_rid() -> None:
    sid = parse_sid(f"{DOMAIN}-1104")
    assert str(sid) == f"{DOMAIN}-1104"
    assert sid.is_domain_account and sid.domain == DOMAIN and sid.rid == 1104
    assert sid_from_bytes(sid_to_bytes(str(sid))) == str(sid)


def test_lower_case_s_reads_as_the_canonical_form() -> None:
    assert str(parse_sid(f"s{DOMAIN[1:]}-1104")) == f"{DOMAIN}-1104"


@pytest.mark.parametrize("sid", ["S-1-5-32-544", "S-1-1-0", "S-1-5-18", DOMAIN])
def test_well_known_and_domain_sids_are_no_domain_accounts(sid: str) -> None:
    parsed = parse_sid(sid)
    assert not parsed.is_domain_account and parsed.domain == ""


@pytest.mark.parametrize("text", [
    "", "S-1", "S-1-5", "S-2-5-21-1-2-3-4", " S-1-5-21-1-2-3-4", "S-1-5-21-1-2-3-4 ",
    "S-1-5-21--2-3-4", "S-1-5-21-1-2-3-4294967296", "S-1-281474976710656-1",
    "S-1-5-" + "-".join(["1"] * 16), "S-1-5-21-1-2-3-+4", "S-1-5-21-1-2-3-٤",
])
def test_anything_else_is_refused_quoting_the_value(text: str) -> None:
    with pytest.raises(SidError, match="not a SID") as raised:
        parse_sid(text)
    assert repr(text) in str(raised.value)
    assert isinstance(raised.value, ValueError)
