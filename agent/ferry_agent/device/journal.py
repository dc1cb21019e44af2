"""The device agent's journal: which actions it started, finished and reported, kept on disk
so a killed or rebooted agent never runs a finished action again (it re-reports it instead).

One JSON object a line, appended and fsync'd before the agent goes on, in the agent's
owner-only state folder. A line cut short by a crash mid-write is dropped when the journal is
opened; an action started and not finished is run again (every action is repeat-safe) with its
attempt counted up. When the file grows past COMPACT_BYTES it is rewritten on opening with one
line per action, the most recent MAX_KEPT actions kept.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ferry_agent.certificates import FILE_MODE, write_atomically
from ferry_agent.device.outcome import ActionOutcome
from ferry_agent.errors import FerryAgentError

JOURNAL_FILE = "device-journal.jsonl"
COMPACT_BYTES = 256 * 1024
MAX_KEPT = 500
_POSIX = os.name == "posix"


class JournalError(FerryAgentError):
    """The journal file cannot be read or written."""


@dataclass(frozen=True, order=True)
class ActionKey:
    """One action of one generation of a device's runbook (ids are stable within it)."""

    migration: str
    generation: int
    action_id: str

    def __str__(self) -> str:
        return f"{self.migration} generation {self.generation} action {self.action_id}"


@dataclass(frozen=True)
class JournalEntry:
    """What the journal knows of one action: started (how often), finished, reported."""

    key: ActionKey
    attempt: int
    started_at: str
    outcome: ActionOutcome | None = None
    finished_at: str = ""
    sent: bool = False

    @property
    def finished(self) -> bool:
        return self.outcome is not None


def now() -> str:
    """The current time as RFC 3339 UTC, as results carry it."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Journal:
    """The journal at `path`; each change is on disk (fsync'd) when its method returns."""

    def __init__(self, path: Path, entries: dict[ActionKey, JournalEntry]):
        self.path = path
        self._entries = entries

    @classmethod
    def open(cls, folder: Path) -> Journal:
        """Read the journal in `folder` (a new one if there is none)."""
        path = folder / JOURNAL_FILE
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise JournalError(f"{path}: cannot be read: {exc.strerror}") from None
        complete, _, torn = data.rpartition(b"\n")
        entries: dict[ActionKey, JournalEntry] = {}
        for number, line in enumerate(complete.split(b"\n") if complete else [], start=1):
            if line.strip():
                _apply(entries, _parse(path, number, line))
        journal = cls(path, entries)
        if torn:  # the agent died in the middle of this line: it never happened
            journal._truncate(len(complete) + 1 if complete else 0)
        if len(data) > COMPACT_BYTES:
            journal._compact()
        return journal

    def get(self, key: ActionKey) -> JournalEntry | None:
        return self._entries.get(key)

    def entries(self) -> list[JournalEntry]:
        return list(self._entries.values())

    def unsent(self, migration: str) -> list[JournalEntry]:
        """Finished actions of `migration` whose result the gateway has not acknowledged."""
        return [e for e in self._entries.values()
                if e.key.migration == migration and e.finished and not e.sent]

    def start(self, key: ActionKey) -> JournalEntry:
        """Record that `key` starts now; its attempt counts up from the last start."""
        previous = self._entries.get(key)
        entry = JournalEntry(key, (previous.attempt if previous else 0) + 1, now())
        self._append({"event": "started", "attempt": entry.attempt, "at": entry.started_at},
                     key)
        self._entries[key] = entry
        return entry

    def finish(self, key: ActionKey, outcome: ActionOutcome) -> JournalEntry:
        """Record `key`'s outcome (a later finish of the same attempt replaces it)."""
        entry = self._entries.get(key)
        if entry is None:
            raise JournalError(f"{self.path}: {key} finished but was never started")
        entry = replace(entry, outcome=outcome, finished_at=now(), sent=False)
        self._append({"event": "finished", "ok": outcome.ok, "message": outcome.message,
                      "details": outcome.details, "at": entry.finished_at}, key)
        self._entries[key] = entry
        return entry

    def mark_sent(self, key: ActionKey) -> None:
        """Record that the gateway has `key`'s result (it is not sent again)."""
        entry = self._entries.get(key)
        if entry is None or entry.sent:
            return
        self._append({"event": "sent"}, key)
        self._entries[key] = replace(entry, sent=True)

    # -- the file -----------------------------------------------------------------------------

    def _append(self, record: dict[str, Any], key: ActionKey) -> None:
        record = {"migration": key.migration, "generation": key.generation,
                  "action": key.action_id, **record}
        # One write of one whole line: a kill lands before it or after it, never inside.
        line = (json.dumps(record, separators=(",", ":"), ensure_ascii=False, default=str)
                + "\n").encode("utf-8")
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _sync_folder(self.path.parent)
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot be written: {exc.strerror}") from None

    def _truncate(self, size: int) -> None:
        try:
            with self.path.open("r+b") as out:
                out.truncate(size)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot be repaired: {exc.strerror}") from None

    def _compact(self) -> None:
        kept = sorted(self._entries.values(), key=lambda e: e.started_at)[-MAX_KEPT:]
        self._entries = {e.key: e for e in kept}
        lines = []
        for entry in kept:
            head = {"migration": entry.key.migration, "generation": entry.key.generation,
                    "action": entry.key.action_id}
            records = [{"event": "started", "attempt": entry.attempt, "at": entry.started_at}]
            if entry.outcome is not None:
                records.append({"event": "finished", "ok": entry.outcome.ok,
                                "message": entry.outcome.message,
                                "details": entry.outcome.details, "at": entry.finished_at})
            if entry.sent:
                records.append({"event": "sent"})
            lines += [json.dumps({**head, **r}, separators=(",", ":"), ensure_ascii=False,
                                 default=str) for r in records]
        try:
            write_atomically(self.path, ("\n".join(lines) + "\n").encode("utf-8")
                             if lines else b"")
        except OSError as exc:
            raise JournalError(f"{self.path}: cannot be compacted: {exc.strerror}") from None


def _parse(path: Path, number: int, line: bytes) -> tuple[ActionKey, dict[str, Any]]:
    try:
        record = json.loads(line)
        key = ActionKey(str(record["migration"]), int(record["generation"]),
                        str(record["action"]))
        if record.get("event") not in ("started", "finished", "sent"):
            raise ValueError("unknown event")
    except (ValueError, KeyError, TypeError, AttributeError):
        # Lines before the last are whole (appends); a bad one means the file was edited or
        # the disk damaged it, and guessing could repeat or skip a domain join.
        raise JournalError(
            f"{path}: line {number} is not a journal record; move the file aside to start a"
            " new journal (finished actions then run once more: each is repeat-safe)"
        ) from None
    return key, record


def _apply(entries: dict[ActionKey, JournalEntry], parsed: tuple[ActionKey, dict[str, Any]]
           ) -> None:
    key, record = parsed
    entry = entries.get(key)
    event = record["event"]
    if event == "started":
        entries[key] = JournalEntry(key, int(record.get("attempt") or 1),
                                    str(record.get("at", "")))
    elif entry is not None and event == "finished":
        details = record.get("details")
        entries[key] = replace(entry, outcome=ActionOutcome(
            bool(record.get("ok")), str(record.get("message", "")),
            details if isinstance(details, dict) else {}),
            finished_at=str(record.get("at", "")), sent=False)
    elif entry is not None and event == "sent":
        entries[key] = replace(entry, sent=True)


def _sync_folder(folder: Path) -> None:
    if not _POSIX:
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
