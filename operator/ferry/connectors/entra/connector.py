"""Entra ID: users, groups, contacts and devices of a tenant as Records, written through Graph.

Anchors are object ids. A user's DN is `CN=<userPrincipalName>` and a group's
`CN=<displayName>`: labels without containers, so nothing ever moves. Full reads run the
users and groups delta queries from the start, so their deltaLinks become the watermark of
the next changed-objects-only read; an expired deltaLink falls back to a full read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import structlog

from ferry.api.environment import Scope
from ferry.connectors.base import (
    SCOPE_TYPES,
    ConnectorCheckError,
    ObjectWrite,
    ReadResult,
    WriteOutcome,
)
from ferry.connectors.entra.permissions import Need, missing, needs
from ferry.connectors.entra.properties import (
    BASE_PROPERTIES,
    NOT_STAGED,
    PROPERTIES,
    PSEUDO,
    READ_ONLY,
    selected,
    to_attribute,
    to_graph,
)
from ferry.connectors.entra.session import (
    MAX_ATTEMPTS,
    BatchRequest,
    GraphError,
    GraphSession,
    GraphUncertain,
)
from ferry.engine.plan import Operation, OpKind
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.state.rows import Watermark
from ferry_agent.dn import build_dn
from ferry_agent.transport import backoff

log = structlog.get_logger("ferry.entra")

WATERMARK_KIND = "graph-delta"
MEMBER_BIND_LIMIT = 20     # members@odata.bind values Graph takes in one PATCH
BATCH_LIMIT = 20           # requests in one JSON batch
PAGE_SIZE = 999
_COLLECTION = {ObjectType.USER: "users", ObjectType.GROUP: "groups",
               ObjectType.CONTACT: "contacts", ObjectType.DEVICE: "devices"}
_DELTA_TYPES = (ObjectType.USER, ObjectType.GROUP)
_EXPIRED = frozenset({"syncStateNotFound", "resyncRequired", "SyncStateNotFound"})
_ALREADY_MEMBER = "One or more added object references already exist"
_NOTHING = BatchRequest("NONE", "")  # a write with nothing to send


@dataclass
class _Delta:
    """What one delta query (or its first round) returned."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, list[str]] = field(default_factory=dict)     # full rounds only
    removed: list[str] = field(default_factory=list)
    link: str = ""


