"""/groups: list, get, create, update (with `members@odata.bind`), delete, and membership:
`/members` (paged, with type casts), `/transitiveMembers`, `POST /members/$ref`,
`DELETE /members/{id}/$ref`.

Security groups are `securityEnabled: true, mailEnabled: false`; Microsoft 365 groups are
`groupTypes: ["Unified"], mailEnabled: true` and get a mail address on the initial domain.
Deleting a Microsoft 365 group moves it to deleted items; a security group is deleted for good
(https://learn.microsoft.com/graph/api/group-delete).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlparse

from . import permissions as perm
from .errors import GraphError, bad_request, invalid_value, not_found, required
from .graph import Call, Reply, Route, collection, entity
from .model import BY_KIND, GROUP, GROUP_READ_ONLY, USER, Record, new_id, now_iso
from .odata import split_select

MAX_BIND = 20  # https://learn.microsoft.com/graph/api/group-post-members (up to 20 per request)
REQUIRED = ("displayName", "mailEnabled", "mailNickname", "securityEnabled")
_NICKNAME_BAD = re.compile(r"[@()\\\[\]\";:<>,\s]")
_ID_IN_PARENS = re.compile(r"\('([^']+)'\)$")


def list_groups(call: Call) -> Reply:
    perm.require(call.roles, perm.READ_GROUPS)
    groups = call.directory.groups
    return collection(call, GROUP, lambda: (("group", r) for r in groups.values()), "groups")


def get_group(call: Call, group_id: str) -> Reply:
    perm.require(call.roles, perm.READ_GROUPS)
    record = call.directory.get("group", group_id)
    select = split_select(call.params.get("$select"))
    GROUP.check_select(select)
    return entity(call, GROUP, record, "groups/$entity", select=select)


def create_group(call: Call) -> Reply:
    perm.require(call.roles, perm.CREATE_GROUPS)
    body = call.json_body()
    GROUP.check_writable(body, GROUP_READ_ONLY)
    for name in REQUIRED:
        if body.get(name) is None:
            raise required(name, "Group")
    _validate(body)
    unified = "Unified" in (body.get("groupTypes") or [])
    if body["mailEnabled"] and not unified:
        raise bad_request("Creating mail-enabled security groups or distribution lists is not "
                          "supported through Microsoft Graph.")
    if unified and not body["mailEnabled"]:
        raise invalid_value("mailEnabled", "Group")
    directory = call.directory
    member_ids = _bound_ids(call, body, "members@odata.bind")
    _bound_ids(call, body, "owners@odata.bind")  # checked, not kept: owners aren't emulated
    record: Record = {k: v for k, v in body.items() if not k.endswith("@odata.bind")}
    record["id"] = new_id()
    record.setdefault("groupTypes", [])
    if unified:
        mail = f"{body['mailNickname']}@{directory.initial_domain}"
        record.update(mail=mail, proxyAddresses=[f"SMTP:{mail}"], renewedDateTime=now_iso())
        record.setdefault("visibility", "Public")
    else:
        record.setdefault("mail", None)
        record.setdefault("proxyAddresses", [])
    directory.check_unique(record)
    directory.add("group", record)
    for member_id in member_ids:
        directory.add_member(record["id"], member_id)
    return entity(call, GROUP, record, "groups/$entity", status=201)


def update_group(call: Call, group_id: str) -> Reply:
    body = call.json_body()
    only_members = set(body) <= {"members@odata.bind"}
    perm.require(call.roles, perm.WRITE_MEMBERS if only_members else perm.UPDATE_GROUPS)
    directory = call.directory
    group = directory.get("group", group_id)
    GROUP.check_writable(body, GROUP_READ_ONLY)
    _validate(body)
    member_ids = _bound_ids(call, body, "members@odata.bind")
    existing = directory.members.get(group["id"], {})
    if any(member_id in existing for member_id in member_ids):
        raise _already_member()
    changes = {k: v for k, v in body.items() if not k.endswith("@odata.bind")}
    if changes:
        directory.update("group", group["id"], changes)
    for member_id in member_ids:
        directory.add_member(group["id"], member_id)
    return Reply(204)


def delete_group(call: Call, group_id: str) -> Reply:
    perm.require(call.roles, perm.DELETE_GROUPS)
    directory = call.directory
    group = directory.get("group", group_id)
    if "Unified" in (group.get("groupTypes") or []):
        directory.soft_delete("group", group["id"])
    else:
        directory.hard_delete("group", group["id"])
    return Reply(204)


def list_members(call: Call, group_id: str, cast: str | None = None) -> Reply:
    return _members(call, group_id, cast, transitive=False)


def list_transitive_members(call: Call, group_id: str, cast: str | None = None) -> Reply:
    return _members(call, group_id, cast, transitive=True)


def _members(call: Call, group_id: str, cast: str | None, *, transitive: bool) -> Reply:
    perm.require(call.roles, perm.READ_MEMBERS)
    directory = call.directory
    group = directory.get("group", group_id)
    kind = _cast_kind(cast)

    def source() -> Iterator[tuple[str, Record]]:
        ids = (directory.transitive_members(group["id"]) if transitive
               else iter(directory.members.get(group["id"], {})))
        for member_id in ids:
            member_kind = directory.kind_of.get(member_id)
            if member_kind and (kind is None or member_kind == kind):
                yield member_kind, directory.objects[member_kind][member_id]

    if kind is None:  # a mixed collection: each object typed, $select checked against user
        return collection(call, USER, source, "directoryObjects", typed=True)
    resource = BY_KIND[kind]
    return collection(call, resource, source, resource.entity_set)


def add_member_ref(call: Call, group_id: str) -> Reply:
    perm.require(call.roles, perm.WRITE_MEMBERS)
    directory = call.directory
    group = directory.get("group", group_id)
    body = call.json_body()
    reference = body.get("@odata.id")
    if not isinstance(reference, str):
        raise required("@odata.id", "Reference")
    member_id = parse_reference(reference)
    directory.get_any(member_id)
    if member_id in directory.members.get(group["id"], {}):
        raise _already_member()
    directory.add_member(group["id"], member_id)
    return Reply(204)


def remove_member_ref(call: Call, group_id: str, member_id: str) -> Reply:
    perm.require(call.roles, perm.WRITE_MEMBERS)
    directory = call.directory
    group = directory.get("group", group_id)
    if not directory.remove_member(group["id"], member_id):
        raise not_found(member_id)
    return Reply(204)


def parse_reference(reference: str) -> str:
    """The object id at the end of an `@odata.id` / `@odata.bind` URL, whatever its host
    (the SDK and Microsoft's examples write https://graph.microsoft.com/v1.0/directoryObjects/{id})."""
    path = urlparse(reference).path.rstrip("/")
    last = path.rsplit("/", 1)[-1]
    match = _ID_IN_PARENS.search(last)
    object_id = match.group(1) if match else last
    if not object_id:
        raise bad_request(f"Invalid object identifier '{reference}'.")
    return object_id


def _bound_ids(call: Call, body: Record, name: str) -> list[str]:
    values = body.get(name)
    if values is None:
        return []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise bad_request(f"Invalid value for '{name}'. A collection of URLs is expected.")
    if len(values) > MAX_BIND:
        raise bad_request(
            f"The request exceeds the maximum number of {MAX_BIND} references allowed in "
            f"'{name}' in a single request."
        )
    ids = [parse_reference(v) for v in values]
    for object_id in ids:
        call.directory.get_any(object_id)
    return ids


def _already_member() -> GraphError:
    return bad_request("One or more added object references already exist for the following "
                       "modified properties: 'members'.")


def _validate(body: Record) -> None:
    if "displayName" in body and not body["displayName"]:
        raise invalid_value("displayName", "Group")
    for flag in ("mailEnabled", "securityEnabled"):
        if flag in body and not isinstance(body[flag], bool):
            raise invalid_value(flag, "Group")
    if "mailNickname" in body:
        nickname = body["mailNickname"]
        if not isinstance(nickname, str) or not nickname or len(nickname) > 64 or \
                _NICKNAME_BAD.search(nickname):
            raise invalid_value("mailNickname", "Group")
    if "groupTypes" in body and not isinstance(body["groupTypes"], list):
        raise invalid_value("groupTypes", "Group")


def _cast_kind(cast: str | None) -> str | None:
    if cast is None:
        return None
    kinds = {"microsoft.graph.user": "user", "microsoft.graph.group": "group",
             "microsoft.graph.orgContact": "contact", "microsoft.graph.device": "device"}
    if cast not in kinds:
        raise GraphError(400, "BadRequest", f"Resource not found for the segment '{cast}'.")
    return kinds[cast]


ROUTES = [
    Route("GET", ("groups",), list_groups),
    Route("POST", ("groups",), create_group),
    Route("GET", ("groups", "{}"), get_group),
    Route("PATCH", ("groups", "{}"), update_group),
    Route("DELETE", ("groups", "{}"), delete_group),
    Route("GET", ("groups", "{}", "members"), list_members),
    Route("GET", ("groups", "{}", "members", "{}"), list_members),
    Route("GET", ("groups", "{}", "transitiveMembers"), list_transitive_members),
    Route("GET", ("groups", "{}", "transitiveMembers", "{}"), list_transitive_members),
    Route("POST", ("groups", "{}", "members", "$ref"), add_member_ref),
    Route("DELETE", ("groups", "{}", "members", "{}", "$ref"), remove_member_ref),
]
