from __future__ import annotations

from typing import Any

import pytest

from ferry_agent.directory.batch import Write, WriteResult
from ferry_agent.directory.errors import DirectoryError
from ferry_agent.directory.read import AdWatermark, Changes, ChangeStream, Entry, ReadScope
from ferry_agent.protocol import (
    ErrorInfo,
    ProtocolError,
    WorkItem,
    WorkResult,
    decode,
    decode_changes,
    decode_entry,
    decode_write,
    decode_write_result,
    encode,
    encode_change_summary,
    encode_entry,
    encode_write,
    encode_write_result,
    error_of,
    raise_error,
)
from ferry_agent.worker import execute

ENTRY = Entry(guid="g1", dn="CN=Ann Lee,OU=Staff,DC=src,DC=test", object_type="user",
              attributes={"mail": ["ann@src.test"], "proxyAddresses": ["SMTP:a@x", "smtp:b@x"]},
              members=[], usn_changed=42, user_account_control=514)


def test_messages_round_trip_with_camel_case_and_version() -> None:
    item = WorkItem("w1", "l1", "src", "read_full", {"scope": {}}, 60.0, attempt=2)
    body = encode(item)
    assert body["v"] == 1 and body["workId"] == "w1" and body["leaseSeconds"] == 60.0
    assert decode(WorkItem, body) == item
    result = WorkResult("l1", "w1", 0, True, ok=False,
                        error=ErrorInfo("DirectoryError", "no such object", dn="CN=x"))
    assert decode(WorkResult, encode(result)) == result


@pytest.mark.parametrize("body, message", [
    ({"v": 2, "workId": "w"}, "protocol version 2"),
    ({"v": 1, "workId": "w", "leaseId": "l", "environment": "e", "operation": "o",
      "arguments": {}, "leaseSeconds": 1, "extra": 1}, "unknown field(s) extra"),
    ({"v": 1, "workId": 7, "leaseId": "l", "environment": "e", "operation": "o",
      "arguments": {}, "leaseSeconds": 1}, "WorkItem.work_id: expected str"),
    ([1, 2], "expected a JSON object"),
])
def test_malformed_messages_are_protocol_errors(body: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message.replace("(", r"\(").replace(")", r"\)")):
        decode(WorkItem, body)


def test_directory_values_round_trip() -> None:
    assert decode_entry(encode_entry(ENTRY)) == ENTRY
    assert decode_entry(encode_entry(ENTRY)).enabled is False
    stream = ChangeStream(iter([ENTRY]), ["g2"], ["g3"], AdWatermark.usn(100, "server-1"))
    chunks = [[encode_entry(ENTRY)], [], encode_change_summary(stream)]
    assert decode_changes(chunks) == Changes([ENTRY], ["g2"], ["g3"],
                                             AdWatermark.usn(100, "server-1"))
    with pytest.raises(ProtocolError, match="last chunk"):
        decode_changes([[encode_entry(ENTRY)]])


def test_writes_and_their_results_round_trip() -> None:
    create = Write("create", "CN=Ann,OU=New,DC=t", object_type="user",
                   attributes={"sn": ["Lee"]}, enabled=True, password="Secret-1",
                   must_change_password=True, parent="OU=New,DC=t")
    update = Write("update", "CN=Bo,DC=t", attributes={"title": None, "sn": ["Bo"]},
                   enabled=False)
    members = Write("members", "CN=G,DC=t", add=("CN=Ann,DC=t",), remove=("CN=Bo,DC=t",))
    for write in (create, update, members, Write("delete", "CN=X,DC=t")):
        assert decode_write(encode_write(write)) == write
    assert "Secret-1" not in repr(create)
    refused = WriteResult(error=DirectoryError("CN=Bo,DC=t", "update", 50, "insufficient"))
    back = decode_write_result(encode_write_result(refused))
    assert back.error is not None and str(back.error) == str(refused.error)
    assert decode_write_result(encode_write_result(WriteResult(guid="g9"))) == WriteResult("g9")


