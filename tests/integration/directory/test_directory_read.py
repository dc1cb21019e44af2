"""Full reads, ranged members and GUIDs against a real Samba AD DC."""

from __future__ import annotations

import inspect
from collections import Counter

import ldap3
import pytest

from ferry.lab.seed import SPECIAL_USERS, SeedSummary
from ferry_agent.directory import (
    ReadScope,
    guid_dn,
    guid_filter,
    guid_from_bytes,
    guid_to_bytes,
    read_by_guids,
    read_full,
    read_members,
    resolve_dns,
)
from ferry_agent.dn import dn_key

pytestmark = pytest.mark.lab

ATTRIBUTES = [
    "cn",
    "displayName",
    "givenName",
    "sn",
    "mail",
    "proxyAddresses",
    "userPrincipalName",
    "employeeID",
    "department",
    "title",
    "manager",
    "telephoneNumber",
    "targetAddress",
    "groupType",
    "objectSid",
]


def _norm(dns: list[str]) -> set[str]:
    return {dn_key(dn) for dn in dns}


def test_full_read_returns_every_seeded_entry_once(lab, seeded_src: SeedSummary) -> None:
    conn = lab.src.connect()
    # Overlapping bases and a small page size: many pages, still every object exactly once.
    scope = ReadScope(
        base_dns=[seeded_src.corp_dn, f"OU=Sales,{seeded_src.corp_dn}"],
        object_types=["user", "group", "contact"],
    )
    stream = read_full(conn, scope, ATTRIBUTES, page_size=250)
    assert inspect.isgenerator(stream)
    entries = list(stream)

    guids = Counter(e.guid for e in entries)
    assert max(guids.values()) == 1
    by_type = {t: [e for e in entries if e.object_type == t] for t in ("user", "group", "contact")}
    assert _norm([e.dn for e in by_type["user"]]) == _norm(seeded_src.user_dns)
    assert _norm([e.dn for e in by_type["group"]]) == _norm(seeded_src.group_dns)
    assert _norm([e.dn for e in by_type["contact"]]) == _norm(seeded_src.contact_dns)

    users = {dn_key(e.dn): e for e in by_type["user"]}
    zoe = users[dn_key(seeded_src.special["zoe"])]
    assert zoe.attributes["displayName"] == ["Zoë Ångström"]
    assert zoe.attributes["sn"] == ["Ångström"]
    assert all(isinstance(v, str) for e in entries for vs in e.attributes.values() for v in vs)
    assert zoe.attributes["objectSid"][0].startswith("S-1-5-21-")
    assert sorted(v[:5] for v in zoe.attributes["proxyAddresses"]) == ["SMTP:", "smtp:"]
    assert zoe.usn_changed > 0 and zoe.enabled is True
    comma = users[dn_key(seeded_src.special["comma"])]
    assert comma.attributes["cn"] == ["Smith, John"]

    disabled = _norm(seeded_src.disabled)
    assert disabled
    for key, entry in users.items():
        assert entry.enabled is (key not in disabled)
    managers = [e.attributes["manager"][0] for e in users.values() if "manager" in e.attributes]
    assert len(managers) == seeded_src.with_manager
    assert _norm(managers) <= set(users)
    contact = by_type["contact"][0]
    assert contact.attributes["targetAddress"][0].startswith("SMTP:")
    assert contact.enabled is None


def test_guids_round_trip(lab, seeded_src: SeedSummary) -> None:
    conn = lab.src.connect()
    dn = seeded_src.special["hash"]
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["objectGUID"])
    raw = conn.response[0]["raw_attributes"]["objectGUID"][0]
    guid = guid_from_bytes(raw)
    assert guid == guid.lower() and len(guid) == 36
    assert guid_to_bytes(guid) == raw
    # By filter, by <GUID=...> base and by batched read, the same object comes back.
    conn.search(seeded_src.base_dn, guid_filter(guid), attributes=["cn"])
    assert [dn_key(r["dn"]) for r in conn.response if r["type"] == "searchResEntry"] == [
        dn_key(dn)
    ]
    conn.search(guid_dn(guid), "(objectClass=*)", ldap3.BASE, attributes=["cn"])
    assert dn_key(conn.response[0]["dn"]) == dn_key(dn)
    (entry,) = read_by_guids(conn, [guid.upper()], ["cn"])
    assert entry.guid == guid and entry.attributes["cn"] == ["#Hash"]


def test_ranged_members_of_the_big_group(lab, seeded_src: SeedSummary) -> None:
    assert seeded_src.big_group_members > 2000
    conn = lab.src.connect()
    expected = _norm(seeded_src.user_dns)
    for page in (1500, 400):
        members = read_members(conn, seeded_src.big_group_dn, page=page)
        assert len(members) == len(expected)
        assert _norm(members) == expected
    # A full read asks for member;range=0-1499 and continues the range itself.
    groups = read_full(conn, ReadScope([f"OU=Groups,{seeded_src.corp_dn}"], ["group"]), ["cn"])
    big = next(g for g in groups if g.attributes["cn"] == ["All Staff"])
    assert _norm(big.members) == expected


def test_nested_groups_and_member_resolution(lab, seeded_src: SeedSummary) -> None:
    conn = lab.src.connect()
    outer, inner = seeded_src.nested
    assert dn_key(inner) in _norm(read_members(conn, outer))
    special = list(seeded_src.special.values())
    resolved = resolve_dns(conn, special)
    assert _norm(list(resolved)) == _norm(special)
    assert len(set(resolved.values())) == len(SPECIAL_USERS)


def test_shared_mail_is_on_two_users(lab, seeded_src: SeedSummary) -> None:
    conn = lab.src.connect()
    scope = ReadScope([seeded_src.corp_dn], ["user"])
    sharing = [
        e
        for e in read_full(conn, scope, ["mail"])
        if e.attributes.get("mail") == [seeded_src.shared_mail]
    ]
    assert len(sharing) == 2
