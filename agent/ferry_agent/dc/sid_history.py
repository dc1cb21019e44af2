"""Source SIDs into a target user's or group's sIDHistory, on the Samba DC the agent runs on.

Everything is checked before the DC's database is opened (SID syntax and kind, the target's
name) or before anything is written (the target is no protected account, the SIDs are not
its own domain's and belong to no other object, the DN is under the agent's write subtrees),
all within the one transaction that then writes. Only SIDs not yet present are added, so a
second call changes nothing and says so.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ..directory.subtrees import WriteSubtrees
from ..dn import DNError, parse_dn
from ..errors import FerryAgentError
from ..sid import FIRST_ASSIGNED_RID, SidError, parse_sid, protected_group
from .local_samba import BackendExchange, LocalDcError, LocalSambaDc

OPERATION = "add SID history"
_SAM_FORBIDDEN = set('"/\\[]:;|=,+*?<>')
# Backend answers about one target (the others go on); any other LocalDcError ends the run.
PER_TARGET_FAILURES = {"notFound", "ambiguous", "ldb", "verify"}


class SidHistoryRefused(FerryAgentError, ValueError):
    """The request is refused as it stands (nothing was written); the message says why."""


@dataclass(frozen=True)
class SidHistoryResult:
    """What one call did: `added` are new in sIDHistory, `already_present` were there."""

    dn: str
    added: tuple[str, ...]
    already_present: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.added)

    def describe(self) -> str:
        if not self.added:
            return f"{self.dn}: sIDHistory already holds {', '.join(self.already_present)}"
        return f"{self.dn}: added {', '.join(self.added)} to sIDHistory"


@dataclass(frozen=True)
class TargetFacts:
    """The target as the DC's database has it, inside the transaction that will write."""

    dn: str
    object_sid: str
    domain_sid: str
    object_class: tuple[str, ...]
    sid_history: tuple[str, ...]
    group_sids: tuple[str, ...]
    critical: bool
    admin_count: int
    holders: dict[str, str]

    @classmethod
    def from_backend(cls, facts: dict[str, object]) -> TargetFacts:
        def strings(name: str) -> tuple[str, ...]:
            value = facts.get(name) or []
            return tuple(str(item) for item in value) if isinstance(value, list) else ()

        holders = facts.get("holders") or {}
        return cls(
            dn=str(facts["dn"]), object_sid=str(facts["objectSid"]),
            domain_sid=str(facts["domainSid"]), object_class=strings("objectClass"),
            sid_history=strings("sidHistory"), group_sids=strings("groupSids"),
            critical=bool(facts.get("critical")),
            admin_count=int(str(facts.get("adminCount") or 0)),
            holders={str(k): str(v) for k, v in holders.items()}
            if isinstance(holders, dict) else {},
        )


def normalize_sids(sids: Sequence[str]) -> tuple[str, ...]:
    """Canonical, de-duplicated source SIDs; refused unless each is a domain account's with
    an assigned RID (a well-known source SID, e.g. the source's Domain Admins, in sIDHistory
    would make the target an administrator of every resource that trusts the source)."""
    if isinstance(sids, str) or not sids:
        raise SidHistoryRefused(f"{OPERATION}: give one or more source SIDs as a list")
    found: list[str] = []
    for text in sids:
        try:
            sid = parse_sid(text)
        except SidError as exc:
            raise SidHistoryRefused(f"{OPERATION}: {exc}") from None
        if not sid.is_domain_account:
            raise SidHistoryRefused(f"{OPERATION}: {sid} is not a domain account's SID"
                                    " (S-1-5-21-X-Y-Z-RID); only those go into sIDHistory")
        if sid.rid < FIRST_ASSIGNED_RID:
            raise SidHistoryRefused(f"{OPERATION}: {sid} is a well-known account or group"
                                    f" (RID {sid.rid} < {FIRST_ASSIGNED_RID}); never migrated")
        if str(sid) not in found:
            found.append(str(sid))
    return tuple(found)


def target_query(target: str) -> dict[str, str]:
    """An objectGUID as <GUID=...>, a DN ("=" in it: no sAMAccountName may hold one) or a
    sAMAccountName, checked."""
    text = target.strip() if isinstance(target, str) else ""
    if not text:
        raise SidHistoryRefused(f"{OPERATION}: name the target by DN or sAMAccountName")
    if text.startswith("<GUID=") and text.endswith(">"):
        try:
            return {"guid": str(uuid.UUID(text[6:-1]))}
        except ValueError:
            raise SidHistoryRefused(f"{OPERATION}: {text!r} is not an objectGUID") from None
    if "=" in text:
        try:
            parse_dn(text)
        except DNError as exc:
            raise SidHistoryRefused(f"{OPERATION}: target {exc}") from None
        return {"dn": text}
    if len(text) > 256 or _SAM_FORBIDDEN & set(text) or any(ord(c) < 32 for c in text):
        raise SidHistoryRefused(f"{OPERATION}: {text!r} is neither a DN nor a valid"
                                " sAMAccountName")
    return {"sam": text}