class EntraConnector:
    """One Entra ID tenant, read and written through Microsoft Graph."""

    batch_size = BATCH_LIMIT

    def __init__(self, name: str, session: GraphSession, scope: Scope, where: str = ""):
        self.name = name
        self.session = session
        self.scope = scope
        self.where = where or name
        self._types: dict[str, ObjectType] = {}   # id -> type, of what was read or created

    def close(self) -> None:
        self.session.close()

    def throttling(self) -> tuple[int, int]:
        return self.session.throttled, self.session.retries

    def check(self, required: Iterable[Need] = ()) -> str:
        """Sign in, read one user, and compare the token's permissions with `required`
        (by default what reading this environment's scope needs)."""
        try:
            self.session.get("/users?" + urlencode({"$select": "id", "$top": "1"}))
        except GraphError as exc:
            raise ConnectorCheckError(f"signed in to {self.where}, but reading users failed:"
                                      f" {exc}") from None
        roles = self.session.roles()
        wanted = list(required) or needs(
            [SCOPE_TYPES[t] for t in self.scope.object_types],
            (), administrative_units=bool(self.scope.administrative_units))
        lacking = missing(wanted, roles)
        if lacking:
            raise ConnectorCheckError(
                f"signed in to {self.where}, but the app lacks the Graph application"
                f" permission(s) " + ", ".join(f"{n.permission} (to {n.why})" for n in lacking)
                + "; grant them with admin consent")
        return (f"signed in to {self.where}; users readable; application permissions:"
                f" {', '.join(roles) or 'none'}")

    # reading ---------------------------------------------------------------------------
    def read(self, object_types: Collection[ObjectType], attributes: Collection[str],
             watermark: Watermark | None = None, *, missing_scope_ok: bool = False
             ) -> ReadResult:
        wanted = set(attributes)
        links: dict[str, str] = {}
        if watermark is not None and watermark.kind == WATERMARK_KIND:
            links = json.loads(watermark.value)
        if links and all(t.value in links for t in object_types if t in _DELTA_TYPES) \
                and not self.scope.user_filter:
            try:
                return self._read_changes(object_types, wanted, links)
            except GraphError as exc:
                if exc.code not in _EXPIRED and exc.status != 410:
                    raise
                log.warning("entra.delta_expired", environment=self.name, reason=str(exc))
        return self._read_full(object_types, wanted)

    def _read_full(self, object_types: Collection[ObjectType], wanted: set[str]) -> ReadResult:
        records: list[Record] = []
        links: dict[str, str] = {}
        allowed = self._scope_ids()
        for object_type in object_types:
            select = selected(object_type, wanted)
            members: dict[str, list[str]]
            if object_type in _DELTA_TYPES and not (object_type is ObjectType.USER
                                                    and self.scope.user_filter):
                delta = self._delta(object_type, select, None)
                links[object_type.value] = delta.link
                objects, members = list(delta.objects.values()), delta.members
            else:
                query = {"$select": ",".join(select), "$top": str(PAGE_SIZE)}
                if object_type is ObjectType.USER and self.scope.user_filter:
                    query["$filter"] = self.scope.user_filter
                url = f"/{_COLLECTION[object_type]}?{urlencode(query)}"
                objects = [o for page in self.session.pages(url) for o in page.get("value", [])]
                members = {}
                if object_type is ObjectType.GROUP:
                    members = {g["id"]: self._members(g["id"]) for g in objects}
            for data in objects:
                if allowed is None or data["id"] in allowed:
                    records.append(self._record(object_type, data, members.get(data["id"])))
        return ReadResult(records, [], Watermark(WATERMARK_KIND, json.dumps(links)), True)

    def _read_changes(self, object_types: Collection[ObjectType], wanted: set[str],
                      links: dict[str, str]) -> ReadResult:
        records: list[Record] = []
        removed: list[str] = []
        new_links = dict(links)
        allowed = self._scope_ids()
        for object_type in object_types:
            select = selected(object_type, wanted)
            if object_type not in _DELTA_TYPES:
                continue  # contacts and devices are few and have no delta here: full below
            delta = self._delta(object_type, select, links[object_type.value])
            new_links[object_type.value] = delta.link
            removed += delta.removed
            # Delta rounds carry changed properties only (and member changes): read in full,
            # twenty to a JSON batch.
            query = urlencode({"$select": ",".join(select)})
            changed = [i for i in delta.objects if allowed is None or i in allowed]
            removed += [i for i in delta.objects if allowed is not None and i not in allowed]
            for start in range(0, len(changed), BATCH_LIMIT):
                ids = changed[start:start + BATCH_LIMIT]
                answers = self.session.batch([
                    BatchRequest("GET", f"/{_COLLECTION[object_type]}/{i}?{query}")
                    for i in ids])
                for object_id, answer in zip(ids, answers, strict=True):
                    if answer.status == 404:
                        removed.append(object_id)  # gone again since the delta round
                        continue
                    if not answer.ok:
                        raise answer.error()
                    members = (self._members(object_id) if object_type is ObjectType.GROUP
                               else None)
                    records.append(self._record(object_type, answer.body, members))
        others = [t for t in object_types if t not in _DELTA_TYPES]
        if others:
            records += self._read_full(others, wanted).records
        return ReadResult(records, removed, Watermark(WATERMARK_KIND, json.dumps(new_links)),
                          False)

    def _delta(self, object_type: ObjectType, select: list[str], link: str | None) -> _Delta:
        collection = _COLLECTION[object_type]
        if link is None:
            fields = select + (["members"] if object_type is ObjectType.GROUP else [])
            link = f"/{collection}/delta?" + urlencode({"$select": ",".join(fields)})
        found = _Delta()
        for page in self.session.pages(link):
            for data in page.get("value", []):
                if "@removed" in data:
                    found.removed.append(data["id"])
                    found.objects.pop(data["id"], None)
                    continue
                current = found.objects.setdefault(data["id"], {})
                current.update(data)
                if "members@delta" in data:
                    members = found.members.setdefault(data["id"], [])
                    members += [m["id"] for m in data["members@delta"] if "@removed" not in m]
            found.link = page.get("@odata.deltaLink", found.link)
        return found

    def _members(self, group_id: str) -> list[str]:
        url = f"/groups/{group_id}/members?" + urlencode({"$select": "id", "$top": "999"})
        return [m["id"] for page in self.session.pages(url) for m in page.get("value", [])]

    def _scope_ids(self) -> set[str] | None:
        """Ids of what scope.groups and scope.administrativeUnits let in; None: no limit."""
        if not self.scope.groups and not self.scope.administrative_units:
            return None
        allowed: set[str] = set()
        for group in self.scope.groups:
            url = f"/groups/{group}/transitiveMembers?" + urlencode({"$select": "id"})
            allowed.update(m["id"] for p in self.session.pages(url) for m in p.get("value", []))
        for unit in self.scope.administrative_units:
            url = f"/directory/administrativeUnits/{unit}/members?" + urlencode({"$select": "id"})
            allowed.update(m["id"] for p in self.session.pages(url) for m in p.get("value", []))
        return allowed

    def read_anchors(self, anchors: Collection[str], attributes: Collection[str]) -> list[Record]:
        records = []
        for anchor in anchors:
            # An anchor this connector has not read yet (a changed run reads targets by
            # anchor only): tried as each kind in turn, users first.
            known = self._types.get(anchor)
            for object_type in (known,) if known is not None else tuple(_COLLECTION):
                select = selected(object_type, set(attributes))
                try:
                    data = self.session.get(f"/{_COLLECTION[object_type]}/{anchor}?"
                                            + urlencode({"$select": ",".join(select)}))
                except GraphError as exc:
                    if exc.status == 404:
                        continue
                    raise
                members = self._members(anchor) if object_type is ObjectType.GROUP else None
                records.append(self._record(object_type, data, members))
                break
        return records

    def find(self, attribute: str, values: Collection[str], object_types: Collection[ObjectType],
             attributes: Collection[str]) -> list[Record]:
        """By `$filter=<attribute> eq '<value>'` per type that has the property (or `id`)."""
        records: list[Record] = []
        allowed = self._scope_ids()
        for object_type in object_types:
            if attribute != "id" and attribute not in PROPERTIES[object_type] \
                    and attribute not in BASE_PROPERTIES[object_type]:
                continue
            select = selected(object_type, set(attributes))
            for value in values:
                clause = f"{attribute} eq {_odata_string(value)}"
                if object_type is ObjectType.USER and self.scope.user_filter:
                    clause = f"({self.scope.user_filter}) and {clause}"
                url = f"/{_COLLECTION[object_type]}?" + urlencode(
                    {"$filter": clause, "$select": ",".join(select)})
                for page in self.session.pages(url):
                    for data in page.get("value", []):
                        if allowed is not None and data["id"] not in allowed:
                            continue
                        members = (self._members(data["id"]) if object_type is ObjectType.GROUP
                                   else None)
                        records.append(self._record(object_type, data, members))
        return records

    def _record(self, object_type: ObjectType, data: dict[str, Any],
                members: list[str] | None) -> Record:
        self._types[data["id"]] = object_type
        attributes: dict[str, AttributeValue] = {}
        for name, value in data.items():
            if name in NOT_STAGED or name.startswith("@"):
                continue
            converted = to_attribute(value)
            if converted is not None:
                attributes[name] = converted
        label = data.get("userPrincipalName") or data.get("displayName") or data["id"]
        references = ({"member": tuple(members or ())} if object_type is ObjectType.GROUP
                      else {})
        enabled = data.get("accountEnabled") if object_type is ObjectType.USER else None
        return Record(data["id"], object_type, build_dn(str(label), ""), attributes,
                      references, enabled if isinstance(enabled, bool) else None)

    # writing ---------------------------------------------------------------------------
    def write(self, writes: Sequence[ObjectWrite]) -> list[WriteOutcome]:
        """Creates, updates and deletes go as one JSON batch; guests and memberships, which
        take several dependent requests, one by one after it."""
        outcomes: dict[int, WriteOutcome] = {}
        batched: list[tuple[int, BatchRequest]] = []
        for index, write in enumerate(writes):
            try:
                request = self._single_request(write)
            except ValueError as exc:
                outcomes[index] = self._failed(write, exc)
                continue
            if request is _NOTHING:
                outcomes[index] = WriteOutcome()
            elif request is not None:
                batched.append((index, request))
        answers = self.session.batch([r for _, r in batched]) if batched else []
        for (index, request), answer in zip(batched, answers, strict=True):
            write = writes[index]
            if answer.ok:
                anchor = str(answer.body.get("id", "")) if request.method == "POST" else ""
                if anchor:
                    self._types[anchor] = write.op.object_type
                outcomes[index] = WriteOutcome(anchor=anchor)
            elif request.method == "DELETE" and answer.status == 404:
                outcomes[index] = WriteOutcome()  # gone already: a repeated delete
            elif answer.uncertain:
                outcomes[index] = self._one_by_one(write, look_first=True)
            else:
                outcomes[index] = self._failed(write, answer.error())
        for index, write in enumerate(writes):
            if index not in outcomes:
                outcomes[index] = self._one_by_one(write)
        return [outcomes[i] for i in range(len(writes))]

    def _failed(self, write: ObjectWrite, exc: Exception) -> WriteOutcome:
        return WriteOutcome(error=f"{write.op.kind.value} {write.op.dn}: {exc}")

    def _one_by_one(self, write: ObjectWrite, look_first: bool = False) -> WriteOutcome:
        try:
            return WriteOutcome(anchor=self._write_one(write, look_first))
        except (GraphError, GraphUncertain, ValueError) as exc:
            return self._failed(write, exc)

    def _single_request(self, write: ObjectWrite) -> BatchRequest | None:
        """The one request a write takes, _NOTHING when it takes none, or None when it takes
        several (guests, memberships)."""
        op = write.op
        if op.kind is OpKind.CREATE:
            if write.restore or (op.object_type is ObjectType.USER
                                 and op.changes.get("userType") == "Guest"):
                return None
            collection, body = self._create_body(write)
            return BatchRequest("POST", f"/{collection}", body)
        if op.kind is OpKind.UPDATE:
            body = self._update_body(op)
            if not body:
                return _NOTHING
            return BatchRequest("PATCH", self._path(op.object_type, op.target_anchor), body)
        if op.kind is OpKind.DELETE:
            return BatchRequest("DELETE", self._path(op.object_type, op.target_anchor))
        if op.kind is OpKind.MOVE:
            raise ValueError("Entra ID has no containers: objects do not move")
        return None

    def _write_one(self, write: ObjectWrite, look_first: bool = False) -> str:
        op = write.op
        if op.kind is OpKind.CREATE:
            return self._create(write, look_first)
        if op.kind is OpKind.UPDATE:
            body = self._update_body(op)
            if body:
                self.session.request("PATCH", self._path(op.object_type, op.target_anchor),
                                     body, writes=1)
            return ""
        if op.kind is OpKind.DELETE:
            try:
                self.session.request("DELETE", self._path(op.object_type, op.target_anchor),
                                     writes=1)
            except GraphError as exc:
                if exc.status != 404:  # already gone (a retried delete): done
                    raise
            return ""
        if op.kind is OpKind.REFERENCES:
            self._set_references(write)
            return ""
        raise ValueError("Entra ID has no containers: objects do not move")

    def _update_body(self, op: Operation) -> dict[str, Any]:
        body = self._body(op, op.changes.items())
        if op.enabled is not None and op.object_type is ObjectType.USER:
            body["accountEnabled"] = op.enabled
        return body

    def _create_body(self, write: ObjectWrite) -> tuple[str, dict[str, Any]]:
        op = write.op
        if op.object_type not in (ObjectType.USER, ObjectType.GROUP):
            raise ValueError(f"Graph cannot create {op.object_type.value} objects; turn"
                             f" create off for {op.object_type.value}s in the template")
        body = self._body(op, op.changes.items())
        if op.object_type is ObjectType.USER:
            body["accountEnabled"] = op.enabled if op.enabled is not None else True
            if write.password is None:
                raise ValueError("a user create needs an initial password")
            body["passwordProfile"] = {"password": write.password,
                                       "forceChangePasswordNextSignIn":
                                           write.must_change_password}
        else:  # a security group unless the template says otherwise
            body.setdefault("securityEnabled", "Unified" not in body.get("groupTypes", []))
            body.setdefault("mailEnabled", "Unified" in body.get("groupTypes", []))
        return _COLLECTION[op.object_type], body

    def _create(self, write: ObjectWrite, look_first: bool = False) -> str:
        """Create, looking for the object first whenever an earlier try may have made it."""
        op = write.op
        staged = dict(op.changes.items())
        if write.restore:
            restored = self._restore(op, write.restore)
            if restored:
                return restored
        if op.object_type is ObjectType.USER and staged.get("userType") == "Guest":
            return self._invite(op, staged)
        collection, body = self._create_body(write)
        delays = backoff(base=1.0, cap=30.0)
        created: dict[str, Any] | None = None
        for _ in range(MAX_ATTEMPTS):
            if look_first:
                created = self._find(op.object_type, body)
                if created is not None:
                    break
            try:
                created = self.session.request("POST", f"/{collection}", body, writes=1) or {}
                break
            except GraphUncertain as exc:
                # The answer was lost: maybe it was created. Look before sending it again.
                log.info("entra.create_uncertain", object=op.dn, reason=str(exc)[:200])
                look_first = True
                time.sleep(next(delays))
        if created is None:
            raise GraphError(0, "RetriesExhausted", f"POST /{collection} failed"
                             f" {MAX_ATTEMPTS} times")
        self._types[created["id"]] = op.object_type
        return str(created["id"])

    def _restore(self, op: Operation, anchor: str) -> str:
        """Bring a deleted object back from the recycle bin with op's values; "" when it is
        no longer there (purged, or restored and deleted for good)."""
        try:
            self.session.request("POST", f"/directory/deletedItems/{anchor}/restore",
                                 writes=1)
        except GraphUncertain:
            try:  # the answer was lost: restored if it is live again
                self.session.get(self._path(op.object_type, anchor) + "?$select=id")
            except GraphError as exc:
                if exc.status == 404:
                    return ""
                raise
        except GraphError as exc:
            if exc.status == 404:
                return ""
            raise
        body = self._body(op, ((k, v) for k, v in op.changes.items()
                               if k not in ("userType", "mailNickname")))
        if body:
            self.session.request("PATCH", self._path(op.object_type, anchor), body, writes=1)
        self._types[anchor] = op.object_type
        return anchor

    def _find(self, object_type: ObjectType, body: dict[str, Any]) -> dict[str, Any] | None:
        """The object a create made, if there is one: by UPN for users, for groups by
        mailNickname and display name."""
        if object_type is ObjectType.USER:
            upn = body.get("userPrincipalName")
            try:
                return self.session.get(f"/users/{quote(str(upn))}?$select=id")
            except GraphError as exc:
                if exc.status == 404:
                    return None
                raise
        nickname = _odata_string(str(body.get("mailNickname", "")))
        name = _odata_string(str(body.get("displayName", "")))
        page = self.session.get("/groups?" + urlencode({
            "$filter": f"mailNickname eq {nickname} and displayName eq {name}",
            "$select": "id"}))
        found = page.get("value") or []
        return found[0] if len(found) == 1 else None

    def _invite(self, op: Operation, staged: dict[str, AttributeValue | None]) -> str:
        """A B2B guest through the invitations API, without sending the invitation."""
        address = staged.get("invitedUserEmailAddress") or staged.get("mail")
        if not isinstance(address, str) or "@" not in address:
            raise ValueError("a guest needs a mail address to be invited")
        body = {"invitedUserEmailAddress": address, "sendInvitationMessage": False,
                "invitedUserType": "Guest",
                "invitedUserDisplayName": staged.get("displayName") or address,
                "inviteRedirectUrl": "https://myapps.microsoft.com"}
        invited = self.session.request("POST", "/invitations", body, writes=1,
                                       idempotent=True) or {}
        guest_id = str(invited["invitedUser"]["id"])
        self._types[guest_id] = ObjectType.USER
        rest = {k: v for k, v in staged.items()
                if k not in ("userPrincipalName", "mail", "userType", "mailNickname")}
        patch = self._body(op, rest.items())
        if patch:
            self.session.request("PATCH", f"/users/{guest_id}", patch, writes=1)
        return guest_id

    def pending_guests(self) -> list[Record]:
        """B2B guests that have not redeemed an invitation (externalUserState
        PendingAcceptance)."""
        select = selected(ObjectType.USER, {"externalUserState", "mail"})
        url = "/users?" + urlencode({"$filter": "userType eq 'Guest'",
                                     "$select": ",".join(select), "$top": str(PAGE_SIZE)})
        guests = [g for page in self.session.pages(url) for g in page.get("value", [])]
        return [self._record(ObjectType.USER, g, None) for g in guests
                if g.get("externalUserState") in ("PendingAcceptance", None)]

    def send_invitation(self, mail: str, redirect_url: str) -> None:
        """Send the invitation of an existing guest (inviting its address again does)."""
        self.session.request("POST", "/invitations", {
            "invitedUserEmailAddress": mail, "sendInvitationMessage": True,
            "inviteRedirectUrl": redirect_url, "invitedUserType": "Guest"},
            writes=1, idempotent=True)

    def _set_references(self, write: ObjectWrite) -> None:
        op = write.op
        if (op.attribute or "member") != "member" or op.object_type is not ObjectType.GROUP:
            return  # manager and other references are not written to Entra ID yet
        group = f"/groups/{write.target}"
        base = self.session.endpoints.base_url
        for start in range(0, len(write.add), MEMBER_BIND_LIMIT):
            chunk = write.add[start:start + MEMBER_BIND_LIMIT]
            body = {"members@odata.bind": [f"{base}/directoryObjects/{m}" for m in chunk]}
            try:
                self.session.request("PATCH", group, body, writes=1)
            except GraphError as exc:
                if exc.status != 400 or _ALREADY_MEMBER not in exc.message:
                    raise
                for member in chunk:  # some are in already: add the others one by one
                    self._add_member(group, base, member)
        for member in write.remove:
            try:
                self.session.request("DELETE", f"{group}/members/{member}/$ref", writes=1)
            except GraphError as exc:
                if exc.status != 404:
                    raise

    def _add_member(self, group: str, base: str, member: str) -> None:
        try:
            self.session.request("POST", f"{group}/members/$ref",
                                 {"@odata.id": f"{base}/directoryObjects/{member}"}, writes=1,
                                 idempotent=True)
        except GraphError as exc:
            if exc.status != 400 or _ALREADY_MEMBER not in exc.message:
                raise

    def _body(self, op: Operation, changes: Iterable[tuple[str, AttributeValue | None]]
              ) -> dict[str, Any]:
        known = PROPERTIES[op.object_type]
        body: dict[str, Any] = {}
        for name, value in changes:
            if name in PSEUDO or name in READ_ONLY:
                continue
            if name not in known:
                raise ValueError(f"{name} is not a Graph {op.object_type.value} property Ferry"
                                 " writes; map it to a Graph name or remove the mapping")
            body[name] = to_graph(name, value)
        return body

    def _path(self, object_type: ObjectType, anchor: str | None) -> str:
        return f"/{_COLLECTION[object_type]}/{anchor}"


def _odata_string(value: str) -> str:
    """value as an OData string literal: quoted, its quotes doubled."""
    return "'" + value.replace("'", "''") + "'"
