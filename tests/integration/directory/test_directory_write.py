"""Writes against a real Samba AD DC: passwords, account state, escaped names, membership."""

from __future__ import annotations

import uuid

import ldap3
import pytest

from ferry_agent.directory import (
    DirectoryConnectionError,
    DirectoryEndpoint,
    DirectoryError,
    add_members,
    connect,
    create,
    delete,
    ensure_ou,
    generate_password,
    group_type,
    move,
    parse_group_type,
    read_by_guids,
    read_members,
    remove_members,
    set_enabled,
    update,
)
from ferry_agent.dn import build_dn, dn_key, rdn_value, same_dn

pytestmark = pytest.mark.lab

ESCAPED_NAMES = [
    "Smith, John",
    "A+B",
    "#Hash",
    '"Quoted"',
    "Zoë Ångström",
    "Łukasz Żółć",
    "back\\slash; <angle> = eq",
]
UAC_DISABLED = 0x2
UAC_DONT_EXPIRE_PASSWORD = 0x10000


def _read(conn: ldap3.Connection, dn: str, *attributes: str) -> dict[str, list[bytes]]:
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=list(attributes))
    assert conn.result["result"] == 0, conn.result
    return dict(conn.response[0]["raw_attributes"])


def _norm(dns: list[str]) -> set[str]:
    return {dn_key(dn) for dn in dns}


def _sam(tag: str, ou: str = "") -> str:
    """A sAMAccountName unique across tests and sessions."""
    return f"{tag}-{uuid.uuid4().hex[:8]}"[:20]


