"""The wire protocol between agents, the gateway and sync Jobs: JSON over HTTPS.

Every body is a JSON object carrying "v": PROTOCOL_VERSION. Agents long-poll for work, so only
plain HTTPS POSTs cross the network (they pass web proxies). Routes:

  agent   POST /v1/enroll            EnrollRequest -> EnrollResponse   (token, no identity yet)
  agent   POST /v1/agent/heartbeat   Heartbeat -> {"heartbeatSeconds"}  (client certificate)
  agent   POST /v1/agent/poll        PollRequest {"wait"} -> {"work": WorkItem | null}
  agent   GET  /v1/agent/stream      WebSocket: each PollRequest message -> one {"work"} message
  agent   POST /v1/agent/result      WorkResult -> {"accepted": bool}   (409: lease lost)
  agent   POST /v1/agent/password-routes  {} -> {"routes": [{"pair", "target", "keys"}]}
  agent   POST /v1/agent/password    PasswordChange -> {"results": [{"pair", "outcome",
                                     "message"}]}  (a DC agent's change, relayed; see below)
  job     POST /v1/work              WorkRequest -> {"workId"}          (bearer token)
  job     POST /v1/work/<id>/results ResultsRequest -> WorkProgress
  device  POST /v1/device/enroll     DeviceEnrollRequest -> DeviceEnrollResponse  (device token)
  device  POST /v1/device/runbook    RunbookRequest -> Runbook (below)  (device certificate)
  device  POST /v1/device/result     ActionReport -> {"accepted": bool}
  device  POST /v1/device/logs       LogUpload (text <= MAX_LOG_BYTES, else 413) -> {"stored"}
  device  GET  /v1/device/sid-table  -> {"version", "entries": {source SID: target SID}}

A work item is one call of a DirectorySession method (ferry_agent.directory.session) with
JSON-encoded arguments; results come back in numbered chunks (reads stream entries in pages,
a write batch its per-object results), the last one marked final. Errors travel as ErrorInfo
and are raised again on the caller's side as the same exception type; a write batch reports
each object's error in its own result, so per-object errors stay per-object.

Leases: a polled WorkItem is leased to the agent until now + leaseSeconds; every accepted chunk
and every Heartbeat listing the lease id extends that. An expired lease, or an agent silent
past the gateway's timeout, puts the item back with attempt + 1. Chunks count seq from 0 per
lease, without gaps (a gap is 400); "accepted": false means a seq already received, ignored
(a retried POST). 409 means the lease is no longer the agent's: drop the item, never retry it.

Job side: ResultsRequest {"after", "wait", "generation"} long-polls up to `wait` seconds
(at most POLL_WAIT_SECONDS) and answers WorkProgress {"state": queued | leased | done,
"generation", "chunks": [WorkResult objects, as agents posted them]}. `generation` counts
leases lost: when the answer's generation differs from the request's, the job drops what it
collected and `chunks` starts again at seq 0; otherwise `chunks` holds the seqs above `after`
(and `after` acknowledges the ones below, which the gateway may then free). Once a final
chunk is delivered the work is forgotten (after a short grace for a repeated request): 404
then, and for work a restarted gateway lost, which the job must treat as failed. Work no agent
finishes within the gateway's attempt limit ends done with one final chunk, ok false,
error AgentError.

Password changes (DCAgent mode): a DC agent asks which pairs want its environment's password
changes and the keys of each pair's target agents (password-routes), seals the new password
to those keys, bound to the user's objectGUID, and posts it. The gateway relays it to the
target's agents as a set_passwords work item when the user is joined in that pair, waits for
the outcome and answers it per pair: "set", "notJoined" (nothing to do), "refused" (the
target will not take it: a protected account, its password policy) or "failed" (not
delivered: the DC agent sends it again later). The gateway never holds a key that opens it.

Device agents (one per workstation of a DeviceMigration) enroll with a device token (a wave
token enrolls many until revoked or expired, a single-use one once) and are then known by
their certificate; a device certificate opens only the device routes and an agent's only the
agent routes (403 otherwise). A Runbook is {"migration", "device", "generation", "state": run |
wait | paused | done, "reason", "pollSeconds", "sidTableVersion", "actions": [{"id", "action",
"arguments", "state": pending | done | failed, "notBefore": RFC 3339 | null, "sealed": {key
id: ciphertext} | null}], "next": action id | null}. Action ids are stable within a
generation; a retry or rollback starts a new one. An ActionReport already recorded for its
(generation, actionId) is answered accepted false and changes nothing. A join's machine secret
(a one-time password or an offline join blob) reaches the device only in "sealed", sealed by
the target's agent to the device's own key.

Errors answer {"v": 1, "error": "<short text>"}: 400 (the ProtocolError text), 401 (no or bad
credential), 403 (refused), 404, 408 (the body came too slowly), 409, 413 (over MAX_BODY_BYTES
for results and work, over 64 KiB for everything else), 429 (queue full, or the agent holds
as many polls, streams or connections as one may: retry after Retry-After seconds), 503 (too
many connections). Successful answers carry "v" too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from .dc.sid_history import SidHistoryRequest, SidHistoryResult, SourcePrincipal
from .directory.batch import Write, WriteResult
from .directory.errors import DirectoryError, WatermarkError
from .directory.read import AdWatermark, Changes, ChangeStream, Entry, ReadScope
from .errors import FerryAgentError
from .passwords.transfer import PasswordSet, SealedPassword

T = TypeVar("T")

PROTOCOL_VERSION = 1
MAX_BODY_BYTES = 16 * 1024 * 1024   # the gateway refuses larger bodies; agents page below it
READ_PAGE = 500                      # entries per result chunk of a streamed read
POLL_WAIT_SECONDS = 25               # long-poll: below common proxy idle timeouts
MAX_LOG_BYTES = 1 << 20              # a device's uploaded log (UTF-8): the gateway keeps no more

WRITE_PAGE = 100                     # write results per result chunk

# Operations an agent carries out. read_full, read_by_guids and read_by_values {"attribute",
# "values", "attributes", "scope"} (equality, for `ferry trace`) stream pages of entries;
# read_changes streams pages of entries, then a last chunk with deletions and the watermark;
# write carries a batch of Writes and streams pages of their results, one per Write in order.
# add_sid_history carries {"items": [{"target", "sids"}]} to an agent on a target DC and
# streams pages of outcomes, one per item in order ({"dn", "added", "alreadyPresent"} or
# {"error"}).
# read_passwords {"watermark", "guids", "recipients": [PEM]} streams pages of sealed
# passwords ({"source", "kind", "sealed": {key id: ciphertext}}), then {"watermark"};
# set_passwords {"items": [{"target", "source", "kind", "sealed"}]} streams pages of
# outcomes ({} or {"error": message}), one per item in order. check_migration
# {"replication", "resetPasswordOUs", "sidHistory", "dcAgent", "sourceDomains"} answers
# [{"ok", "message"}].
# stage_computer {"name", "ou", "dnsDomain", "mode": "password" | "offline", "recipient": PEM,
# "domainController"} creates (or resets) a device's computer account in `ou` and answers one
# chunk {"dn", "sid", "sealed": {key id: ciphertext}}: the one-time password or the offline
# join blob sealed to `recipient` (the device agent's key), bound to the computer name.
# disable_computer {"name"} disables a moved device's source account: {"dn", "disabled"}.
# run_script {"command", "script", "env", "sealedEnv": {name: {key id: ciphertext}},
# "binding", "files": {variable: [file name, base64]}, "timeout"} runs a workflow's script
# step, if [scripts] allow of the agent's INI names command[0], and answers one chunk
# {"exitCode", "timedOut", "duration", "tail", "error"}.
OPERATIONS = frozenset({
    "exists", "initial_watermark", "read_full", "read_changes", "read_by_guids",
    "read_by_values", "resolve_dns", "write", "add_sid_history", "read_passwords", "set_passwords",
    "check_migration", "stage_computer", "disable_computer", "run_script",
})


class ProtocolError(FerryAgentError, ValueError):
    """A message does not follow the protocol; the text says which field is wrong."""


@dataclass(frozen=True)
class ErrorInfo:
    type: str           # DirectoryError | WatermarkError | AgentError
    message: str
    dn: str = ""
    operation: str = ""
    code: int = 0
    description: str = ""


@dataclass(frozen=True)
class WorkItem:
    work_id: str
    lease_id: str
    environment: str
    operation: str
    arguments: dict[str, Any]
    lease_seconds: float
    attempt: int = 1     # >1: an earlier lease expired; writes check before acting again


@dataclass(frozen=True)
class WorkResult:
    lease_id: str
    work_id: str
    seq: int
    final: bool
    ok: bool = True
    value: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True)
class EnrollRequest:
    token: str
    name: str
    host: str
    version: str
    csr: str            # PEM certificate signing request; the private key stays on the agent


@dataclass(frozen=True)
class EnrollResponse:
    agent_id: str
    environment: str
    certificate: str    # PEM, signed by Ferry's agent CA
    ca: str             # PEM of that CA


@dataclass(frozen=True)
class DeviceEnrollRequest:
    token: str          # a device token of one DeviceMigration
    name: str           # the computer name
    host: str
    version: str
    csr: str            # PEM certificate signing request; the private key stays on the device
    os: str             # linux | windows
    labels: dict[str, str] = field(default_factory=dict)   # what waves select devices by


@dataclass(frozen=True)
class DeviceEnrollResponse:
    agent_id: str       # "device-<hex>"
    migration: str      # "namespace/name"
    certificate: str    # PEM, signed by Ferry's agent CA
    ca: str             # PEM that verifies the gateway


@dataclass(frozen=True)
class RunbookRequest:
    facts: dict[str, str] = field(default_factory=dict)   # domain, computerName, ...


@dataclass(frozen=True)
class ActionReport:
    generation: int
    action_id: str
    attempt: int
    ok: bool
    message: str
    details: dict[str, Any]
    started_at: str     # RFC 3339
    finished_at: str


@dataclass(frozen=True)
class LogUpload:
    text: str           # the device agent's log, its last MAX_LOG_BYTES


@dataclass(frozen=True)
class Heartbeat:
    version: str
    host: str
    leases: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PollRequest:
    wait: float = POLL_WAIT_SECONDS   # seconds to hold the request open when no work is queued


@dataclass(frozen=True)
class PasswordChange:
    source: str                  # the user's objectGUID in the DC agent's domain
    sealed: dict[str, Any]       # pair -> {key id: ciphertext}, to that pair's target agents


@dataclass(frozen=True)
class WorkRequest:
    environment: str
    operation: str      # one of OPERATIONS
    arguments: dict[str, Any]


@dataclass(frozen=True)
class ResultsRequest:
    after: int = -1     # the last seq the job holds of `generation`; -1: none
    wait: float = 0.0
    generation: int = 0  # the generation the job's chunks belong to; 0: none yet


@dataclass(frozen=True)
class WorkProgress:
    state: str          # queued | leased | done
    generation: int
    chunks: list[dict[str, Any]] = field(default_factory=list)  # encoded WorkResult objects


# -- message encoding --------------------------------------------------------------------------

_CAMEL = {"work_id": "workId", "lease_id": "leaseId", "lease_seconds": "leaseSeconds",
          "agent_id": "agentId", "action_id": "actionId", "started_at": "startedAt",
          "finished_at": "finishedAt"}
_SNAKE = {v: k for k, v in _CAMEL.items()}


def encode(message: Any) -> dict[str, Any]:
    """A protocol dataclass as a JSON-ready dict with the version stamped in.

    Shallow on purpose: values are JSON-ready already, and a read's pages are megabytes that a
    deep copy (dataclasses.asdict) would copy at every hop. Only nested ErrorInfo converts."""
    body = {_CAMEL.get(f.name, f.name): _plain(getattr(message, f.name))
            for f in fields(message)}
    body["v"] = PROTOCOL_VERSION
    return body


def _plain(value: Any) -> Any:
    return asdict(value) if isinstance(value, ErrorInfo) else value


def decode(kind: type[Any], body: Any) -> Any:
    """Parse a JSON body into a protocol dataclass; ProtocolError names what is wrong."""
    if not isinstance(body, dict):
        raise ProtocolError(f"{kind.__name__}: expected a JSON object")
    if body.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"{kind.__name__}: protocol version {body.get('v')!r} is not"
                            f" {PROTOCOL_VERSION}")
    values: dict[str, Any] = {_SNAKE.get(str(k), str(k)): v for k, v in body.items()
                              if k != "v"}
    expected = kind.__dataclass_fields__
    unknown = sorted(set(values) - set(expected))
    if unknown:
        raise ProtocolError(f"{kind.__name__}: unknown field(s) {', '.join(unknown)}")
    if kind is WorkResult and isinstance(values.get("error"), dict):
        values["error"] = _error_info(values["error"])
    try:
        message = kind(**values)
    except TypeError as exc:
        raise ProtocolError(f"{kind.__name__}: {exc}") from None
    for name, spec in expected.items():
        _check_type(kind.__name__, name, getattr(message, name), spec.type)
    return message


def _check_type(kind: str, name: str, value: Any, annotation: Any) -> None:
    simple: dict[str, type | tuple[type, ...]] = {
        "str": str, "int": int, "bool": bool, "float": (int, float), "dict[str, Any]": dict,
        "dict[str, str]": dict, "list[str]": list, "list[dict[str, Any]]": list}
    wanted = simple.get(str(annotation))
    if wanted is not None and (not isinstance(value, wanted) or
                               (wanted is not bool and isinstance(value, bool))):
        raise ProtocolError(f"{kind}.{name}: expected {annotation}, got {type(value).__name__}")
    if str(annotation) == "dict[str, str]" and not all(isinstance(v, str)
                                                      for v in value.values()):
        raise ProtocolError(f"{kind}.{name}: expected an object of strings")


def _error_info(data: dict[str, Any]) -> ErrorInfo:
    try:
        return ErrorInfo(**data)
    except TypeError as exc:
        raise ProtocolError(f"ErrorInfo: {exc}") from None


# -- directory values --------------------------------------------------------------------------

def encode_scope(scope: ReadScope) -> dict[str, Any]:
    return {"baseDns": list(scope.base_dns), "objectTypes": list(scope.object_types)}


def decode_scope(data: dict[str, Any]) -> ReadScope:
    return ReadScope(base_dns=list(data["baseDns"]), object_types=list(data["objectTypes"]))


def encode_entry(entry: Entry) -> dict[str, Any]:
    return {"guid": entry.guid, "dn": entry.dn, "type": entry.object_type,
            "attributes": entry.attributes, "members": list(entry.members),
            "usnChanged": entry.usn_changed, "uac": entry.user_account_control}


def decode_entry(data: dict[str, Any]) -> Entry:
    return Entry(guid=data["guid"], dn=data["dn"], object_type=data["type"],
                 attributes={k: list(v) for k, v in data["attributes"].items()},
                 members=list(data.get("members") or []),
                 usn_changed=int(data.get("usnChanged") or 0),
                 user_account_control=data.get("uac"))


def encode_change_summary(stream: ChangeStream) -> dict[str, Any]:
    """The last chunk of a streamed read_changes (after its entries were consumed)."""
    return {"deleted": stream.deleted, "outOfScope": stream.out_of_scope,
            "watermark": stream.watermark.to_dict()}


def decode_changes(pages: Sequence[Any]) -> Changes:
    """The chunks of read_changes (pages of entries, then the summary) as one Changes."""
    if not pages or not isinstance(pages[-1], dict):
        raise ProtocolError("read_changes: the last chunk must hold deleted, outOfScope and"
                            " watermark")
    summary = pages[-1]
    return Changes(entries=[decode_entry(e) for page in pages[:-1] for e in page or ()],
                   deleted=list(summary["deleted"]), out_of_scope=list(summary["outOfScope"]),
                   watermark=AdWatermark.from_dict(summary["watermark"]))


def encode_write(item: Write) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": item.kind, "dn": item.dn}
    optional = {"objectType": item.object_type, "attributes": dict(item.attributes),
                "newDn": item.new_dn, "add": list(item.add), "remove": list(item.remove),
                "password": item.password, "mustChangePassword": item.must_change_password,
                "parent": item.parent}
    body.update((k, v) for k, v in optional.items() if v)  # leave out what is empty
    if item.enabled is not None:
        body["enabled"] = item.enabled
    return body


def decode_write(data: Any) -> Write:
    """A Write from its JSON form; ProtocolError names a wrong field."""
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str) \
            or not isinstance(data.get("dn"), str):
        raise ProtocolError("write: each write needs string fields kind and dn")
    attributes = data.get("attributes") or {}
    if not isinstance(attributes, dict) or not all(
            v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))
            for v in attributes.values()):
        raise ProtocolError(f"write {data['dn']!r}: attributes must map names to lists of"
                            " strings or null")
    enabled, password = data.get("enabled"), data.get("password")
    if enabled is not None and not isinstance(enabled, bool):
        raise ProtocolError(f"write {data['dn']!r}: enabled must be true, false or null")
    if password is not None and not isinstance(password, str):
        raise ProtocolError(f"write {data['dn']!r}: password must be a string")
    return Write(kind=data["kind"], dn=data["dn"], object_type=str(data.get("objectType", "")),
                 attributes=attributes, enabled=enabled, new_dn=str(data.get("newDn", "")),
                 add=tuple(as_strings(data.get("add", []), "add")),
                 remove=tuple(as_strings(data.get("remove", []), "remove")), password=password,
                 must_change_password=bool(data.get("mustChangePassword")),
                 parent=str(data.get("parent", "")))


def encode_write_result(result: WriteResult) -> dict[str, Any]:
    if result.error is not None:
        return {"error": asdict(error_of(result.error))}
    return {"guid": result.guid}


def decode_write_result(data: dict[str, Any]) -> WriteResult:
    error = data.get("error")
    if error:
        info = _error_info(error)
        return WriteResult(error=DirectoryError(info.dn, info.operation, info.code,
                                                info.message, info.description))
    return WriteResult(guid=str(data.get("guid") or ""))


def encode_sid_history_request(request: SidHistoryRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"target": request.target, "sids": list(request.sids)}
    if request.source is not None:
        body["source"] = {"domain": request.source.domain,
                          "principal": request.source.principal,
                          "domainController": request.source.domain_controller}
    return body


def decode_sid_history_request(data: Any) -> SidHistoryRequest:
    if not isinstance(data, dict) or not isinstance(data.get("target"), str):
        raise ProtocolError("add_sid_history: each item needs a string target and sids")
    source = data.get("source")
    principal = None
    if source is not None:
        fields = ("domain", "principal", "domainController")
        if not isinstance(source, dict) or not all(isinstance(source.get(f), str)
                                                   for f in fields):
            raise ProtocolError("add_sid_history: source needs string domain, principal and"
                                " domainController")
        principal = SourcePrincipal(*(source[f] for f in fields))
    return SidHistoryRequest(data["target"], tuple(as_strings(data.get("sids", []), "sids")),
                             principal)


def encode_sid_history_outcome(outcome: SidHistoryResult | Exception) -> dict[str, Any]:
    if isinstance(outcome, Exception):
        return {"error": asdict(error_of(outcome))}
    return {"dn": outcome.dn, "added": list(outcome.added),
            "alreadyPresent": list(outcome.already_present)}


def decode_sid_history_outcome(data: Any) -> SidHistoryResult | FerryAgentError:
    """One item's outcome; a refusal or failure comes back as an error to report, not raise."""
    if not isinstance(data, dict):
        raise ProtocolError("add_sid_history: each outcome must be an object")
    if data.get("error"):
        return FerryAgentError(_error_info(data["error"]).message)
    return SidHistoryResult(str(data.get("dn", "")),
                            tuple(as_strings(data.get("added", []), "added")),
                            tuple(as_strings(data.get("alreadyPresent", []), "alreadyPresent")))


