"""/users/delta and /groups/delta (https://learn.microsoft.com/graph/delta-query-overview).

The first round lists every object (paged through `@odata.nextLink` with a `$skiptoken`); its
last page carries `@odata.deltaLink` with a `$deltatoken`. A later round with that link lists
what changed since the token was issued: changed or created objects in full (their selected
properties), deleted ones as `{"id", "@removed": {"reason": "changed"|"deleted"}}` ("changed":
soft-deleted, restorable; "deleted": gone for good), and for groups the membership changes in
`members@delta` (removed members carry `@removed`). `$deltatoken=latest` returns only a
deltaLink. Query parameters of the first request ($select) are kept in the tokens.

An expired token answers 400 `syncStateNotFound` (Microsoft's documented answer for identity
resources past the 7-day lifetime); after an admin reset it answers 410 Gone `resyncRequired`
with a Location to start over.
"""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import urlencode

from . import permissions as perm
from .errors import GraphError
from .graph import Call, Reply, Route
from .model import BY_KIND, Record
from .odata import DEFAULT_PAGE, parse_top, split_select
from .state import DeltaEntry, DeltaPages, DeltaState, Tenant

MAX_SESSIONS = 10_000
ENTITY_SETS = {"users": "user", "groups": "group"}
READ_GROUP_DELTA = perm.READ_MEMBERS - {"GroupMember.ReadWrite.All"}


def delta(call: Call, entity_set: str) -> Reply:
    kind = ENTITY_SETS[entity_set]
    perm.require(call.roles, perm.READ_USERS if kind == "user" else READ_GROUP_DELTA)
    tenant = call.tenant
    skiptoken = call.params.get("$skiptoken")
    if skiptoken:
        pages = tenant.delta_pages.pop(skiptoken, None)
        if pages is None:
            raise GraphError(
                400, "Directory_ExpiredPageToken",
                "The specified page token value has expired and can no longer be included in "
                "your request.",
            )
    else:
        pages = _start_round(call, tenant, kind)
    return _page(call, tenant, entity_set, pages)


def _start_round(call: Call, tenant: Tenant, kind: str) -> DeltaPages:
    directory = tenant.directory
    token = call.params.get("$deltatoken")
    if token and token != "latest":
        state = tenant.delta_states.get(token)
        if state is None or state.kind != kind or state.generation != directory.delta_generation:
            raise _expired(call, kind, state)
        select, top, since = state.select, state.top, state.watermark
    else:
        select = split_select(call.params.get("$select"))
        _check_select(kind, select)
        top = parse_top(call.params.get("$top"), DEFAULT_PAGE)
        since = None
    next_state = DeltaState(kind, directory.seq, select, directory.delta_generation, top)
    if token == "latest":
        entries: list[DeltaEntry] = []
    elif since is not None:
        entries = _changes_since(tenant, kind, since)
    else:
        entries = [DeltaEntry(object_id) for object_id in directory.objects[kind]]
    return DeltaPages(next_state, entries, 0)


def _changes_since(tenant: Tenant, kind: str, since: int) -> list[DeltaEntry]:
    directory = tenant.directory
    found: dict[str, tuple[int, DeltaEntry]] = {}
    for object_id, seq in directory.changed.items():
        if seq > since and directory.kind_of.get(object_id) == kind:
            found[object_id] = (seq, DeltaEntry(object_id, member_changes=[]))
    for object_id, stone in directory.tombstones.items():
        if stone.seq > since and stone.kind == kind:
            found[object_id] = (stone.seq, DeltaEntry(object_id, removed=stone.reason))
    if kind == "group":
        for group_id, (seq, changes) in _membership_changes(tenant, since).items():
            if directory.kind_of.get(group_id) != "group":
                continue
            current = found.get(group_id)
            if current is None:
                found[group_id] = (seq, DeltaEntry(group_id, member_changes=changes))
            elif current[1].removed is None:
                current[1].member_changes = changes
    return [entry for _, entry in sorted(found.values(), key=lambda pair: pair[0])]


def _membership_changes(tenant: Tenant, since: int
                        ) -> dict[str, tuple[int, list[tuple[str, bool]]]]:
    """Net membership changes per group after `since`: a member added then removed (or the
    other way round) within the window is no change."""
    window = []
    for change in reversed(tenant.directory.member_log):  # the log is in sequence order
        if change.seq <= since:
            break
        window.append(change)
    first: dict[tuple[str, str], bool] = {}  # was the first change an add? (in time order)
    last_seq: dict[str, int] = {}
    for change in reversed(window):
        first.setdefault((change.group_id, change.member_id), change.added)
        last_seq[change.group_id] = change.seq
    members = tenant.directory.members
    out: dict[str, tuple[int, list[tuple[str, bool]]]] = {}
    for (group_id, member_id), first_was_add in first.items():
        is_member = member_id in members.get(group_id, {})
        was_member = not first_was_add
        if is_member != was_member:
            out.setdefault(group_id, (last_seq[group_id], []))[1].append((member_id, is_member))
    return out


