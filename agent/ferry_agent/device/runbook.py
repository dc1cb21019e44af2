"""The device agent's side of the device routes (ferry_agent.protocol): the runbook it polls
and the SID table it fetches, read with the wrong field named; the messages it sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ferry_agent.device.journal import JournalEntry
from ferry_agent.protocol import (
    PROTOCOL_VERSION,
    ActionReport,
    LogUpload,
    ProtocolError,
    RunbookRequest,
    encode,
)

RUNBOOK_STATES = ("run", "wait", "paused", "done")
MIN_POLL_SECONDS, MAX_POLL_SECONDS = 1, 3600
RunbookError = ProtocolError   # a runbook or SID table not as the protocol says


@dataclass(frozen=True)
class RunbookAction:
    id: str
    action: str                       # a DeviceAction, or RestoreSource / UndoReACL
    arguments: dict[str, Any]
    state: str                        # pending | done | failed
    not_before: str | None            # RFC 3339
    sealed: dict[str, str] | None     # the action's machine secret, to this device's key


@dataclass(frozen=True)
class Runbook:
    migration: str
    device: str
    generation: int
    state: str
    reason: str
    poll_seconds: int
    sid_table_version: str
    actions: tuple[RunbookAction, ...]
    next: str | None

    def next_action(self) -> RunbookAction | None:
        return next((a for a in self.actions if a.id == self.next), None)


def runbook_request(facts: dict[str, str]) -> dict[str, Any]:
    return encode(RunbookRequest(facts))


def decode_runbook(body: Any) -> Runbook:
    """The runbook from the gateway's answer; RunbookError names what is wrong."""
    data = _object(body, "runbook")
    state = _string(data, "state", "runbook")
    if state not in RUNBOOK_STATES:
        raise RunbookError(f"runbook.state: {state!r} is not one of {', '.join(RUNBOOK_STATES)}")
    raw = data.get("actions") or []
    if not isinstance(raw, list):
        raise RunbookError("runbook.actions: expected a list")
    actions = tuple(_action(item, i) for i, item in enumerate(raw))
    following = data.get("next")
    if following is not None and not isinstance(following, str):
        raise RunbookError("runbook.next: expected an action id or null")
    if state == "run" and following is not None and following not in {a.id for a in actions}:
        raise RunbookError(f"runbook.next: {following!r} is not among the actions")
    poll = data.get("pollSeconds", 30)
    if not isinstance(poll, int | float) or isinstance(poll, bool):
        raise RunbookError("runbook.pollSeconds: expected a number")
    generation = data.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool):
        raise RunbookError("runbook.generation: expected an integer")
    return Runbook(
        migration=_string(data, "migration", "runbook"), device=str(data.get("device", "")),
        generation=generation, state=state, reason=str(data.get("reason") or ""),
        poll_seconds=int(min(MAX_POLL_SECONDS, max(MIN_POLL_SECONDS, poll))),
        sid_table_version=str(data.get("sidTableVersion") or ""), actions=actions,
        next=following)


def decode_sid_table(body: Any) -> tuple[str, dict[str, str]]:
    """(version, source SID -> target SID) from GET /v1/device/sid-table."""
    data = _object(body, "sid-table")
    entries = data.get("entries")
    if not isinstance(entries, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in entries.items()):
        raise RunbookError("sid-table.entries: expected an object of SID strings")
    return str(data.get("version") or ""), dict(entries)


def encode_report(entry: JournalEntry) -> dict[str, Any]:
    """The ActionReport of a finished journal entry."""
    assert entry.outcome is not None
    return encode(ActionReport(
        generation=entry.key.generation, action_id=entry.key.action_id, attempt=entry.attempt,
        ok=entry.outcome.ok, message=entry.outcome.message, details=entry.outcome.details,
        started_at=entry.started_at, finished_at=entry.finished_at))


def log_upload(text: str) -> dict[str, Any]:
    return encode(LogUpload(text))


def _action(item: Any, index: int) -> RunbookAction:
    where = f"runbook.actions[{index}]"
    data = _object(item, where, versioned=False)
    arguments = data.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise RunbookError(f"{where}.arguments: expected an object")
    sealed = data.get("sealed")
    if sealed is not None and not (isinstance(sealed, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in sealed.items())):
        raise RunbookError(f"{where}.sealed: expected an object of key id: ciphertext, or null")
    not_before = data.get("notBefore")
    if not_before is not None and not isinstance(not_before, str):
        raise RunbookError(f"{where}.notBefore: expected an RFC 3339 time or null")
    return RunbookAction(id=_string(data, "id", where), action=_string(data, "action", where),
                         arguments=arguments, state=str(data.get("state") or "pending"),
                         not_before=not_before, sealed=sealed)


def _object(body: Any, what: str, *, versioned: bool = True) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise RunbookError(f"{what}: expected a JSON object")
    if versioned and body.get("v") != PROTOCOL_VERSION:
        raise RunbookError(f"{what}: protocol version {body.get('v')!r} is not"
                           f" {PROTOCOL_VERSION}")
    return body


def _string(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise RunbookError(f"{where}.{key}: expected a non-empty string")
    return value
