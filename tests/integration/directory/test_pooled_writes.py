"""The write pool against a real Samba AD DC: the end state of one connection, failures
per object, and entries decoded from the BER exactly as ldap3 decodes them."""

from __future__ import annotations

import uuid

import ldap3
import pytest

from ferry.lab.seed import SeedSummary
from ferry_agent.directory import ReadScope, read_full, read_members
from ferry_agent.directory.batch import Write, WriteResult, apply, apply_pooled
from ferry_agent.directory.guid import guid_from_bytes
from ferry_agent.directory.read import _request_attributes
from ferry_agent.directory.values import decode_value
from ferry_agent.dn import build_dn, dn_key

pytestmark = pytest.mark.lab


def _batch(ou: str, tag: str) -> list[Write]:
    """Creates into a new OU, updates, a manager, memberships (a nested group among them),
    a move and a delete, as the connector sends them in one batch."""
    new_ou = f"OU=Pool {tag},{ou}"
    users = [build_dn(f"Pool {tag} U{i}", new_ou) for i in range(12)]
    group, inner = build_dn(f"Pool {tag} G", new_ou), build_dn(f"Pool {tag} Inner", new_ou)
    moved = build_dn(f"Pool {tag} U0 moved", new_ou)
    writes = [Write("create", users[0], object_type="user", parent=new_ou,
                    attributes={"sAMAccountName": [f"p{tag}u0"]})]
    writes += [Write("create", dn, object_type="user",
                     attributes={"sAMAccountName": [f"p{tag}u{i}"], "title": [f"T{i}"]})
               for i, dn in enumerate(users) if i]
    writes += [
        Write("create", group, object_type="group", attributes={}),
        Write("create", inner, object_type="group", attributes={}),
        Write("update", users[1], attributes={"manager": [users[2]], "department": ["D"]}),
        Write("members", inner, add=users[5:8]),
        Write("members", group, add=[*users[1:5], inner]),
        Write("move", users[0], new_dn=moved),
        Write("update", moved, attributes={"title": ["Moved"]}, enabled=False),
        Write("delete", users[11]),
        Write("members", group, remove=[users[4]]),
    ]
    return writes


def _state(conn: ldap3.Connection, ou: str, tag: str) -> dict[str, dict[str, list[bytes]]]:
    """Every object under `ou` by its RDN, the batch's tag left out: the attributes the
    batch set, members and manager as RDNs, so two OUs' end states compare."""
    conn.search(ou, "(objectClass=*)", ldap3.SUBTREE,
                attributes=["title", "department", "manager", "userAccountControl", "member"])

    def rdn(value: bytes | str) -> bytes:
        text = value.decode() if isinstance(value, bytes) else value
        return text.split(",", 1)[0].split("=", 1)[1].replace(f"Pool {tag}", "").encode()

    state: dict[str, dict[str, list[bytes]]] = {}
    for entry in conn.response or ():
        if entry.get("type") == "searchResEntry":
            state[rdn(entry["dn"]).decode()] = {
                name: sorted(map(rdn, values) if name.lower() in ("member", "manager")
                             else values)
                for name, values in entry["raw_attributes"].items()}
    return state


def _codes(results: list[WriteResult]) -> list[int]:
    return [r.error.code if r.error else 0 for r in results]


def test_a_pooled_batch_ends_as_one_connection_does(lab, tgt_ou: str) -> None:
    single, pooled = (f"OU={name},{tgt_ou}" for name in ("Single", "Pooled"))
    conn = lab.tgt.connect()
    pool = [lab.tgt.connect() for _ in range(4)]
    one_tag, four_tag = uuid.uuid4().hex[:5], uuid.uuid4().hex[:5]
    expected = list(apply(conn, _batch(single, one_tag)))
    assert all(r.ok for r in expected), [str(r.error) for r in expected]
    results = apply_pooled(pool.__getitem__, 4, _batch(pooled, four_tag))
    assert _codes(results) == _codes(expected)
    assert all(r.guid for r, w in zip(results, _batch(pooled, four_tag), strict=True)
               if w.kind == "create")
    got = _state(conn, f"OU=Pool {four_tag},{pooled}", four_tag)
    assert got == _state(conn, f"OU=Pool {one_tag},{single}", one_tag)
    assert len(got) == 1 + 11 + 2   # the OU, 11 users left, 2 groups
    assert got[" G"]["member"] == [b" Inner", b" U1", b" U2", b" U3"]
    assert got[" U1"]["manager"] == [b" U2"]
    assert got[" U0 moved"]["title"] == [b"Moved"]