def _page(call: Call, tenant: Tenant, entity_set: str, pages: DeltaPages) -> Reply:
    state = pages.next_state
    end = pages.position + state.top
    chunk = pages.entries[pages.position:end]
    value = [rendered for entry in chunk
             if (rendered := _render(tenant, state, entry)) is not None]
    fragment = entity_set + (f"({','.join(state.select)})" if state.select else "")
    body: dict[str, Any] = {"@odata.context": call.context(fragment)}
    link = f"{call.base}/{entity_set}/delta()?"
    if end < len(pages.entries):
        token = secrets.token_urlsafe(24)
        tenant.delta_pages[token] = DeltaPages(state, pages.entries, end)
        _trim(tenant.delta_pages)
        body["@odata.nextLink"] = link + urlencode({"$skiptoken": token}, safe="$")
    else:
        token = secrets.token_urlsafe(24)
        tenant.delta_states[token] = state
        _trim(tenant.delta_states)
        body["@odata.deltaLink"] = link + urlencode({"$deltatoken": token}, safe="$")
    body["value"] = value
    return Reply(200, body)


def _render(tenant: Tenant, state: DeltaState, entry: DeltaEntry) -> dict[str, Any] | None:
    directory = tenant.directory
    if entry.removed is None:
        record = directory.objects[state.kind].get(entry.object_id)
        if record is None:  # deleted while the round was paged: report it as deleted
            stone = directory.tombstones.get(entry.object_id)
            if stone is None:
                return None
            return {"id": entry.object_id, "@removed": {"reason": stone.reason}}
    else:
        return {"id": entry.object_id, "@removed": {"reason": entry.removed}}
    select = [name for name in state.select if name != "members"] if state.select else None
    shaped = BY_KIND[state.kind].shape(record, select or (["id"] if state.select else None))
    if state.kind == "group" and (state.select is None or "members" in state.select):
        shaped["members@delta"] = _members_delta(tenant, record, entry)
    return shaped


def _members_delta(tenant: Tenant, group: Record, entry: DeltaEntry) -> list[dict[str, Any]]:
    directory = tenant.directory
    if entry.member_changes is None:
        changes = [(member_id, True) for member_id in directory.members.get(group["id"], {})]
    else:
        changes = entry.member_changes
    out = []
    for member_id, added in changes:
        item: dict[str, Any] = {"@odata.type": _odata_type(tenant, member_id), "id": member_id}
        if not added:
            item["@removed"] = {"reason": "deleted"}
        out.append(item)
    return out


def _odata_type(tenant: Tenant, object_id: str) -> str:
    directory = tenant.directory
    kind = directory.kind_of.get(object_id)
    if kind is None:
        deleted = directory.deleted.get(object_id)
        stone = directory.tombstones.get(object_id)
        kind = deleted[0] if deleted else stone.kind if stone else "user"
    return BY_KIND[kind].odata_type


def _check_select(kind: str, select: list[str] | None) -> None:
    names = [name for name in select or () if not (kind == "group" and name == "members")]
    BY_KIND[kind].check_select(names)


def _expired(call: Call, kind: str, state: DeltaState | None) -> GraphError:
    directory = call.directory
    if state is not None and directory.delta_reset:
        entity_set = "users" if kind == "user" else "groups"
        params = {"$select": ",".join(state.select)} if state.select else {}
        params["$deltatoken"] = ""
        location = f"{call.base}/{entity_set}/delta()?{urlencode(params, safe='$,')}"
        return GraphError(
            410, "resyncRequired",
            "The delta token is no longer valid; replace any local data with the data of a new "
            "delta query.",
            headers={"Location": location},
        )
    return GraphError(
        400, "syncStateNotFound",
        "The sync state generation is not found. The delta token is expired and data must be "
        "synchronized again.",
    )


def _trim(store: Any) -> None:
    while len(store) > MAX_SESSIONS:
        store.popitem(last=False)


ROUTES = [
    Route("GET", ("users", "delta"), lambda call: delta(call, "users")),
    Route("GET", ("users", "microsoft.graph.delta"), lambda call: delta(call, "users")),
    Route("GET", ("groups", "delta"), lambda call: delta(call, "groups")),
    Route("GET", ("groups", "microsoft.graph.delta"), lambda call: delta(call, "groups")),
]
