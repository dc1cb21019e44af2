"""The device agent's loop: poll the runbook, carry out its next action through the backend,
report the result; the journal makes sure a finished action is never run twice.

Each turn: POST the device's facts for its runbook; send any result the journal holds that
the gateway has not acknowledged (after a crash or a reboot); finish what an action left for
the first start with network (backend.resume: an offline join's keytab); then, for state
"run", the next action: finished in the journal -> its recorded result again; else journal
"started", run it, journal its outcome, POST it until the gateway answers. "wait", "paused"
and "done" poll again after pollSeconds (the gateway's: longer when done, where a rollback
may still come). An action killed part-way runs again on the next start with its attempt
counted up: every backend action is repeat-safe.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ferry_agent import __version__
from ferry_agent.device.backend import DeviceBackend
from ferry_agent.device.journal import ActionKey, Journal, JournalEntry
from ferry_agent.device.outcome import ActionOutcome, ReaclMode, ReaclScope, SidTable
from ferry_agent.device.runbook import (
    Runbook,
    RunbookAction,
    RunbookError,
    decode_runbook,
    decode_sid_table,
    encode_report,
    log_upload,
    runbook_request,
)
from ferry_agent.errors import FerryAgentError
from ferry_agent.protocol import MAX_LOG_BYTES
from ferry_agent.sealed import device_binding, open_sealed
from ferry_agent.transport import (
    EXIT_REFUSED,
    Backoff,
    GatewayClient,
    GatewayError,
    GatewayRefused,
    GatewayUnavailable,
    backoff,
)

log = logging.getLogger("ferry_agent.device")

LOG_FILE = "device-agent.log"
LOG_BYTES = MAX_LOG_BYTES         # the log kept (and uploaded): its last MiB
BOOT_ID = "recordedInBoot"       # a Reboot's result recorded before its command: in which boot
# Actions whose machine secret the gateway stages first (a stage_computer work item).
# Their secret (staged by the gateway; an EntraJoin's package sealed by the controller) comes
# with a later runbook: until then the device waits rather than fail.
_NEEDS_SECRET = frozenset({"DomainJoin", "OfflineDomainJoin", "EntraJoin"})
_REACL_ACTIONS = frozenset({"ReACL", "UndoReACL"})


class ArgumentError(FerryAgentError):
    """An action's arguments in the runbook cannot be used."""