@pytest.mark.parametrize("body, message", [
    ({"kind": "update"}, "kind and dn"),
    ({"kind": "update", "dn": "CN=x", "attributes": {"sn": "Lee"}}, "lists of strings"),
    ({"kind": "update", "dn": "CN=x", "enabled": "yes"}, "enabled must be"),
    ({"kind": "members", "dn": "CN=x", "add": [1]}, "add: expected a list of strings"),
])
def test_malformed_writes_are_protocol_errors(body: Any, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_write(body)


def test_directory_errors_cross_the_wire_as_themselves() -> None:
    info = error_of(DirectoryError("CN=x,DC=t", "add", 68, "entryAlreadyExists", "exists"))
    with pytest.raises(DirectoryError) as raised:
        raise_error(info)
    assert (raised.value.dn, raised.value.code) == ("CN=x,DC=t", 68)


class FakeSession:
    def __init__(self, entries: int = 0) -> None:
        self.entries = entries
        self.check_first: list[bool] = []
        self.connections: list[int] = []

    def exists(self, dn: str) -> bool:
        return False

    def read_full(self, scope: ReadScope, attributes: list[str]) -> Any:
        return (Entry(f"g{i}", f"CN=u{i},DC=t", "user") for i in range(self.entries))

    def stream_changes(self, scope: ReadScope, attributes: list[str],
                       watermark: AdWatermark) -> ChangeStream:
        outside: list[str] = []

        def entries() -> Any:
            for i in range(self.entries):
                outside.append(f"out{i}")  # as the real stream, filled while reading
                yield Entry(f"g{i}", f"CN=u{i},DC=t", "user")
        return ChangeStream(entries(), ["gone"], outside, AdWatermark.usn(7, "dc"))

    def write(self, writes: list[Write], *, check_first: bool = False,
              connections: int = 1) -> Any:
        self.check_first.append(check_first)
        self.connections.append(connections)
        for write in writes:
            if write.kind == "delete":
                yield WriteResult(error=DirectoryError(write.dn, "delete", 32, "noSuchObject"))
            else:
                yield WriteResult(guid=f"guid-of-{write.dn}")


def _item(operation: str, arguments: dict[str, Any], attempt: int = 1) -> WorkItem:
    return WorkItem("w", "l", "src", operation, arguments, 60, attempt)


SCOPE = {"baseDns": ["DC=t"], "objectTypes": ["user"]}


def test_worker_streams_reads_in_pages() -> None:
    chunks = list(execute(FakeSession(entries=1200),  # type: ignore[arg-type]
                          _item("read_full", {"scope": SCOPE, "attributes": ["mail"]})))
    assert [len(value) for value, _ in chunks] == [500, 500, 200]
    assert all(error is None for _, error in chunks)


def test_worker_streams_a_delta_in_pages_then_its_summary() -> None:
    chunks = [value for value, _ in execute(FakeSession(entries=700),  # type: ignore[arg-type]
                                            _item("read_changes", {
                                                "scope": SCOPE, "attributes": ["mail"],
                                                "watermark": {"kind": "usn", "highest": 1}}))]
    assert [len(c) for c in chunks[:-1]] == [500, 200]
    changes = decode_changes(chunks)
    assert len(changes.entries) == 700 and changes.deleted == ["gone"]
    assert len(changes.out_of_scope) == 700  # complete, though filled while streaming
    assert changes.watermark == AdWatermark.usn(7, "dc")


def test_worker_answers_a_write_batch_with_one_result_per_write() -> None:
    session = FakeSession()
    writes = [encode_write(Write("update", f"CN=u{i},DC=t", attributes={"sn": ["x"]}))
              for i in range(250)]
    writes[3] = encode_write(Write("delete", "CN=gone,DC=t"))
    chunks = list(execute(session, _item("write", {"writes": writes})))  # type: ignore[arg-type]
    assert [len(value) for value, _ in chunks] == [100, 100, 50]
    assert all(error is None for _, error in chunks)  # a refused object is not a failed item
    results = [decode_write_result(r) for value, _ in chunks for r in value]
    assert [r.ok for r in results].count(False) == 1 and not results[3].ok
    assert results[4].guid == "guid-of-CN=u4,DC=t"
    list(execute(session, _item("write", {"writes": writes[:1], "connections": 6},  # type: ignore[arg-type]
                                 attempt=2)))
    assert session.check_first == [False, True]
    assert session.connections == [1, 6]   # the Environment's writeConnections, with each batch
    for bad in (0, 17, "4", True):
        [(_, refused)] = execute(session, _item("write", {"writes": writes[:1],  # type: ignore[arg-type]
                                                          "connections": bad}))
        assert refused is not None and "connections: expected 1 to 16" in refused.message


def test_worker_turns_failures_into_error_chunks() -> None:
    session = FakeSession()
    [(_, unknown)] = execute(session, _item("format_disk", {}))  # type: ignore[arg-type]
    assert unknown is not None and "unknown operation" in unknown.message
    [(_, missing)] = execute(session, _item("exists", {}))  # type: ignore[arg-type]
    assert missing is not None and missing.type == "AgentError"
    [(_, bad)] = execute(session, _item("write", {"writes": [{"kind": 1}]}))  # type: ignore[arg-type]
    assert bad is not None and "bad arguments" in bad.message
