"""Read every environment a workflow touches, once, with exactly the attributes it needs."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from ferry.connectors.base import Connector, ReadResult
from ferry.engine.migration import OBJECT_SID, SAM_ACCOUNT_NAME, SID_HISTORY
from ferry.engine.records import ObjectType, Record
from ferry.state.store import StateStore
from ferry.sync.pairs import PairSettings

_SOURCE_REFERENCE = re.compile(r"\bsource\.([A-Za-z][A-Za-z0-9-]*)")


@dataclass
class EnvironmentNeeds:
    """What one environment must deliver for a run: types, attributes, and in which role."""

    object_types: set[ObjectType] = field(default_factory=set)
    attributes: set[str] = field(default_factory=set)
    as_source: bool = False
    as_target: bool = False


def environment_needs(pairs: Iterable[PairSettings]) -> dict[str, EnvironmentNeeds]:
    needs: dict[str, EnvironmentNeeds] = {}
    for pair in pairs:
        rules = pair.rules
        source = needs.setdefault(pair.source, EnvironmentNeeds())
        target = needs.setdefault(pair.target, EnvironmentNeeds())
        source.as_source = target.as_target = True
        source.object_types |= rules.object_types
        target.object_types |= rules.object_types
        expressions = [m.expression for m in rules.staging.mappings]
        if rules.source_filter:
            expressions.append(rules.source_filter)
        for expression in expressions:
            source.attributes.update(_SOURCE_REFERENCE.findall(expression))
        source.attributes.update(r.source_attribute for r in rules.match_rules)
        target.attributes.update(r.target_attribute for r in rules.match_rules)
        target.attributes.update(m.target_attribute for m in rules.staging.mappings)
        for attr in rules.staging.domain_mapped_attributes:
            source.attributes.add(attr)
            target.attributes.add(attr)
        if pair.sid_translation:
            source.attributes.add(OBJECT_SID)
            target.attributes.add(OBJECT_SID)
        if pair.sid_history:
            source.attributes.update((OBJECT_SID, SAM_ACCOUNT_NAME))
            target.attributes.add(SID_HISTORY)
    return needs


@dataclass
class EnvironmentRead:
    result: ReadResult

    @cached_property
    def by_anchor(self) -> dict[str, Record]:
        """Records by anchor; only targets need it, so it is built on first use."""
        return {r.anchor: r for r in self.result.records}


def read_environment(
    connector: Connector,
    needs: EnvironmentNeeds,
    store: StateStore,
    workflow: str,
    *,
    changed_only: bool,
    retry_anchors: set[str],
) -> EnvironmentRead:
    """Delta read when allowed and a watermark exists; a full read otherwise.

    A target must be read in full: matching and diffing compare against all of it.
    """
    watermark = None
    if changed_only and not needs.as_target:
        watermark = store.watermarks.get(workflow, connector.name)
    result = connector.read(needs.object_types, needs.attributes, watermark,
                            missing_scope_ok=needs.as_target)
    if not result.full and retry_anchors:
        have = {r.anchor for r in result.records}
        missing = retry_anchors - have
        if missing:
            result.records.extend(connector.read_anchors(missing, needs.attributes))
    return EnvironmentRead(result)
