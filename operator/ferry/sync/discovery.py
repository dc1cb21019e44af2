"""Discovery: take inventory of an environment (full first, then deltas) for its status and
its report."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.api.environment import Environment
from ferry.connectors.base import SCOPE_TYPES, Connector
from ferry.engine.records import ObjectType, Record
from ferry.state.store import StateStore
from ferry.sync.discovered_objects import REPORT_ATTRIBUTES, directory_object

# Watermarks of discovery live beside the workflows' under this name.
DISCOVERY = "discovery"


@dataclass(frozen=True)
class DiscoveryResult:
    """What one discovery read: in full or a delta, changed and deleted objects, counts."""

    full: bool
    changed: int
    deleted: int
    counts: dict[str, int]     # by scope type name (users, groups, ...)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def discover(env: Environment, connector: Connector, store: StateStore, *,
             reset: bool = False) -> DiscoveryResult:
    """Read the environment's scope (a delta when a watermark exists) into the inventory.

    reset forgets every watermark of the environment, so this discovery and the next run of
    each workflow reading it start over with full reads."""
    name = env.metadata.name
    if reset:
        store.watermarks.reset(name)
    types = [SCOPE_TYPES[t] for t in env.spec.scope.object_types]
    result = connector.read(types, REPORT_ATTRIBUTES, store.watermarks.get(DISCOVERY, name))
    found = {r.anchor: r.object_type.value for r in result.records}
    store.inventory.update(name, found, result.deleted, replace=result.full)
    store.directory_objects.update(name, map(directory_object, result.records), result.deleted,
                                   replace=result.full, namespace=env.metadata.namespace or "")
    # Computers are kept by name and DN too: a DeviceMigration selects them by source OU.
    if ObjectType.DEVICE in types:
        devices = dict(filter(None, map(_device, result.records)))
        store.discovered_devices.update(name, devices, result.deleted, replace=result.full)
    if result.watermark is not None:
        store.watermarks.set(DISCOVERY, name, result.watermark)
    by_type = store.inventory.counts(name)
    names = {v.value: k.value for k, v in SCOPE_TYPES.items()}
    counts = {names.get(t, t): n for t, n in sorted(by_type.items())}
    return DiscoveryResult(result.full, len(found), len(result.deleted), counts)


def _device(record: Record) -> tuple[str, tuple[str, str, str]] | None:
    """anchor -> (computer name, DN, operating system) of a discovered computer."""
    if record.object_type is not ObjectType.DEVICE:
        return None
    sam = _first(record.attributes.get("sAMAccountName"))
    if not sam:
        return None
    return record.anchor, (sam.removesuffix("$").upper(), record.dn,
                           _first(record.attributes.get("operatingSystem")))


def _first(value: object) -> str:
    if isinstance(value, list | tuple):
        value = value[0] if value else ""
    return value if isinstance(value, str) else ""