class DeviceAgent:
    """Runs until stop is set (0) or the gateway refuses this device (EXIT_REFUSED)."""

    def __init__(self, client: GatewayClient, backend: DeviceBackend, journal: Journal,
                 key: ec.EllipticCurvePrivateKey, name: str, log_file: Path, *,
                 stop: threading.Event | None = None, delays: Backoff | None = None):
        self.client = client
        self.backend = backend
        self.journal = journal
        self.name = name
        self.log_file = log_file
        self.stop = stop or threading.Event()
        self.delays = delays or backoff(base=1.0, cap=60.0)
        self.busy = ""                 # the action being carried out, if any
        self._key = key
        self._sid_table: tuple[str, SidTable] | None = None

    def run(self) -> int:
        log.info("device agent %s (ferry-agent %s) polling %s", self.name, __version__,
                 self.client.url)
        while not self.stop.is_set():
            try:
                pause = self.turn()
                self.delays.reset()
            except GatewayRefused as exc:
                log.error("the gateway refused this device: %s; enroll it again", exc)
                return EXIT_REFUSED
            except (GatewayError, RunbookError) as exc:
                pause = self._backoff(exc)
            if pause > 0:
                self.stop.wait(pause)
        return 0

    def turn(self) -> float:
        """One poll of the runbook and what it asks for; the seconds to wait before the next."""
        status, body = self.client.post("/v1/device/runbook", runbook_request(self._facts()))
        if status != 200:
            raise GatewayUnavailable(f"the runbook was refused with {status}"
                                     f" {_message(body)}".rstrip(), status)
        runbook = decode_runbook(body)
        for entry in self.journal.unsent(runbook.migration):
            if not _reboot_missed(entry):
                log.info("%s: sending the result recorded before the agent stopped", entry.key)
                self.deliver(entry)
        self._resume()
        if runbook.state in ("wait", "paused"):
            log.debug("runbook %s: %s", runbook.state, runbook.reason)
            return runbook.poll_seconds
        if runbook.state == "done":
            # The gateway already asks done devices less often; slowing down again here put
            # a rollback 20 minutes away.
            return runbook.poll_seconds
        action = runbook.next_action()
        if action is None:
            return runbook.poll_seconds
        early = _seconds_until(action.not_before)
        if early > 0:
            return min(early, runbook.poll_seconds)
        return self._step(runbook, action)

    def deliver(self, entry: JournalEntry) -> bool:
        """POST the entry's result until the gateway answers; whether it was new to it.

        False also when stopping first (the journal keeps the result for the next start)."""
        delays = backoff(base=1.0, cap=60.0)
        while True:
            try:
                status, body = self.client.post("/v1/device/result", encode_report(entry))
            except GatewayUnavailable as exc:
                if self.stop.wait(self._backoff(exc, delays)):
                    return False
                continue
            if status == 200:
                self.journal.mark_sent(entry.key)
                return bool((body or {}).get("accepted"))
            # Any other answer will not change by sending the same result again.
            log.error("%s: the gateway refused the result (%d %s); it is dropped", entry.key,
                      status, _message(body))
            self.journal.mark_sent(entry.key)
            return False

    # -- one action ---------------------------------------------------------------------------

    def _step(self, runbook: Runbook, action: RunbookAction) -> float:
        key = ActionKey(runbook.migration, runbook.generation, action.id)
        entry = self.journal.get(key)
        if entry is not None and entry.finished and not _reboot_missed(entry):
            log.info("%s: finished before (attempt %d); sending its result again", key,
                     entry.attempt)
            return 0.0 if self.deliver(entry) else runbook.poll_seconds
        if action.action in _NEEDS_SECRET and not action.sealed:
            log.info("%s: waiting for the gateway to stage the machine secret", key)
            return runbook.poll_seconds
        table = (self._table(runbook.sid_table_version)
                 if action.action in _REACL_ACTIONS else {})
        self.busy = action.action
        try:
            entry = self.journal.start(key)
            log.info("%s: %s starts (attempt %d)", key, action.action, entry.attempt)
            outcome = self._carry_out(key, action, table)
            entry = self.journal.finish(key, outcome)
        finally:
            self.busy = ""
        log.log(logging.INFO if outcome.ok else logging.WARNING, "%s: %s %s: %s", key,
                action.action, "done" if outcome.ok else "failed", outcome.message)
        self.deliver(entry)
        return 0.0

    def _carry_out(self, key: ActionKey, action: RunbookAction,
                   table: SidTable) -> ActionOutcome:
        """The action's outcome; a failure is an outcome too, never an exception."""
        try:
            return self._dispatch(key, action, table)
        except ArgumentError as exc:
            return ActionOutcome(False, f"{action.action}: bad arguments in the runbook: {exc}")
        except FerryAgentError as exc:   # its message is written for the admin already
            return ActionOutcome(False, str(exc))
        except Exception as exc:
            log.exception("%s: %s failed unexpectedly", key, action.action)
            return ActionOutcome(False, f"{action.action} failed: {type(exc).__name__}: {exc}")

    def _dispatch(self, key: ActionKey, action: RunbookAction,
                  table: SidTable) -> ActionOutcome:
        args = _Arguments(action)
        name = action.action
        if name in _REACL_ACTIONS:
            run = self.backend.reacl if name == "ReACL" else self.backend.undo_reacl
            return run(table, args.source_domain(), args.mode(), args.scopes())
        if name == "CacheCredentials":
            return self.backend.cache_credentials(args.strings("users"),
                                                  args.number("timeoutSeconds", 600))
        if name == "DomainJoin":
            password = self._open(action).decode("utf-8")
            return self.backend.join(args.string("domain"), args.string("domainController"),
                                     args.string("computerName", self.name), password)
        if name == "OfflineDomainJoin":
            return self.backend.offline_join(self._open(action))
        if name == "EntraJoin":
            return self.backend.entra_join(self._open(action))
        if name == "RestoreSource":   # sealed: a password staged on the source account
            password = self._open(action).decode("utf-8") if action.sealed else ""
            return self.backend.rejoin_source(password, args.string("domainController", ""))
        if name == "Reboot":
            delay = int(args.number("delaySeconds", 0))
            # Recorded first: once the reboot command ran, this process may never run again.
            # The boot it was recorded in tells, on the next start, whether the reboot came.
            self.journal.finish(key, ActionOutcome(True, f"reboot command run after {delay} s",
                                                   {"delaySeconds": delay,
                                                    BOOT_ID: boot_id()}))
            return self.backend.reboot(delay, args.string("notice", "This computer restarts"
                                                                    " to finish its move."))
        if name == "UploadLogs":
            text = log_tail(self.log_file)
            status, body = self.client.post("/v1/device/logs", log_upload(text))
            if status != 200:
                return ActionOutcome(False, f"the gateway refused the log ({status}"
                                            f" {_message(body)})".rstrip())
            stored = (body or {}).get("stored", len(text.encode("utf-8")))
            return ActionOutcome(True, f"log uploaded ({stored} bytes)", {"bytes": stored})
        return ActionOutcome(False, f"{name} is not an action this agent ({__version__})"
                                    " knows; upgrade ferry-agent on the device")

    def _open(self, action: RunbookAction) -> bytes:
        """The action's machine secret, only in memory (never logged or journaled)."""
        if not action.sealed:
            raise ArgumentError("the machine secret is missing")
        return open_sealed(action.sealed, self._key, device_binding(self.name))

    def _table(self, version: str) -> SidTable:
        """The migration's SID table, fetched again when the runbook names another version."""
        if self._sid_table is not None and self._sid_table[0] == version:
            return self._sid_table[1]
        status, body = self.client.get("/v1/device/sid-table")
        if status != 200:
            raise GatewayUnavailable(f"the SID table was refused with {status}"
                                     f" {_message(body)}".rstrip(), status)
        found, table = decode_sid_table(body)
        if found != version:
            log.info("the SID table is at version %s (the runbook named %s)", found, version)
        self._sid_table = (found, table)
        log.info("SID table version %s: %d translations", found, len(table))
        return table

    def _resume(self) -> None:
        """What an action left for the first start with network (the gateway answered, so
        there is one), before any next action; one that fails is tried again next turn."""
        try:
            outcome = self.backend.resume()
        except Exception:
            log.exception("finishing an earlier action failed unexpectedly")
            return
        if outcome is not None:
            log.log(logging.INFO if outcome.ok else logging.WARNING, "%s", outcome.message)

    def _facts(self) -> dict[str, str]:
        try:
            return {str(k): str(v) for k, v in self.backend.facts().items()}
        except Exception as exc:   # the runbook is still worth asking for
            log.warning("the device's facts could not be read: %s", exc)
            return {}

    def _backoff(self, exc: Exception, delays: Backoff | None = None) -> float:
        delay = next(delays or self.delays)
        if isinstance(exc, GatewayUnavailable) and exc.retry_after:
            delay = max(delay, min(exc.retry_after, 300.0))
        log.warning("gateway unavailable (%s); retrying in %.1f s", exc, delay)
        return delay


