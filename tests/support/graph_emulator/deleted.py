"""/directory/deletedItems: soft-deleted users and Microsoft 365 groups, listed by type
(`/directory/deletedItems/microsoft.graph.user`), read, restored with the same id
(`POST .../{id}/restore`) or purged (`DELETE .../{id}`)."""

from __future__ import annotations

from collections.abc import Iterator

from . import permissions as perm
from .errors import GraphError, not_found
from .graph import Call, Reply, Route, collection
from .model import BY_KIND, Record, directory_object

_CASTS = {"microsoft.graph.user": "user", "microsoft.graph.group": "group"}


def list_deleted(call: Call, cast: str) -> Reply:
    kind = _CASTS.get(cast)
    if kind is None:
        # Anything not a type cast here is an id: GET /directory/deletedItems/{id}.
        return get_deleted(call, cast)
    perm.require(call.roles, perm.READ_DELETED[kind])
    deleted = call.directory.deleted

    def source() -> Iterator[tuple[str, Record]]:
        for found_kind, record, _ in deleted.values():
            if found_kind == kind:
                yield found_kind, record

    resource = BY_KIND[kind]
    return collection(call, resource, source, f"directoryObjects/{cast}")


def get_deleted(call: Call, object_id: str) -> Reply:
    kind, record = _find(call, object_id)
    perm.require(call.roles, perm.READ_DELETED.get(kind, perm.READ_USERS))
    body = {"@odata.context": call.context("directoryObjects/$entity"),
            **directory_object(kind, record)}
    return Reply(200, body)


def restore(call: Call, object_id: str) -> Reply:
    kind, _ = _find(call, object_id)
    perm.require(call.roles, perm.RESTORE_DELETED[kind])
    kind, record = call.directory.restore(object_id)
    body = {"@odata.context": call.context("directoryObjects/$entity"),
            **directory_object(kind, record)}
    return Reply(200, body)


def purge(call: Call, object_id: str) -> Reply:
    kind, _ = _find(call, object_id)
    perm.require(call.roles, perm.RESTORE_DELETED[kind])
    call.directory.hard_delete(kind, object_id)
    return Reply(204)


def _find(call: Call, object_id: str) -> tuple[str, Record]:
    found = call.directory.deleted.get(object_id)
    if found is None:
        if object_id.startswith("microsoft.graph."):
            raise GraphError(400, "BadRequest",
                             f"Resource not found for the segment '{object_id}'.")
        raise not_found(object_id)
    return found[0], found[1]


ROUTES = [
    Route("GET", ("directory", "deletedItems", "{}"), list_deleted),
    Route("POST", ("directory", "deletedItems", "{}", "restore"), restore),
    Route("DELETE", ("directory", "deletedItems", "{}"), purge),
]
