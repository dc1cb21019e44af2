"""How a batch of writes splits into lanes for the write pool (batch.lanes)."""

from __future__ import annotations

from ferry_agent.directory.batch import Write, lanes
from ferry_agent.directory.values import decode_value, decode_values

OU = "OU=T,DC=tgt,DC=test"


def dn(name: str, ou: str = OU) -> str:
    return f"CN={name},{ou}"


def test_independent_objects_each_get_a_lane_in_batch_order() -> None:
    writes = [Write("create", dn(n), object_type="user") for n in "abc"]
    assert lanes(writes) == [[0], [1], [2]]


def test_one_objects_writes_stay_in_order_in_one_lane_across_a_move() -> None:
    moved = dn("a2", "OU=U,DC=tgt,DC=test")
    writes = [
        Write("update", dn("a"), attributes={"title": ["x"]}),
        Write("create", dn("b"), object_type="user"),
        Write("move", dn("a"), new_dn=moved),
        Write("update", moved.upper(), attributes={"title": ["y"]}),  # names compare as AD does
        Write("create", dn("a"), object_type="user"),   # a new object where a was
    ]
    assert lanes(writes) == [[0, 2, 3, 4], [1]]


def test_a_membership_follows_the_creates_and_deletes_of_its_members() -> None:
    writes = [
        Write("create", dn("u1"), object_type="user"),
        Write("create", dn("u2"), object_type="user"),
        Write("delete", dn("u3")),
        Write("members", dn("g"), add=[dn("u1")], remove=[dn("u3")]),
        Write("members", dn("h"), add=[dn("x")]),   # x is not written here: no wait
        Write("update", dn("u2"), attributes={"manager": [dn("boss")]}),
    ]
    assert lanes(writes) == [[0, 2, 3], [1, 5], [4]]


def test_lanes_that_create_an_ou_come_first() -> None:
    writes = [
        Write("update", dn("z"), attributes={"title": ["x"]}),
        Write("create", dn("a", "OU=New,DC=tgt,DC=test"), object_type="user",
              parent="OU=New,DC=tgt,DC=test"),
        Write("create", dn("b", "OU=New,DC=tgt,DC=test"), object_type="user"),
    ]
    assert lanes(writes) == [[1], [0], [2]]


def test_decode_values_is_decode_value_for_every_kind() -> None:
    samples = {
        "objectGUID": [bytes(range(16))],
        "objectSid": [bytes([1, 2, 0, 0, 0, 0, 0, 5, 21, 0, 0, 0, 7, 0, 0, 0])],
        "thumbnailPhoto": [b"\xff\xd8\x00"],
        "displayName": ["Zoë".encode(), b"plain"],
        "member;range=0-1": [b"CN=a,DC=x", b"CN=b,DC=x"],
        "info": [b"ok", b"\xff not utf-8"],
    }
    for name, values in samples.items():
        assert decode_values(name, values) == [decode_value(name, v) for v in values], name
    assert decode_values("cn", None) == []
