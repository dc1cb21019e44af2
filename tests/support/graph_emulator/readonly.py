"""Collections the emulator serves read-only: /contacts (orgContact: in Entra they come from
directory synchronization, Graph v1.0 can't create or change them), /devices and
/directory/administrativeUnits with their members. Writes answer 405."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from . import permissions as perm
from .errors import method_not_allowed
from .graph import Call, Reply, Route, collection, entity
from .model import ADMINISTRATIVE_UNIT, CONTACT, DEVICE, USER, Record, Resource
from .odata import split_select


def _lister(kind: str, resource: Resource, allowed: frozenset[str]
            ) -> Callable[[Call], Reply]:
    def list_all(call: Call) -> Reply:
        perm.require(call.roles, allowed)
        objects = call.directory.objects[kind]
        return collection(call, resource, lambda: ((kind, r) for r in objects.values()),
                          resource.entity_set)
    return list_all


def _getter(kind: str, resource: Resource, allowed: frozenset[str]
            ) -> Callable[[Call, str], Reply]:
    def get_one(call: Call, object_id: str) -> Reply:
        perm.require(call.roles, allowed)
        record = call.directory.get(kind, object_id)
        select = split_select(call.params.get("$select"))
        resource.check_select(select)
        return entity(call, resource, record, f"{resource.entity_set}/$entity", select=select)
    return get_one


def list_unit_members(call: Call, unit_id: str) -> Reply:
    perm.require(call.roles, perm.READ_ADMINISTRATIVE_UNITS)
    directory = call.directory
    unit = directory.get("administrativeUnit", unit_id)

    def source() -> Iterator[tuple[str, Record]]:
        for member_id in directory.au_members.get(unit["id"], {}):
            kind = directory.kind_of.get(member_id)
            if kind:
                yield kind, directory.objects[kind][member_id]

    return collection(call, USER, source, "directoryObjects", typed=True)


def refuse(call: Call, *_: str) -> Reply:
    raise method_not_allowed()


def _read_only(prefix: tuple[str, ...], kind: str, resource: Resource,
               allowed: frozenset[str]) -> list[Route]:
    return [
        Route("GET", prefix, _lister(kind, resource, allowed)),
        Route("GET", (*prefix, "{}"), _getter(kind, resource, allowed)),
        Route("POST", prefix, refuse),
        Route("PATCH", (*prefix, "{}"), refuse),
        Route("DELETE", (*prefix, "{}"), refuse),
    ]


ROUTES = [
    *_read_only(("contacts",), "contact", CONTACT, perm.READ_CONTACTS),
    *_read_only(("devices",), "device", DEVICE, perm.READ_DEVICES),
    *_read_only(("directory", "administrativeUnits"), "administrativeUnit", ADMINISTRATIVE_UNIT,
                perm.READ_ADMINISTRATIVE_UNITS),
    Route("GET", ("directory", "administrativeUnits", "{}", "members"), list_unit_members),
]
