"""Diff: compare a desired target record with the current one and say what must change."""

from __future__ import annotations

import struct
from collections.abc import Callable, Collection, Mapping

from ferry.engine.expressions import CompiledTemplate, Layout
from ferry.engine.plan import Operation, OpKind, shared_names
from ferry.engine.records import REFERENCE_ATTRIBUTES, AttributeValue, ObjectType, Record
from ferry.engine.stage import Staged
from ferry_agent.dn import same_dn

# Fingerprint of "no value". hash() never returns -1 (CPython reserves it), so no value
# can be mistaken for absence.
ABSENT = -1


def same_value(want: AttributeValue, have: AttributeValue) -> bool:
    """Equal values: case-sensitive, a str equals its 1-tuple, multi-values ignore order."""
    if want == have:
        return True
    if type(want) is str:
        return type(have) is tuple and len(have) == 1 and have[0] == want
    if type(have) is str:
        return len(want) == 1 and want[0] == have
    return len(want) == len(have) and set(want) == set(have)


def fingerprint(value: AttributeValue | None) -> int:
    """A 64-bit hash standing for a value: values same_value finds equal hash equal."""
    # Python's string hash is keyed per process (unless PYTHONHASHSEED pins it), so a
    # collision, at odds of about 2**-64 per comparison, could hide one change for one run.
    if not value:
        return ABSENT
    if type(value) is str:
        return hash(value)
    if len(value) == 1:
        return hash(value[0])
    # Order-insensitive and cheap: the values' own (keyed) hashes, summed, with the count.
    return hash((len(value), sum(map(hash, value))))


_STRUCTS: dict[int, struct.Struct] = {}


def _packer(count: int) -> struct.Struct:
    packer = _STRUCTS.get(count)
    if packer is None:
        packer = _STRUCTS[count] = struct.Struct(f"{count}q")
    return packer


_DIGEST = struct.Struct("q")


class StoredTarget:
    """A target object as the engine keeps it: compared attributes as packed fingerprints."""

    # `fingerprints` packs 8-byte integers: first a digest of the compared values exactly
    # as read (a desired object with identical values, the usual case, matches it at the
    # cost of one tuple hash), then one fingerprint per compared attribute in the order of
    # the template's updatable attributes (for everything else). Match-rule values are kept
    # lower-cased (shared with the match tables), references as anchors. Read objects are
    # mostly attribute strings nobody needs once they are compared.

    __slots__ = ("anchor", "dn", "enabled", "fingerprints", "object_type", "owner", "references",
                 "rule_values")

    def __init__(self, anchor: str, record: Record, compared: tuple[str, ...],
                 rule_values: tuple[AttributeValue | None, ...], owner: str | None) -> None:
        self.anchor = anchor  # equal to record.anchor, maybe another (shared) string
        self.owner = owner  # the source anchor it is joined to (join store), if any
        self.object_type = record.object_type
        self.dn = record.dn
        self.enabled = record.enabled
        values = tuple(map(record.attributes.get, compared))
        # fingerprint(), inlined: this runs per target object.
        self.fingerprints = _packer(len(compared) + 1).pack(hash(values), *[
            hash(value) if type(value) is str and value else ABSENT if not value
            else hash(value[0]) if len(value) == 1 else hash((len(value), sum(map(hash, value))))
            for value in values
        ])
        self.rule_values = rule_values
        references = record.references
        # Aligned with REFERENCE_ATTRIBUTES; None when the object references nothing.
        self.references: tuple[tuple[str, ...], ...] | None = (
            tuple([references.get(name, ()) for name in REFERENCE_ATTRIBUTES])
            if references else None
        )


# The attributes an UPDATE sets and their new values (None clears), in template order. For
# an attribute whose value differs: a WhenEmpty mapping leaves a target value alone, and no
# value clears only a value that is there; both comparisons below apply exactly that.
_Changed = tuple[list[str], list[AttributeValue | None]]


def _changed_exact(desired: Staged, current: Record, layout: Layout) -> _Changed:
    """What an UPDATE changes, comparing values."""
    wants, have_attrs = desired.values, current.attributes
    names: list[str] = []
    new_values: list[AttributeValue | None] = []
    for (attribute, only_when_empty), position in zip(layout.updatable, layout.compared,
                                                      strict=True):
        want, have = wants[position], have_attrs.get(attribute) or None
        if want == have or (want is not None and have is not None and same_value(want, have)):
            continue
        if (only_when_empty and have is not None) or (want is None and have is None):
            continue
        names.append(attribute)
        new_values.append(want)
    return names, new_values