def test_created_user_can_bind_with_the_generated_password(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    password = generate_password()
    sam = _sam("bind", tgt_ou)
    dn = build_dn("Smith, John", tgt_ou)
    guid = create(
        conn,
        "user",
        dn,
        {"sAMAccountName": [sam], "givenName": ["John"], "userPrincipalName": [f"{sam}@tgt.test"]},
        password=password,
        must_change_password=False,
        enabled=True,
    )
    raw = _read(conn, dn, "userAccountControl", "pwdLastSet", "objectGUID")
    assert int(raw["userAccountControl"][0]) == 512
    assert int(raw["pwdLastSet"][0]) > 0
    assert (entry := next(read_by_guids(conn, [guid], ["cn"]))).dn == dn
    assert entry.enabled is True
    # The password is really set: a simple bind over LDAPS as the new user works.
    user = connect(
        DirectoryEndpoint(
            host=lab.tgt.ip,
            bind_user=f"{sam}@tgt.test",
            password=password,
            ca_file=str(lab.tgt.ca_file),
        )
    )
    assert user.bound
    assert _read(user, dn, "sAMAccountName")["sAMAccountName"] == [sam.encode()]
    user.unbind()
    with pytest.raises(DirectoryConnectionError, match="invalidCredentials") as caught:
        connect(
            DirectoryEndpoint(
                host=lab.tgt.ip,
                bind_user=f"{sam}@tgt.test",
                password=password + "x",
                ca_file=str(lab.tgt.ca_file),
            )
        )
    assert password not in str(caught.value)


def test_disabled_and_must_change_password(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    dn = build_dn("Disabled User", tgt_ou)
    create(
        conn,
        "user",
        dn,
        {"sAMAccountName": [_sam("dis", tgt_ou)]},
        password=generate_password(),
        must_change_password=True,
        enabled=False,
    )
    raw = _read(conn, dn, "userAccountControl", "pwdLastSet")
    assert int(raw["userAccountControl"][0]) & UAC_DISABLED
    assert raw["pwdLastSet"] == [b"0"]
    # set_enabled flips only ACCOUNTDISABLE.
    update(conn, dn, {"userAccountControl": [str(512 | UAC_DONT_EXPIRE_PASSWORD | UAC_DISABLED)]})
    set_enabled(conn, dn, True)
    assert int(_read(conn, dn, "userAccountControl")["userAccountControl"][0]) == (
        512 | UAC_DONT_EXPIRE_PASSWORD
    )
    set_enabled(conn, dn, False)
    assert int(_read(conn, dn, "userAccountControl")["userAccountControl"][0]) == (
        512 | UAC_DONT_EXPIRE_PASSWORD | UAC_DISABLED
    )


def test_escaped_names_round_trip_through_every_operation(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    moved_ou = f"OU=Moved,OU=Deeper,{tgt_ou}"
    assert ensure_ou(conn, moved_ou) == [f"OU=Deeper,{tgt_ou}", moved_ou]
    assert ensure_ou(conn, moved_ou) == []
    group_dn = build_dn('Team, "Escaped" #1', tgt_ou)
    group_guid = create(
        conn, "group", group_dn, {"groupScope": ["universal"], "groupCategory": ["distribution"]}
    )
    assert parse_group_type(_read(conn, group_dn, "groupType")["groupType"][0].decode()) == (
        "universal",
        False,
    )
    guids: dict[str, str] = {}
    for index, name in enumerate(ESCAPED_NAMES):
        dn = build_dn(name, tgt_ou)
        guids[name] = create(
            conn, "user", dn, {"sAMAccountName": [_sam(f"e{index}", tgt_ou)], "displayName": [name]}
        )
        entry = next(read_by_guids(conn, [guids[name]], ["cn", "displayName"]))
        assert same_dn(entry.dn, dn) and rdn_value(entry.dn) == name
        assert entry.attributes["cn"] == [name] == entry.attributes["displayName"]

    dns = [build_dn(name, tgt_ou) for name in ESCAPED_NAMES]
    add_members(conn, group_dn, dns, chunk=3)
    add_members(conn, group_dn, dns[:4])  # again: already members, no error
    assert _norm(read_members(conn, group_dn)) == _norm(dns)

    for name in ESCAPED_NAMES:
        old = build_dn(name, tgt_ou)
        update(conn, old, {"title": [f"title of {name}"], "description": None})
        new = build_dn(name + " (moved)", moved_ou)
        move(conn, old, new)
        entry = next(read_by_guids(conn, [guids[name]], ["cn", "title"]))
        assert same_dn(entry.dn, new)
        assert entry.attributes["title"] == [f"title of {name}"]
    # Membership follows the moves (AD keeps links by GUID).
    moved = [build_dn(n + " (moved)", moved_ou) for n in ESCAPED_NAMES]
    assert _norm(read_members(conn, group_dn)) == _norm(moved)
    remove_members(conn, group_dn, moved[:3])
    remove_members(conn, group_dn, moved[:5])  # partly gone already: no error
    assert _norm(read_members(conn, group_dn)) == _norm(moved[5:])

    update(conn, group_dn, {"member": None})
    assert read_members(conn, group_dn) == []
    for dn in moved:
        delete(conn, dn)
    assert list(read_by_guids(conn, list(guids.values()), ["cn"])) == []
    assert [e.guid for e in read_by_guids(conn, [group_guid], ["cn"])] == [group_guid]


def test_contacts_groups_and_devices(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    contact = build_dn("Partner, Pat (Fabrikam)", tgt_ou)
    create(
        conn,
        "contact",
        contact,
        {
            "mail": ["pat@fabrikam.example"],
            "targetAddress": ["SMTP:pat@fabrikam.example"],
            "displayName": ["Pat Partner"],
        },
    )
    assert _read(conn, contact, "targetAddress")["targetAddress"] == [b"SMTP:pat@fabrikam.example"]
    for scope in ("global", "universal", "domainLocal"):
        for security in (True, False):
            dn = build_dn(f"G {scope} {security}", tgt_ou)
            create(conn, "group", dn, {"groupType": [str(group_type(scope, security))]})
            value = _read(conn, dn, "groupType")["groupType"][0].decode()
            assert parse_group_type(value) == (scope.lower(), security)
    device = build_dn("WS-0001", tgt_ou)
    guid = create(conn, "device", device, {})
    entry = next(read_by_guids(conn, [guid], ["sAMAccountName"], ["device"]))
    assert entry.object_type == "device" and entry.attributes["sAMAccountName"] == ["WS-0001$"]


def test_a_failed_object_raises_and_the_connection_goes_on(lab, tgt_ou: str) -> None:
    conn = lab.tgt.connect()
    sam = _sam("dupe", tgt_ou)
    create(conn, "user", build_dn("First Dupe", tgt_ou), {"sAMAccountName": [sam]})
    second = build_dn("Second, Dupe", tgt_ou)
    password = generate_password()
    with pytest.raises(DirectoryError) as caught:
        create(conn, "user", second, {"sAMAccountName": [sam]}, password=password)
    error = caught.value
    assert error.dn == second and error.operation == "create"
    assert error.code == 68 and sam in error.message
    assert second in str(error) and password not in str(error) and password not in repr(error)

    # A password AD's complexity rules refuse: the error explains, never repeats it.
    weak = "aaaaaaaaaa"
    with pytest.raises(DirectoryError) as weak_error:
        create(
            conn,
            "user",
            build_dn("Weak", tgt_ou),
            {"sAMAccountName": [_sam("weak", tgt_ou)]},
            password=weak,
        )
    assert weak_error.value.code == 19 and weak not in str(weak_error.value)

    with pytest.raises(DirectoryError) as missing:
        update(conn, build_dn("Nobody", tgt_ou), {"title": ["x"]})
    assert missing.value.code == 32

    # Same connection, next object: fine.
    ok = build_dn("After The Error", tgt_ou)
    create(
        conn, "user", ok, {"sAMAccountName": [_sam("after", tgt_ou)]}, password=generate_password()
    )
    assert _read(conn, ok, "cn")["cn"] == [b"After The Error"]


def test_connection_errors_name_the_host_and_reason(lab) -> None:
    good = lab.tgt.endpoint()
    assert "password" not in repr(good) and good.password not in repr(good)
    wrong_ca = DirectoryEndpoint(
        host=good.host,
        bind_user=good.bind_user,
        password=good.password,
        ca_file=str(lab.src.ca_file),
    )
    with pytest.raises(DirectoryConnectionError, match=good.host) as caught:
        connect(wrong_ca)
    assert "certificate" in str(caught.value)
    plain = DirectoryEndpoint(
        host=good.host, port=389, use_ssl=False, bind_user=good.bind_user, password=good.password
    )
    with pytest.raises(DirectoryConnectionError, match="insecure"):
        connect(plain)
    insecure = DirectoryEndpoint(
        host=good.host, bind_user=good.bind_user, password=good.password, insecure=True
    )
    connect(insecure).unbind()
    by_name = DirectoryEndpoint(
        host=good.host,
        bind_user=good.bind_user,
        password=good.password,
        ca_data=lab.tgt.ca_file.read_text(),
        server_name=lab.tgt.host_name,
    )
    conn = connect(by_name)
    assert conn.socket.version() in ("TLSv1.2", "TLSv1.3")
    conn.unbind()


def test_a_batch_reports_each_object_and_a_repeated_batch_changes_nothing(
        lab, tgt_ou: str) -> None:
    from ferry_agent.directory.batch import Write, apply

    conn = lab.tgt.connect()
    new_ou = f"OU=Batch {uuid.uuid4().hex[:6]},{tgt_ou}"
    sam = _sam("batch", tgt_ou)
    cy, dee = build_dn("Batch Cy", tgt_ou), build_dn("Batch Dee", tgt_ou)
    create(conn, "user", cy, {"sAMAccountName": [_sam("cy", tgt_ou)]})
    create(conn, "user", dee, {"sAMAccountName": [_sam("dee", tgt_ou)]})
    ann, cy_moved = build_dn("Batch Ann", new_ou), build_dn("Batch Cy", new_ou)
    group = build_dn("Batch Group", new_ou)
    writes = [
        Write("create", ann, object_type="user", attributes={"sAMAccountName": [sam]},
              password=generate_password(), parent=new_ou),
        Write("create", build_dn("Batch Bo", new_ou), object_type="user",
              attributes={"sAMAccountName": [sam]}),  # the same sAMAccountName: refused alone
        Write("create", group, object_type="group", attributes={}),
        Write("members", group, add=[ann]),
        Write("update", ann, attributes={"title": ["Lead"]}, enabled=False),
        Write("move", cy, new_dn=cy_moved),
        Write("delete", dee),
        Write("delete", build_dn("Nobody Here", new_ou)),
    ]
    first = list(apply(conn, writes))
    assert [r.ok for r in first] == [True, False, True, True, True, True, True, False]
    assert first[1].error is not None and first[1].error.code == 68
    assert first[7].error is not None and first[7].error.code == 32
    attributes = _read(conn, ann, "title", "userAccountControl")
    assert attributes["title"] == [b"Lead"]
    assert int(attributes["userAccountControl"][0]) & UAC_DISABLED
    assert _norm(read_members(conn, group)) == _norm([ann])
    assert _read(conn, cy_moved, "cn")["cn"] == [b"Batch Cy"]

    # The same batch again, as when an agent died after applying it and before reporting:
    # blindly, the create, move and delete fail; checking first, each finds its work done.
    blind = list(apply(conn, writes))
    assert [r.error.code if r.error else 0 for r in blind] == [68, 68, 68, 0, 0, 32, 32, 32]
    again = list(apply(conn, writes, check_first=True))
    assert [r.ok for r in again] == [True, False, True, True, True, True, True, True]
    assert (again[0].guid, again[2].guid) == (first[0].guid, first[2].guid)
    conn.search(new_ou, "(objectClass=user)", ldap3.SUBTREE, attributes=["cn"])
    assert sorted(e["raw_attributes"]["cn"][0] for e in conn.response
                  if e.get("type") == "searchResEntry") == [b"Batch Ann", b"Batch Cy"]
