"""What a changed-objects-only run reads of a target: its own delta, then by anchor and by
match value only the objects the run's changes touch, instead of the whole target."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

import structlog

from ferry.api.environment import DirectoryType
from ferry.connectors.base import Connector, ReadResult
from ferry.engine.expressions import compile_template
from ferry.engine.records import AttributeValue, Record
from ferry.engine.stage import stage
from ferry.errors import FerryError
from ferry.state.store import StateStore
from ferry.sync.pairs import PairSettings
from ferry.sync.reading import EnvironmentNeeds
from ferry_agent.dn import rdn_value

log = structlog.get_logger("ferry.run")

_BY_DN = {DirectoryType.ACTIVE_DIRECTORY: "distinguishedName",
          DirectoryType.ENTRA_ID: "userPrincipalName"}


def target_watermark_key(workflow: str) -> str:
    """Where a target's own delta watermark is kept: beside the workflow's source ones, under
    a name no workflow can have (`#`), so resetting an environment resets both."""
    return f"{workflow}#target"


@dataclass
class TargetView:
    """A target as one run sees it: in full, or only the part its changes touch."""

    result: ReadResult          # full=False: a partial view (the engine deletes nothing unseen)
    reason: str                 # why it was read in full ("" when partial)
    delta_objects: int = 0      # objects the target's own delta returned
    stand_ins: int = 0          # bare records for managed targets known to exist, not read


def full_target_reason(store: StateStore, workflow: str, env: str, needs: EnvironmentNeeds,
                       pairs: list[PairSettings], source_reads: dict[str, ReadResult],
                       changed_only: bool) -> str:
    """Why this target must be read in full this run; "" when a partial view will do."""
    if not changed_only:
        return "full run"
    if needs.as_source:
        return "the environment is also a source of this workflow"
    mine = [p for p in pairs if p.target == env]
    if any(source_reads[p.source].full for p in mine):
        return "a source was read in full"
    if any(rule.guest for p in mine for rule in p.rules.match_rules):
        return "guest match rules compare forms no equality lookup finds"
    if store.watermarks.get(target_watermark_key(workflow), env) is None:
        return "no target watermark stored yet (first changed run, or a store from before)"
    return ""


def read_target_view(connector: Connector, target_type: DirectoryType, needs: EnvironmentNeeds,
                     store: StateStore, workflow: str, pairs: list[PairSettings],
                     sources: dict[str, Connector], source_reads: dict[str, ReadResult],
                     source_needs: dict[str, EnvironmentNeeds], reason: str) -> TargetView:
    """The target in full when `reason` says so (or its delta is refused), else its delta
    plus, read back by anchor or by value, what the run's changed sources touch.

    Source objects whose joined target changed (someone else edited it) are read by anchor
    and added to their source read, so the run corrects them."""
    if reason:
        return TargetView(_full(connector, needs), reason)
    watermark = store.watermarks.get(target_watermark_key(workflow), connector.name)
    try:
        delta = connector.read(needs.object_types, needs.attributes, watermark,
                               missing_scope_ok=True)
    except FerryError as exc:   # e.g. the DC's invocation id changed: its USNs mean nothing
        why = f"target watermark refused ({exc})"
        log.warning("read.target_full", environment=connector.name, reason=why)
        return TargetView(_full(connector, needs), why)
    if delta.full:
        return TargetView(delta, "the target answered its delta with a full read")
    changed_targets = {*(r.anchor for r in delta.records), *delta.deleted}
    view: dict[str, Record] = {}
    if target_type is DirectoryType.ACTIVE_DIRECTORY:
        view = {r.anchor: r for r in delta.records}   # AD's deltas read changed objects whole
    # Graph's delta carries only the changed properties: its objects are read back whole
    # below, when the plan needs them (joined ones; new ones only as match candidates).
    direct: set[str] = set()
    referenced: set[str] = set()
    mine = [p for p in pairs if p.target == connector.name]
    for pair in mine:
        joined, named = _pair_wants(pair, target_type, connector, store, changed_targets,
                                    sources[pair.source], source_reads[pair.source], needs,
                                    source_needs[pair.source].attributes, view)
        direct |= joined
        referenced |= named
    _read_back(connector, needs, view, direct)
    # Referenced targets (a changed group's members): the plan only needs to know a managed
    # one exists. Those a read target already references exist (the connector resolved them
    # with it) and stand in as bare records; only the others are read back, by anchor. The
    # current managed members of read targets stand in too: the plan removes a managed
    # member, and keeps one it does not know.
    types = {t: object_type for p in mine for object_type in p.rules.object_types
             for t in store.joins.confirmed(p.rules.name, object_type.value).values()}
    current = {ref for record in view.values() for refs in record.references.values()
               for ref in refs}
    _read_back(connector, needs, view, {t for t in referenced - current if t in types})
    stand_ins = 0
    for anchor in (current | referenced) - view.keys():
        if anchor in types:
            view[anchor] = Record(anchor, types[anchor], "")
            stand_ins += 1
    records = [r for r in view.values() if r.object_type in needs.object_types]
    return TargetView(ReadResult(records, [], delta.watermark, full=False), "",
                      delta_objects=len(delta.records) + len(delta.deleted),
                      stand_ins=stand_ins)


def _read_back(connector: Connector, needs: EnvironmentNeeds, view: dict[str, Record],
               anchors: set[str]) -> None:
    missing = anchors - view.keys()
    if missing:
        for record in connector.read_anchors(missing, needs.attributes):
            view.setdefault(record.anchor, record)


def view_joins(joins: dict[str, str], targets: Iterable[Record], sources: Iterable[str],
               deleted: Iterable[str]) -> dict[str, str]:
    """The stored joins a plan over a partial target view may see: those of the targets in
    the view and of the sources planned. The engine takes a joined target it was not given
    for one that is gone and forgets its join; the others' targets were simply not read."""
    seen = {r.anchor for r in targets}
    planned = {*sources, *deleted}
    return {s: t for s, t in joins.items() if t in seen or s in planned}