def _changed_stored(desired: Staged, current: StoredTarget, layout: Layout) -> _Changed:
    """What an UPDATE changes, comparing fingerprints (see StoredTarget)."""
    values = desired.values
    compared = layout.compared_values(values)
    fingerprints = current.fingerprints
    names: list[str] = []
    new_values: list[AttributeValue | None] = []
    if fingerprints.startswith(_DIGEST.pack(hash(compared))):
        return names, new_values  # the values exactly as the target has them
    # fingerprint(), inlined (this runs per object); staged values are never "" nor ().
    wants = [
        hash(value) if type(value) is str else ABSENT if value is None
        else hash(value[0]) if len(value) == 1 else hash((len(value), sum(map(hash, value))))
        for value in compared
    ]
    haves = _packer(len(wants) + 1).unpack(fingerprints)[1:]
    for (attribute, only_when_empty), want, have, value in zip(layout.updatable, wants, haves,
                                                                compared, strict=True):
        if want == have:
            continue
        present = have != ABSENT
        if (only_when_empty and present) or (value is None and not present):
            continue
        names.append(attribute)
        new_values.append(value)
    return names, new_values


def diff_object(desired: Staged, current: Record | StoredTarget | None,
                template: CompiledTemplate, *, pair: str, source_anchor: str) -> list[Operation]:
    """CREATE when there is no current object, else UPDATE and/or MOVE; [] when in sync.

    The template's create/update switch for the object type is honoured.
    """
    object_type = desired.object_type
    switch = template.switch(object_type)
    if current is None:
        if not switch.create:
            return []
        names, values = desired.names, desired.values  # the layout's names: shared already
        if None in values:  # attributes whose mapping gave no value are left out
            kept = [(n, v) for n, v in zip(names, values, strict=True) if v is not None]
            names, values = shared_names(tuple(n for n, _ in kept)), tuple(v for _, v in kept)
        return [Operation(OpKind.CREATE, object_type, pair, source_anchor, None, desired.dn,
                          change_names=names, change_values=values, enabled=desired.enabled)]
    if not switch.update:
        return []
    layout = template.layout(object_type)
    changed, new_values = (_changed_stored(desired, current, layout)
                           if isinstance(current, StoredTarget)
                           else _changed_exact(desired, current, layout))
    ops: list[Operation] = []
    enabled = None
    # A target that does not report enabled (None) is not toggled on guesswork.
    if desired.enabled is not None and current.enabled is not None \
            and desired.enabled != current.enabled:
        enabled = desired.enabled
    if changed or enabled is not None:
        ops.append(Operation(OpKind.UPDATE, object_type, pair, source_anchor, current.anchor,
                             current.dn, change_names=shared_names(tuple(changed)),
                             change_values=tuple(new_values), enabled=enabled))
    # A desired DN without a container means the template places nothing (e.g. Entra ID).
    dn = desired.dn
    if dn != current.dn and "," in dn and not same_dn(dn, current.dn):
        ops.append(Operation(OpKind.MOVE, object_type, pair, source_anchor, current.anchor,
                             current.dn, new_dn=dn))
    return ops


class ReferenceResolver:
    """What the reference diff needs to know about the run's joins, once all are known."""

    __slots__ = ("created", "dropped", "held_back", "joined_targets", "joins", "new_joins",
                 "new_targets", "unsynced")

    def __init__(self, joins: Mapping[str, str], new_joins: Mapping[str, str],
                 dropped: Collection[str], created: Collection[str],
                 joined_targets: Collection[str], *, held_back: Collection[str] = (),
                 unsynced: Callable[[str], bool] = lambda _: True) -> None:
        # joins: source -> target anchor from the join store; new_joins: those matched this
        # run; dropped: the stored joins whose target object is gone (all of them); created:
        # source anchors whose target object this run creates; joined_targets: the target
        # anchors of the stored joins; held_back: target anchors whose deletion the delete
        # threshold held back; unsynced: whether a source object neither joined nor created
        # is in the pair's scope (synced later: deferred) rather than outside it.
        self.joins, self.new_joins, self.dropped = joins, new_joins, dropped
        self.created, self.joined_targets = created, joined_targets
        self.new_targets = set(new_joins.values())
        self.held_back, self.unsynced = held_back, unsynced

    def is_managed(self, target_anchor: str) -> bool:
        """True when the target object is joined to some source object (Ferry-managed)."""
        return target_anchor in self.joined_targets or target_anchor in self.new_targets

    def may_remove(self, target_anchor: str) -> bool:
        """True when a reference to the target object may be removed: Ferry manages it, and
        the delete threshold did not hold its deletion back."""
        return self.is_managed(target_anchor) and target_anchor not in self.held_back


