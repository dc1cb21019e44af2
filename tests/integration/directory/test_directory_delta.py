"""Delta reads against a real Samba AD DC: DirSync, uSNChanged, and falling back between them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import ldap3
import pytest

from ferry_agent.directory import (
    AdWatermark,
    DirectoryEndpoint,
    ReadScope,
    WatermarkError,
    add_members,
    connect,
    create,
    delete,
    ensure_ou,
    generate_password,
    initial_watermark,
    move,
    read_changes,
    update,
)
from ferry_agent.dn import build_dn, dn_key

pytestmark = pytest.mark.lab

ATTRIBUTES = ["cn", "title", "mail", "displayName"]


@dataclass
class World:
    conn: ldap3.Connection
    ou: str
    scope: ReadScope
    users: dict[str, tuple[str, str]]  # name -> (dn, guid)
    group: tuple[str, str]


@pytest.fixture
def world(lab, src_ou: str) -> Iterator[World]:
    """Three users and a group in a scratch OU on SRC; the scope covers that OU only."""
    conn = lab.src.connect()
    users = {}
    for name in ("Ann Alpha", "Bob Beta", "Cy Gamma"):
        dn = build_dn(name, src_ou)
        sam = f"{name.split()[0].lower()}-{uuid.uuid4().hex[:8]}"
        users[name] = (dn, create(conn, "user", dn, {"sAMAccountName": [sam], "title": ["t0"]}))
    group_dn = build_dn("Delta Group", src_ou)
    group = (group_dn, create(conn, "group", group_dn, {}))
    yield World(conn, src_ou, ReadScope([src_ou], ["user", "group"]), users, group)
    conn.unbind()


@pytest.mark.parametrize("method", ["dirsync", "usn"])
def test_delta_returns_the_changed_user_and_the_deleted_one(world: World, method: str) -> None:
    watermark = initial_watermark(world.conn, world.scope, method=method)
    assert watermark.kind == method
    changed_dn, changed_guid = world.users["Ann Alpha"]
    deleted_dn, deleted_guid = world.users["Bob Beta"]
    update(world.conn, changed_dn, {"title": ["Delta Lead"]})
    delete(world.conn, deleted_dn)

    changes = read_changes(world.conn, world.scope, ATTRIBUTES, watermark, method=method)
    assert [e.guid for e in changes.entries] == [changed_guid]
    assert changes.entries[0].attributes["title"] == ["Delta Lead"]
    assert changes.entries[0].attributes["cn"] == ["Ann Alpha"]  # re-read in full
    assert deleted_guid in changes.deleted
    assert changes.watermark.kind == method

    # The new watermark starts after those changes: nothing more to see.
    again = read_changes(world.conn, world.scope, ATTRIBUTES, changes.watermark, method=method)
    assert again.entries == [] and again.deleted == []


def test_dirsync_sees_membership_moves_and_renames(world: World) -> None:
    watermark = initial_watermark(world.conn, world.scope)
    assert watermark.kind == "dirsync"
    group_dn, group_guid = world.group
    ann_dn, _ = world.users["Ann Alpha"]
    bob_dn, bob_guid = world.users["Bob Beta"]
    cy_dn, cy_guid = world.users["Cy Gamma"]
    add_members(world.conn, group_dn, [ann_dn])
    outside = f"OU=Elsewhere,{world.ou.split(',', 1)[1]}"
    inner = f"OU=Inner,{world.ou}"
    ensure_ou(world.conn, outside)
    ensure_ou(world.conn, inner)
    try:
        move(world.conn, bob_dn, build_dn("Bob Beta", outside))
        move(world.conn, cy_dn, build_dn("Cy, Renamed", inner))
        changes = read_changes(world.conn, world.scope, ATTRIBUTES, watermark)
        by_guid = {e.guid: e for e in changes.entries}
        assert set(by_guid) == {group_guid, cy_guid}
        assert [dn_key(m) for m in by_guid[group_guid].members] == [dn_key(ann_dn)]
        assert by_guid[cy_guid].dn == build_dn("Cy, Renamed", inner)
        assert bob_guid in changes.out_of_scope
        assert changes.deleted == []
    finally:
        move(world.conn, build_dn("Bob Beta", outside), bob_dn)
        delete(world.conn, outside)


def test_falls_back_to_usn_when_dirsync_is_refused(lab, world: World) -> None:
    # An ordinary user may read the directory but lacks "Replicating Directory Changes".
    password = generate_password()
    reader_dn = build_dn("Plain Reader", world.ou)
    sam = f"reader-{uuid.uuid4().hex[:8]}"
    create(world.conn, "user", reader_dn, {"sAMAccountName": [sam]}, password=password)
    plain = connect(
        DirectoryEndpoint(
            host=lab.src.ip,
            bind_user=f"{sam}@src.test",
            password=password,
            ca_file=str(lab.src.ca_file),
        )
    )
    # A DirSync position taken by the admin, then continued by an account refused DirSync.
    admin_mark = initial_watermark(world.conn, world.scope)
    assert admin_mark.kind == "dirsync" and admin_mark.highest
    assert initial_watermark(plain, world.scope).kind == "usn"

    changed_dn, changed_guid = world.users["Cy Gamma"]
    update(world.conn, changed_dn, {"title": ["Fallback"]})
    changes = read_changes(plain, world.scope, ATTRIBUTES, admin_mark)
    assert changes.watermark.kind == "usn"
    assert [e.guid for e in changes.entries] == [changed_guid]
    assert changes.entries[0].attributes["title"] == ["Fallback"]
    # Seeing tombstones needs rights on Deleted Objects, which this account lacks on Samba;
    # the fallback with an account that has them is test_delta_...[usn] above.
    plain.unbind()


def test_watermarks_serialise_and_reject_another_dc(world: World) -> None:
    mark = initial_watermark(world.conn, world.scope, method="usn")
    assert AdWatermark.from_dict(mark.to_dict()) == mark
    assert AdWatermark(mark.kind, mark.value) == mark
    foreign = AdWatermark.usn(mark.highest or 0, "00000000-0000-0000-0000-000000000001")
    with pytest.raises(WatermarkError, match="full read"):
        read_changes(world.conn, world.scope, ATTRIBUTES, foreign)
    dirsync = initial_watermark(world.conn, world.scope)
    assert dirsync.server == mark.server  # the cookie records the DC that issued it
    assert AdWatermark.from_dict(dirsync.to_dict()) == dirsync