def _full(connector: Connector, needs: EnvironmentNeeds) -> ReadResult:
    return connector.read(needs.object_types, needs.attributes, None, missing_scope_ok=True)


def _pair_wants(pair: PairSettings, target_type: DirectoryType, target: Connector,
                store: StateStore, changed_targets: set[str], source: Connector,
                source_read: ReadResult, needs: EnvironmentNeeds,
                source_attributes: Collection[str], view: dict[str, Record]
                ) -> tuple[set[str], set[str]]:
    """Target anchors the pair's plan needs whole (the planned sources' joined targets) and
    those their references name; match candidates found by value go straight into `view`."""
    rules = pair.rules
    joins = store.joins.confirmed(rules.name)
    owners = {t: s for s, t in joins.items()}
    have = {r.anchor for r in source_read.records}
    # A joined target someone else changed: plan its source again, read by anchor.
    again = [owners[t] for t in changed_targets if t in owners and owners[t] not in have]
    if again:
        source_read.records.extend(source.read_anchors(again, source_attributes))
    records = [r for r in source_read.records if r.object_type in rules.object_types]
    wanted = {joins[a] for a in source_read.deleted if a in joins}
    named: set[str] = set()
    for record in records:
        joined = joins.get(record.anchor)
        if joined is not None:
            wanted.add(joined)
        for refs in record.references.values():
            named.update(joins[r] for r in refs if r in joins)
    # Unjoined changed sources need their match candidates, found by equality on each rule's
    # values (and on the values a create would stage, which would collide), not a full read.
    template = compile_template(rules.staging)
    pending = store.joins.pending(rules.name)
    by_value: dict[str, set[str]] = {}
    by_dn: set[str] = set()
    for record in records:
        if record.anchor in joins:
            continue
        if record.anchor in pending:
            dn = pending[record.anchor]
            by_dn.add(dn if target_type is DirectoryType.ACTIVE_DIRECTORY else rdn_value(dn))
        for rule in rules.match_rules:
            by_value.setdefault(rule.target_attribute, set()).update(
                _values(record.attributes.get(rule.source_attribute)))
        try:
            desired = stage(record, template)
        except FerryError:
            continue   # the plan reports the staging error
        for rule in rules.match_rules:
            by_value.setdefault(rule.target_attribute, set()).update(
                _values(desired.get(rule.target_attribute)))
        if target_type is DirectoryType.ACTIVE_DIRECTORY:
            by_dn.add(desired.dn)   # a create where an object already is
    by_value.setdefault(_BY_DN[target_type], set()).update(by_dn)
    for attribute, values in by_value.items():
        if values:
            for found in target.find(attribute, sorted(values), rules.object_types,
                                     needs.attributes):
                view.setdefault(found.anchor, found)
    # A candidate joined to another source: that source's own references stay unread, but
    # the engine only needs to know the candidate is taken (the joins say so).
    return wanted, named


def _values(value: AttributeValue | None) -> Iterable[str]:
    return [value] if isinstance(value, str) else list(value or ())