# One object's references, kept until every join and create of the run is known:
# (source anchor, object type value, target anchor or None, DN for the operation, wanted
# source anchors and current target anchors, each aligned with REFERENCE_ATTRIBUTES, and
# whether the object has other operations this run). A plain tuple of plain values, because
# CPython's cyclic collector stops tracking those, while it walks every class instance on
# every full collection.
ReferenceRow = tuple[str, str, str | None, str, tuple[tuple[str, ...], ...],
                     tuple[tuple[str, ...], ...], bool]

NO_REFERENCES: tuple[tuple[str, ...], ...] = tuple(() for _ in REFERENCE_ATTRIBUTES)
_TYPES = {object_type.value: object_type for object_type in ObjectType}


def aligned_references(references: Mapping[str, tuple[str, ...]]) -> tuple[tuple[str, ...], ...]:
    """A record's references aligned with REFERENCE_ATTRIBUTES."""
    # The records' own tuples are kept, not copies.
    return tuple([references.get(name, ()) for name in REFERENCE_ATTRIBUTES])


def reference_row(source_anchor: str, object_type: ObjectType, target_anchor: str | None,
                  dn: str, wants: tuple[tuple[str, ...], ...],
                  haves: tuple[tuple[str, ...], ...] | None, changed: bool) -> ReferenceRow:
    """wants, haves: the desired and the target's references, aligned with
    REFERENCE_ATTRIBUTES (see aligned_references); haves None: none."""
    return (source_anchor, object_type.value, target_anchor, dn, wants,
            NO_REFERENCES if haves is None else haves, changed)


def reference_row_type(row: ReferenceRow) -> ObjectType:
    return _TYPES[row[1]]


def diff_reference_row(row: ReferenceRow, resolver: ReferenceResolver, *,
                       pair: str) -> tuple[list[Operation], bool, list[tuple[str, str]]]:
    """REFERENCES operations for one row (add: source anchors, remove: target anchors),
    whether a reference waits for its object to be synced (deferred), and the (attribute,
    source anchor) of references to objects outside the pair's scope. Target-native
    references stay, and so do references to objects whose deletion was held back."""
    source_anchor, type_value, target_anchor, dn, wants, haves, _ = row
    ops: list[Operation] = []
    deferred = False
    outside: list[tuple[str, str]] = []
    # A reference resolves through the joins this run makes, then the stored ones (unless
    # dropped); spelled out here because this runs once per reference.
    new_joins, joins = resolver.new_joins, resolver.joins
    dropped, created = resolver.dropped, resolver.created
    for attribute, want, have in zip(REFERENCE_ATTRIBUTES, wants, haves, strict=True):
        if not want and not have:
            continue
        current = set(have) if len(have) > 8 else have  # a tuple is quicker to scan when short
        add: list[str] = []
        keep: set[str] = set()
        for source_ref in want:
            target_ref = new_joins.get(source_ref)
            if target_ref is None:
                target_ref = joins.get(source_ref)
                if target_ref is not None and source_ref in dropped:
                    target_ref = None
            if target_ref is not None:
                keep.add(target_ref)
                if target_ref not in current:
                    add.append(source_ref)
            elif source_ref in created:
                add.append(source_ref)
            elif resolver.unsynced(source_ref):
                deferred = True  # not synced yet: retried on a later run
            else:
                outside.append((attribute, source_ref))  # never synced: nothing to retry
        remove = tuple([t for t in have if t not in keep and resolver.may_remove(t)]) \
            if have else ()
        if add or remove:
            ops.append(Operation(OpKind.REFERENCES, _TYPES[type_value], pair, source_anchor,
                                 target_anchor, dn, attribute=attribute, add=tuple(add),
                                 remove=remove))
    return ops, deferred, outside