class _Arguments:
    """An action's arguments, read with the field named when one is wrong."""

    def __init__(self, action: RunbookAction):
        self._args: dict[str, Any] = action.arguments

    def string(self, key: str, default: str | None = None) -> str:
        value = self._args.get(key, default)
        if not isinstance(value, str) or not value:
            raise ArgumentError(f"{key}: expected a non-empty string")
        return value

    def strings(self, key: str) -> list[str]:
        value = self._args.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ArgumentError(f"{key}: expected a list of strings")
        return list(value)

    def number(self, key: str, default: float) -> float:
        value = self._args.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ArgumentError(f"{key}: expected a number of seconds")
        return float(value)

    def mode(self) -> ReaclMode:
        return _choice(ReaclMode, self._args.get("mode", ReaclMode.ADD.value), "mode")

    def scopes(self) -> list[ReaclScope]:
        raw = self._args.get("scopes", [s.value for s in ReaclScope])
        if not isinstance(raw, list):
            raise ArgumentError("scopes: expected a list")
        return [_choice(ReaclScope, s, "scopes") for s in raw]

    def source_domain(self) -> str:
        # The backend reports unmatched SIDs of one source domain; the first is the forest's
        # own (the controller lists the source Environment's domain first).
        domains = self.strings("sourceDomains")
        if not domains:
            raise ArgumentError("sourceDomains: expected the source domain's SID")
        return domains[0]


def boot_id(source: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    """This boot's id (Linux); "" where there is none to read."""
    try:
        return source.read_text(encoding="ascii").strip()
    except OSError:
        return ""


def _reboot_missed(entry: JournalEntry) -> bool:
    """A Reboot recorded ahead of its command, read back in the same boot: the agent was
    stopped before the reboot happened (during the delay, say), so it is to run again."""
    details = entry.outcome.details if entry.outcome is not None else {}
    recorded = details.get(BOOT_ID)
    return bool(recorded) and recorded == boot_id()


def _choice(kind: Callable[[str], Any], value: Any, key: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ArgumentError(f"{key}: {value!r} is not a known value") from None


def _seconds_until(moment: str | None) -> float:
    if not moment:
        return 0.0
    try:
        when = datetime.fromisoformat(moment)
    except ValueError:
        raise RunbookError(f"runbook: notBefore {moment!r} is not an RFC 3339 time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _message(body: Any) -> str:
    error = (body or {}).get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        error = error.get("message")
    return str(error) if isinstance(error, str) else ""


# -- the agent's own log ------------------------------------------------------------------------

def log_to(folder: Path) -> Path:
    """Log to `folder`/LOG_FILE as well as stderr: rotated, at most about 2 x LOG_BYTES."""
    path = folder / LOG_FILE
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=1,
                                                   encoding="utf-8")
    if os.name == "posix":
        os.chmod(path, 0o600)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logging.getLogger("ferry_agent").addHandler(handler)
    return path


def log_tail(path: Path, limit: int = LOG_BYTES) -> str:
    """The last `limit` bytes (UTF-8) of the log, whole lines, across its last rotation."""
    data = b""
    for part in _rotations(path):
        with contextlib.suppress(FileNotFoundError):
            data += part.read_bytes()[-limit:]
    if len(data) > limit:
        data = data[-limit:]
        data = data[data.find(b"\n") + 1:]   # from the first whole line
    text = data.decode("utf-8", "replace")
    while len(text.encode("utf-8")) > limit:   # replacement characters are wider
        text = text[text.find("\n") + 1:] if "\n" in text else ""
    return text


def _rotations(path: Path) -> Sequence[Path]:
    return [path.with_name(path.name + ".1"), path]