def test_a_refused_object_in_the_pool_fails_alone(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    pool = [conn, lab.tgt.connect(), lab.tgt.connect()]
    tag = uuid.uuid4().hex[:5]
    taken = f"p{tag}dup"
    [before] = apply(conn, [Write("create", build_dn(f"Pool {tag} first", tgt_ou),
                                  object_type="user", attributes={"sAMAccountName": [taken]})])
    assert before.ok
    writes = [Write("create", build_dn(f"Pool {tag} {i}", tgt_ou), object_type="user",
                    attributes={"sAMAccountName": [taken if i == 4 else f"p{tag}{i}"]})
              for i in range(9)]
    writes.append(Write("update", build_dn(f"Pool {tag} nobody", tgt_ou),
                        attributes={"title": ["x"]}))
    results = apply_pooled(pool.__getitem__, 3, writes)
    assert _codes(results) == [0, 0, 0, 0, 68, 0, 0, 0, 0, 32]
    assert f"Pool {tag} 4" in str(results[4].error)
    assert f"Pool {tag} nobody" in str(results[9].error)
    conn.search(tgt_ou, f"(sAMAccountName=p{tag}*)", ldap3.SUBTREE, attributes=["1.1"])
    assert len([e for e in conn.response if e.get("type") == "searchResEntry"]) == 9


def test_entries_decoded_from_the_ber_equal_ldap3s_decoding(
        lab, seeded_src: SeedSummary) -> None:
    """Every attribute of every user, group and contact in the seed, through read_full's
    decoder and through ldap3's own (text, binary GUIDs and SIDs, integers, dates,
    multi-valued and ranged member)."""
    types = ["user", "group", "contact"]
    scope = ReadScope([seeded_src.corp_dn], types)
    conn = lab.src.connect()
    entries = {e.guid: e for e in read_full(conn, scope, ["*", "objectSid", "whenCreated"])}
    reference = lab.src.connect()
    request = _request_attributes(["*", "objectSid", "whenCreated"], types)
    expected = {}
    kinds: set[str] = set()
    for item in reference.extend.standard.paged_search(
            seeded_src.corp_dn, "(|(objectClass=user)(objectClass=group)(objectClass=contact))",
            attributes=request, paged_size=500, generator=True):
        if item.get("type") != "searchResEntry":
            continue
        raw = item["raw_attributes"]
        members: list[str] = []
        attributes = {}
        for name, values in raw.items():
            lowered = name.lower()
            if lowered == "member" or lowered.startswith("member;"):
                members = read_members(reference, item["dn"])
            elif lowered not in ("objectguid", "objectclass", "usnchanged"):
                attributes[name] = [decode_value(name, v) for v in values]
                kinds.add(lowered)
        expected[guid_from_bytes(raw["objectGUID"][0])] = (
            item["dn"], attributes, sorted(map(dn_key, members)),
            int(raw["uSNChanged"][0]))
    assert {"objectsid", "whencreated", "useraccountcontrol", "proxyaddresses",
            "displayname", "grouptype", "objectcategory"} <= kinds
    assert len(expected) == len(entries) > 2000
    biggest = max(len(m) for _, _, m, _ in expected.values())
    assert biggest > 1500   # one group's members come in ranges
    for guid, (dn, attributes, members, usn) in expected.items():
        entry = entries[guid]
        assert (entry.dn, entry.attributes, sorted(map(dn_key, entry.members)),
                entry.usn_changed) == (dn, attributes, members, usn), dn