def encode_sealed_password(item: SealedPassword) -> dict[str, Any]:
    return {"source": item.source, "kind": item.kind, "sealed": dict(item.sealed)}


def decode_sealed_password(data: Any) -> SealedPassword:
    sealed = data.get("sealed") if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("source"), str) \
            or not isinstance(data.get("kind"), str) or not isinstance(sealed, dict) \
            or not all(isinstance(k, str) and isinstance(v, str) for k, v in sealed.items()):
        raise ProtocolError("password: each needs string source and kind, and sealed: an"
                            " object of strings")
    return SealedPassword(data["source"], data["kind"], dict(sealed))


def encode_password_set(item: PasswordSet) -> dict[str, Any]:
    return {"target": item.target, **encode_sealed_password(item.password)}


def decode_password_set(data: Any) -> PasswordSet:
    if not isinstance(data, dict) or not isinstance(data.get("target"), str):
        raise ProtocolError("set_passwords: each item needs a string target")
    return PasswordSet(data["target"], decode_sealed_password(data))


def error_of(exc: Exception) -> ErrorInfo:
    """What to send back for an exception raised while carrying out a work item."""
    if isinstance(exc, WatermarkError):
        return ErrorInfo("WatermarkError", str(exc))
    if isinstance(exc, DirectoryError):
        return ErrorInfo("DirectoryError", exc.message, exc.dn, exc.operation, exc.code,
                         exc.description)
    if isinstance(exc, FerryAgentError):  # its message is written for the admin already
        return ErrorInfo("AgentError", str(exc))
    return ErrorInfo("AgentError", f"{type(exc).__name__}: {exc}")


def raise_error(info: ErrorInfo) -> None:
    """Raise on the caller's side the exception the agent met."""
    if info.type == "DirectoryError":
        raise DirectoryError(info.dn, info.operation, info.code, info.message, info.description)
    if info.type == "WatermarkError":
        raise WatermarkError(info.message)
    raise RuntimeError(f"agent: {info.message}")


def pages(items: Iterable[T], encode: Callable[[T], dict[str, Any]],
          size: int = READ_PAGE) -> Iterator[list[dict[str, Any]]]:
    """Streamed items (entries of a read, results of a write batch) cut into result chunks;
    the last page may be empty, so there is always one."""
    page: list[dict[str, Any]] = []
    for item in items:
        page.append(encode(item))
        if len(page) >= size:
            yield page
            page = []
    yield page


def as_strings(values: Sequence[Any], what: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ProtocolError(f"{what}: expected a list of strings")
    return list(values)
