"""Carry out one work item on the agent's own directory session, yielding result chunks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .directory.read import Watermark
from .directory.session import DirectorySession
from .directory.write import read_guid
from .protocol import (
    OPERATIONS,
    ErrorInfo,
    ProtocolError,
    WorkItem,
    as_strings,
    decode_scope,
    encode_changes,
    error_of,
    pages,
)

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
    retried = item.attempt > 1
    if op == "exists":
        yield session.exists(str(args["dn"])), None
    elif op == "initial_watermark":
        yield session.initial_watermark(decode_scope(args["scope"])).to_dict(), None
    elif op == "read_full":
        entries = session.read_full(decode_scope(args["scope"]),
                                    as_strings(args["attributes"], "attributes"))
        for page in pages(iter(entries)):
            yield page, None
    elif op == "read_by_guids":
        entries = session.read_by_guids(as_strings(args["guids"], "guids"),
                                        as_strings(args["attributes"], "attributes"))
        for page in pages(iter(entries)):
            yield page, None
    elif op == "read_changes":
        changes = session.read_changes(decode_scope(args["scope"]),
                                       as_strings(args["attributes"], "attributes"),
                                       Watermark.from_dict(args["watermark"]))
        yield encode_changes(changes), None
    elif op == "resolve_dns":
        yield session.resolve_dns(as_strings(args["dns"], "dns")), None
    elif op == "create":
        dn = str(args["dn"])
        # A retried create may have been applied by an agent that died before reporting.
        if retried and session.exists(dn):
            yield read_guid(session.conn, dn), None
            return
        yield session.create(str(args["objectType"]), dn, dict(args["attributes"]),
                             password=args.get("password"),
                             must_change_password=bool(args.get("mustChangePassword")),
                             enabled=args.get("enabled")), None
    elif op == "update":
        session.update(str(args["dn"]), dict(args["changes"]))
        yield None, None
    elif op == "set_enabled":
        session.set_enabled(str(args["dn"]), bool(args["enabled"]))
        yield None, None
    elif op == "move":
        dn, new_dn = str(args["dn"]), str(args["newDn"])
        if not (retried and not session.exists(dn) and session.exists(new_dn)):
            session.move(dn, new_dn)
        yield None, None
    elif op == "delete":
        dn = str(args["dn"])
        if not (retried and not session.exists(dn)):
            session.delete(dn)
        yield None, None
    elif op == "add_members":
        session.add_members(str(args["groupDn"]), as_strings(args["memberDns"], "memberDns"))
        yield None, None
    elif op == "remove_members":
        session.remove_members(str(args["groupDn"]), as_strings(args["memberDns"], "memberDns"))
        yield None, None
    elif op == "ensure_ou":
        yield session.ensure_ou(str(args["dn"])), None
