from __future__ import annotations

from typing import Any

import pytest

from ferry_agent.directory.errors import DirectoryError
from ferry_agent.directory.read import Changes, Entry, Scope, Watermark
from ferry_agent.protocol import (
    ErrorInfo,
    ProtocolError,
    WorkItem,
    WorkResult,
    decode,
    decode_changes,
    decode_entry,
    encode,
    encode_changes,
    encode_entry,
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
    changes = Changes([ENTRY], ["g2"], ["g3"], Watermark.usn(100, "server-1"))
    assert decode_changes(encode_changes(changes)) == changes


def test_directory_errors_cross_the_wire_as_themselves() -> None:
    info = error_of(DirectoryError("CN=x,DC=t", "add", 68, "entryAlreadyExists", "exists"))
    with pytest.raises(DirectoryError) as raised:
        raise_error(info)
    assert (raised.value.dn, raised.value.code) == ("CN=x,DC=t", 68)


class FakeSession:
    def __init__(self, existing: set[str] | None = None, entries: int = 0) -> None:
        self.existing = existing or set()
        self.entries = entries
        self.created: list[str] = []

    def exists(self, dn: str) -> bool:
        return dn in self.existing

    def read_full(self, scope: Scope, attributes: list[str]) -> Any:
        return (Entry(f"g{i}", f"CN=u{i},DC=t", "user") for i in range(self.entries))

    def create(self, object_type: str, dn: str, attributes: dict[str, list[str]],
               **kwargs: Any) -> str:
        self.created.append(dn)
        return "new-guid"

    def delete(self, dn: str) -> None:
        raise DirectoryError(dn, "delete", 32, "noSuchObject")


def _item(operation: str, arguments: dict[str, Any], attempt: int = 1) -> WorkItem:
    return WorkItem("w", "l", "src", operation, arguments, 60, attempt)


def test_worker_streams_reads_in_pages() -> None:
    scope = {"baseDns": ["DC=t"], "objectTypes": ["user"]}
    chunks = list(execute(FakeSession(entries=1200),  # type: ignore[arg-type]
                          _item("read_full", {"scope": scope, "attributes": ["mail"]})))
    assert [len(value) for value, _ in chunks] == [500, 500, 200]
    assert all(error is None for _, error in chunks)


def test_worker_turns_failures_into_error_chunks() -> None:
    session = FakeSession()
    [(_, unknown)] = execute(session, _item("format_disk", {}))  # type: ignore[arg-type]
    assert unknown is not None and "unknown operation" in unknown.message
    [(_, missing)] = execute(session, _item("exists", {}))  # type: ignore[arg-type]
    assert missing is not None and missing.type == "AgentError"
    [(_, failed)] = execute(session, _item("delete", {"dn": "CN=x"}))  # type: ignore[arg-type]
    assert failed is not None and (failed.type, failed.code) == ("DirectoryError", 32)