def protection(facts: TargetFacts) -> str:
    """Why the target is an account Ferry never touches, or "" when it is not one."""
    sid = parse_sid(facts.object_sid)
    if sid.domain != facts.domain_sid or sid.rid < FIRST_ASSIGNED_RID:
        return f"it is a built-in account ({sid}, RID below {FIRST_ASSIGNED_RID})"
    if facts.critical:
        return "it is a critical system object (isCriticalSystemObject)"
    for group in facts.group_sids:
        name = protected_group(group)
        if name:
            return f"it is a member of {name} ({group}), directly or nested"
    if facts.admin_count:
        return ("its adminCount is set (it is or was in a protected group); clear adminCount"
                " if it no longer is")
    return ""


def check(facts: TargetFacts, sids: Sequence[str], subtrees: WriteSubtrees) -> None:
    """Refuse the whole request unless every SID may go into this target's sIDHistory."""
    why = protection(facts)
    if why:
        raise SidHistoryRefused(f'{OPERATION} "{facts.dn}": refused, {why}')
    refused = subtrees.refusal(OPERATION, [facts.dn])
    if refused is not None:
        raise refused
    for sid in sids:
        if parse_sid(sid).domain == facts.domain_sid:
            raise SidHistoryRefused(f'{OPERATION} "{facts.dn}": {sid} is a SID of the'
                                    " target's own domain; give the source object's SID")
        holder = facts.holders.get(sid)
        if holder:
            raise SidHistoryRefused(f'{OPERATION} "{facts.dn}": {sid} already belongs to'
                                    f' "{holder}" (objectSid or sIDHistory)')


@dataclass(frozen=True)
class SourcePrincipal:
    """Whose SID it is, as DsAddSidHistory names it (Windows DCs read the SID themselves):
    the source domain's DNS name, the principal's sAMAccountName, the source PDC."""

    domain: str
    principal: str
    domain_controller: str


@dataclass(frozen=True)
class SidHistoryRequest:
    """One target (DN, <GUID=...> or sAMAccountName) and the source SIDs its sIDHistory
    should hold; `source` names their owner for a Windows DC."""

    target: str
    sids: tuple[str, ...]
    source: SourcePrincipal | None = None


def add_sid_history(dc: LocalSambaDc, target: str, sids: Sequence[str], *,
                    subtrees: WriteSubtrees) -> SidHistoryResult:
    """Add `sids` (source objectSids) to the target's sIDHistory on this DC, idempotently;
    a refusal or failure is raised."""
    (outcome,) = add_sid_histories(dc, [SidHistoryRequest(target, normalize_sids(sids))],
                                   subtrees=subtrees)
    if isinstance(outcome, FerryAgentError):
        raise outcome
    return outcome


def add_sid_histories(dc: LocalSambaDc, requests: Sequence[SidHistoryRequest], *,
                      subtrees: WriteSubtrees) -> list[SidHistoryResult | FerryAgentError]:
    """Each request's outcome, in order, through one run of the backend (one transaction per
    target): a refused or failed target never stops the others. Requests that do not parse
    never reach the DC; if none parses, the backend is not even started."""
    outcomes: list[SidHistoryResult | FerryAgentError | None] = []
    valid: list[tuple[int, dict[str, str], tuple[str, ...]]] = []
    for index, request in enumerate(requests):
        try:
            valid.append((index, target_query(request.target), normalize_sids(request.sids)))
            outcomes.append(None)
        except SidHistoryRefused as exc:
            outcomes.append(exc)
    if valid:
        with dc.exchange() as backend:
            for index, query, wanted in valid:
                try:
                    outcomes[index] = _add_one(backend, query, wanted, subtrees)
                except LocalDcError as exc:
                    if exc.kind not in PER_TARGET_FAILURES:
                        raise  # the backend itself is gone: nothing after this can run
                    outcomes[index] = exc
                except FerryAgentError as exc:  # refused: SidHistoryRefused, DirectoryError
                    outcomes[index] = exc
    return [outcome for outcome in outcomes if outcome is not None]


def _add_one(backend: BackendExchange, query: dict[str, str], wanted: tuple[str, ...],
             subtrees: WriteSubtrees) -> SidHistoryResult:
    answer = backend.call({"target": query, "sids": list(wanted)})
    facts = TargetFacts.from_backend(dict(answer["facts"]))
    try:
        check(facts, wanted, subtrees)
    except FerryAgentError:
        backend.send({"add": []})
        raise
    present = tuple(sid for sid in wanted if sid in facts.sid_history)
    missing = tuple(sid for sid in wanted if sid not in facts.sid_history)
    if not missing:
        backend.send({"add": []})
        return SidHistoryResult(facts.dn, (), present)
    after = backend.call({"add": list(missing)})["sidHistory"]
    lost = [sid for sid in missing if sid not in after]
    if lost:
        raise LocalDcError("verify", f'{OPERATION} "{facts.dn}": the DC took the change but'
                           f" sIDHistory lacks {', '.join(lost)}")
    return SidHistoryResult(facts.dn, missing, present)
