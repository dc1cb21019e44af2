"""One source object through one pair, step by step (`ferry trace`): pure, no I/O.

The operation comes from plan_pair itself, given this source and the target objects the
trace read for it, so a trace and a run cannot disagree; the steps around it (scope, join,
each match rule's candidates, where each staged value came from, the diff) explain it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ferry.engine.expressions import CompiledTemplate, ExpressionError
from ferry.engine.match import guest_source_keys
from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import Conflict, Operation, OpKind, PairPlan, StagingError
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.engine.rules import PairRules
from ferry.engine.scope import PairScope
from ferry.engine.stage import stage
from ferry_agent.dn import DNError, parent_dn, parse_dn


class KeyKind(StrEnum):
    """What an OBJECT given to `ferry trace` may be."""

    DN = "dn"
    GUID = "guid"
    UPN = "userPrincipalName"
    MAIL = "mail"
    ACCOUNT = "sAMAccountName"


_GUID = re.compile(r"\{?[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?")


def key_kinds(key: str) -> tuple[KeyKind, ...]:
    """The kinds of key `key` can be, each to be looked up."""
    if _GUID.fullmatch(key):
        return (KeyKind.GUID,)
    if "=" in key:
        try:
            if parse_dn(key).key:
                return (KeyKind.DN,)
        except DNError:
            pass
    if "@" in key:
        return (KeyKind.UPN, KeyKind.MAIL)
    return (KeyKind.ACCOUNT,)


def guid_value(key: str) -> str:
    return key.strip("{}").lower()


# Attribute names whose values are never shown (a template may map one).
_SECRET = re.compile(r"pwd|password|secret", re.IGNORECASE)
SECRET_SHOWN = "<secret, not shown>"


def is_secret(attribute: str) -> bool:
    return bool(_SECRET.search(attribute))


@dataclass(frozen=True, slots=True)
class TargetCandidate:
    anchor: str
    dn: str
    joined_to: str | None   # the source anchor it is joined to, if any


@dataclass(frozen=True, slots=True)
class RuleStep:
    """One match rule as tried for the source: its values and the targets having them."""

    rule: str
    values: tuple[str, ...]
    candidates: tuple[TargetCandidate, ...]
    note: str


@dataclass(frozen=True, slots=True)
class StagedAttribute:
    name: str
    value: AttributeValue | None
    produced_by: str          # the mapping's origin and expression
    domain_mapped_from: AttributeValue | None = None


@dataclass(frozen=True, slots=True)
class AttributeDiff:
    name: str
    current: AttributeValue | None
    staged: AttributeValue | None


@dataclass
class PairTrace:
    """What a run would do with one source object in one pair, and why."""

    pair: str
    source: Record
    scope_reason: str | None = None
    join: str = ""                       # how the stored join stands, "" when there is none
    rules: list[RuleStep] = field(default_factory=list)
    staged: list[StagedAttribute] = field(default_factory=list)
    staged_dn: str = ""
    enabled: bool | None = None
    diff: list[AttributeDiff] = field(default_factory=list)
    plan: PairPlan | None = None         # the plan for this object only (what --apply applies)

    @property
    def operations(self) -> list[Operation]:
        return self.plan.operations if self.plan else []

    @property
    def conflicts(self) -> list[Conflict]:
        return self.plan.conflicts if self.plan else []

    @property
    def errors(self) -> list[StagingError]:
        return self.plan.errors if self.plan else []

    @property
    def decision(self) -> str:
        """The outcome in a few words."""
        if self.errors:
            return "error: nothing is written"
        if self.conflicts:
            return "conflict: nothing is written"
        kinds = list(dict.fromkeys(op.kind.value for op in self.operations))
        if kinds:
            return " + ".join(kinds)
        if self.scope_reason is not None:
            return "out of scope: nothing to do"
        if self.plan is not None and self.plan.new_joins:
            return "join only: in sync"
        return "nothing to do: in sync"


def trace_pair(rules: PairRules, template: CompiledTemplate, source: Record,
               targets: Iterable[Record], joins: Mapping[str, str], *,
               pending_creates: Mapping[str, str] | None = None,
               peers: Iterable[Record] = ()) -> PairTrace:
    """Trace source through the pair; targets: what the trace read of the target (the joined
    object, each rule's candidates, what a create would collide with); joins: the stored
    joins of source and of those targets; peers: other source objects with the source's
    rule values (a value two sources share is a conflict), planned too but not shown."""
    targets = list(targets)
    trace = PairTrace(rules.name, source)
    pending = {k: v for k, v in (pending_creates or {}).items() if k == source.anchor}
    by_anchor = {t.anchor: t for t in targets}
    owners = {t: s for s, t in joins.items()}
    try:
        trace.scope_reason = PairScope(rules).out_of_scope(source)
    except ExpressionError:
        trace.scope_reason = None  # the plan reports it as the object's error
    joined = joins.get(source.anchor)
    if joined is not None:
        current = by_anchor.get(joined)
        trace.join = (f"joined to {current.dn} ({joined})" if current is not None else
                      f"joined to {joined}, which is gone from the target: the join is"
                      " forgotten and the object matched again")
    elif source.anchor in pending:
        trace.join = (f"a create at {pending[source.anchor]} was begun and not confirmed:"
                      " the object there is taken as its own")
    sources = [source, *(p for p in peers if p.anchor != source.anchor)]
    plan = plan_pair(rules, sources, targets, joins, pending_creates=pending, full=False,
                     compiled=template)
    trace.plan = _only(plan, source.anchor)
    if trace.scope_reason is None and (joined is None or joined not in by_anchor):
        trace.rules = _rule_steps(rules, source, targets, owners)
    if trace.scope_reason is None and not trace.errors:
        _explain_staging(trace, template, source)
        target_anchor = trace.plan.new_joins.get(source.anchor) or joined
        current = by_anchor.get(target_anchor or "")
        trace.diff = _diff(trace.operations, current)
    return trace


def _only(plan: PairPlan, anchor: str) -> PairPlan:
    """The plan's part for one source object."""
    only = PairPlan(plan.pair)
    only.operations = [op for op in plan.operations if op.source_anchor == anchor]
    only.conflicts = [c for c in plan.conflicts if c.source_anchor == anchor]
    only.errors = [e for e in plan.errors if e.source_anchor == anchor]
    only.new_joins = {s: t for s, t in plan.new_joins.items() if s == anchor}
    only.dropped_joins = [s for s in plan.dropped_joins if s == anchor]
    only.deferred = [s for s in plan.deferred if s == anchor]
    only.out_of_scope = [r for r in plan.out_of_scope if r.source_anchor == anchor]
    only.threshold_hit, only.threshold_message = plan.threshold_hit, plan.threshold_message
    return only


def _folded(value: AttributeValue | None) -> tuple[str, ...]:
    if not value:
        return ()
    items = (value,) if isinstance(value, str) else value
    return tuple(dict.fromkeys(v.lower() for v in items if v))


def _rule_steps(rules: PairRules, source: Record, targets: list[Record],
                owners: Mapping[str, str]) -> list[RuleStep]:
    """Each match rule in order, with the targets of the source's type having its values."""
    steps: list[RuleStep] = []
    decided = False
    domains = frozenset(m.source_domain.lower() for m in rules.staging.domain_mappings)
    for rule in rules.match_rules:
        label = (f"{rule.source_attribute} -> {rule.target_attribute}"
                 f"{' (guest)' if rule.guest else ''}")
        values = _folded(source.attributes.get(rule.source_attribute))
        wanted = guest_source_keys(values, domains) if rule.guest else values
        if decided:
            steps.append(RuleStep(label, values, (), "not tried: an earlier rule decided"))
            continue
        if not wanted:
            steps.append(RuleStep(label, values, (), "no value: the next rule decides"))
            continue
        hits = tuple(
            TargetCandidate(t.anchor, t.dn, owners.get(t.anchor)) for t in targets
            if t.object_type is source.object_type and t.object_type in rules.object_types
            and _has(t, rule.target_attribute, wanted, rule.guest))
        if not hits:
            note = "no candidate: the next rule decides"
        elif len(hits) > 1:
            note, decided = f"{len(hits)} candidates: ambiguous, nothing is written", True
        elif hits[0].joined_to is not None and hits[0].joined_to != source.anchor:
            note, decided = f"one candidate, already joined to {hits[0].joined_to}", True
        else:
            note, decided = "one candidate: this rule decides", True
        steps.append(RuleStep(label, values, hits, note))
    return steps


def _has(target: Record, attribute: str, wanted: tuple[str, ...], guest: bool) -> bool:
    have = _folded(target.attributes.get(attribute))
    if guest:
        have = tuple(h.rpartition("@")[0] for h in have if "#ext#@" in h)
    return any(value in have for value in wanted)


def _explain_staging(trace: PairTrace, template: CompiledTemplate, source: Record) -> None:
    """Each staged attribute with the mapping that produced it (and a domain mapping's part)."""
    object_type: ObjectType = source.object_type
    desired = stage(source, template)
    layout = template.layout(object_type)
    origins: dict[str, str] = {}
    for mapping in template.staging.mappings:
        if not mapping.object_types or object_type in mapping.object_types:
            origins.setdefault(mapping.target_attribute,
                               f"{mapping.origin or 'mapping'}: {mapping.expression}"
                               f" ({mapping.apply.value})")
    raw: list[AttributeValue | None] = [source.attributes.get(k) or None for k in layout.copies]
    raw.extend(expression.evaluate(source) for expression in layout.computed)
    for position, name in enumerate(layout.names):
        value = desired.values[position]
        before = raw[position] if position in layout.domain and raw[position] != value else None
        trace.staged.append(StagedAttribute(name, value, origins.get(name, "mapping"),
                                            before))
    trace.staged_dn = desired.dn
    trace.enabled = desired.enabled
    if template.staging.containers:
        ou = template.target_ou(parent_dn(source.dn)) if template.has_ou_mappings \
            else template.staging.default_target_ou
        trace.staged.append(StagedAttribute(
            "(dn)", desired.dn, f"built-in: RDN from {template.staging.rdn_attribute}, below"
            f" {ou or 'the source parent'} (Template targetOU)"))


def _diff(operations: list[Operation], current: Record | None) -> list[AttributeDiff]:
    diffs: list[AttributeDiff] = []
    for op in operations:
        if op.kind in (OpKind.CREATE, OpKind.UPDATE):
            for name, value in zip(op.change_names, op.change_values, strict=True):
                have = current.attributes.get(name) if current is not None else None
                diffs.append(AttributeDiff(name, have, value))
            if op.enabled is not None and current is not None:
                diffs.append(AttributeDiff("(enabled)", str(current.enabled),
                                           str(op.enabled)))
        elif op.kind is OpKind.MOVE:
            diffs.append(AttributeDiff("(dn)", op.dn, op.new_dn))
    return diffs
