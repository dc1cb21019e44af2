"""Carry out one work item on the agent's own directory session, yielding result chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .directory.batch import MAX_WRITE_CONNECTIONS
from .directory.read import AdWatermark
from .directory.session import DirectorySession
from .protocol import (
    OPERATIONS,
    WRITE_PAGE,
    ErrorInfo,
    ProtocolError,
    WorkItem,
    as_strings,
    decode_password_set,
    decode_scope,
    decode_sid_history_request,
    decode_write,
    encode_change_summary,
    encode_entry,
    encode_sealed_password,
    encode_sid_history_outcome,
    encode_write_result,
    error_of,
    pages,
)
from .sealed import Recipient

Chunk = tuple[Any, ErrorInfo | None]   # (value, error); the last chunk is final


def execute(session: DirectorySession, item: WorkItem) -> Iterator[Chunk]:
    """Run item.operation with its arguments; errors become an ErrorInfo chunk, never raise."""
    if item.operation not in OPERATIONS:
        yield None, ErrorInfo("AgentError", f"unknown operation {item.operation!r}")
        return
    try:
        yield from _run(session, item)
    except ProtocolError as exc:
        yield None, ErrorInfo("AgentError", f"bad arguments: {exc}")
    except Exception as exc:  # one failed item must not end the agent
        yield None, error_of(exc)


def _run(session: DirectorySession, item: WorkItem) -> Iterator[Chunk]:
    args = item.arguments
    op = item.operation
    if op == "exists":
        yield session.exists(str(args["dn"])), None
    elif op == "initial_watermark":
        yield session.initial_watermark(decode_scope(args["scope"])).to_dict(), None
    elif op == "read_full":
        entries = session.read_full(decode_scope(args["scope"]),
                                    as_strings(args["attributes"], "attributes"))
        for page in pages(entries, encode_entry):
            yield page, None
    elif op == "read_by_guids":
        entries = session.read_by_guids(as_strings(args["guids"], "guids"),
                                        as_strings(args["attributes"], "attributes"))
        for page in pages(entries, encode_entry):
            yield page, None
    elif op == "read_by_values":
        entries = session.read_by_values(str(args["attribute"]),
                                         as_strings(args["values"], "values"),
                                         as_strings(args["attributes"], "attributes"),
                                         decode_scope(args["scope"]))
        for page in pages(entries, encode_entry):
            yield page, None
    elif op == "read_changes":
        stream = session.stream_changes(decode_scope(args["scope"]),
                                        as_strings(args["attributes"], "attributes"),
                                        AdWatermark.from_dict(args["watermark"]))
        for page in pages(stream.entries, encode_entry):
            yield page, None
        yield encode_change_summary(stream), None
    elif op == "resolve_dns":
        yield session.resolve_dns(as_strings(args["dns"], "dns")), None
    elif op == "write":
        raw = args["writes"]
        if not isinstance(raw, list):
            raise ProtocolError("writes: expected a list")
        writes = [decode_write(w) for w in raw]
        connections = args.get("connections", 1)
        if type(connections) is not int or not 1 <= connections <= MAX_WRITE_CONNECTIONS:
            raise ProtocolError(f"connections: expected 1 to {MAX_WRITE_CONNECTIONS}")
        # A retried batch may have been applied in part by an agent that died before reporting.
        results = session.write(writes, check_first=item.attempt > 1, connections=connections)
        yield from ((page, None) for page in pages(results, encode_write_result, WRITE_PAGE))
    elif op == "read_passwords":
        guids = args.get("guids")
        reads = session.read_passwords(
            args.get("watermark"), None if guids is None else as_strings(guids, "guids"),
            [Recipient.from_pem(pem) for pem in as_strings(args["recipients"], "recipients")])
        for page in pages(reads, encode_sealed_password):
            yield page, None
        yield {"watermark": reads.watermark}, None
    elif op == "set_passwords":
        raw = args["items"]
        if not isinstance(raw, list):
            raise ProtocolError("items: expected a list")
        # Idempotent by itself: setting the same hash again changes nothing a user sees.
        outcomes = session.set_passwords([decode_password_set(i) for i in raw])
        yield from ((page, None) for page in pages(
            outcomes, lambda error: {"error": error} if error else {}, WRITE_PAGE))
    elif op == "check_migration":
        found = session.check_migration(bool(args.get("replication")),
                                        as_strings(args.get("resetPasswordOUs", []),
                                                   "resetPasswordOUs"),
                                        bool(args.get("sidHistory")),
                                        bool(args.get("dcAgent")),
                                        as_strings(args.get("sourceDomains", []),
                                                   "sourceDomains"))
        yield [{"ok": ok, "message": message} for ok, message in found], None
    elif op == "stage_computer":
        # Repeat-safe by itself: a second stage resets the same account.
        yield session.stage_computer(str(args["name"]), str(args["ou"]),
                                     str(args.get("dnsDomain") or ""), str(args["mode"]),
                                     str(args["recipient"]),
                                     str(args.get("domainController") or "")), None
    elif op == "disable_computer":
        yield session.disable_computer(str(args["name"])), None
    elif op == "run_script":
        yield session.run_script(args), None
    elif op == "add_sid_history":
        raw = args["items"]
        if not isinstance(raw, list):
            raise ProtocolError("items: expected a list")
        # Idempotent by itself: a repeated item adds only what is still missing.
        added = session.add_sid_history([decode_sid_history_request(i) for i in raw])
        yield from ((page, None) for page in pages(added, encode_sid_history_outcome,
                                                    WRITE_PAGE))
