"""The engine's single entry point: plan one source -> target pair (match, stage, diff, delete)."""

# Pure: records in, a PairPlan out. Sources are consumed once, as they come; targets are
# indexed once; per source only what the plan needs is kept.

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from ferry.engine.delete import SOURCE_ABSENT, SOURCE_DELETED, DeleteCandidate, plan_deletes
from ferry.engine.diff import (
    NO_REFERENCES,
    ReferenceResolver,
    ReferenceRow,
    StoredTarget,
    aligned_references,
    diff_object,
    diff_reference_row,
    reference_row,
    reference_row_type,
)
from ferry.engine.expressions import CompiledTemplate, ExpressionError, compile_template
from ferry.engine.match import Candidate, Matcher, TargetIndex
from ferry.engine.plan import Count, Operation, OpKind, OutOfScope, PairPlan, StagingError
from ferry.engine.records import REFERENCE_ATTRIBUTES, ObjectType, Record
from ferry.engine.rules import PairRules
from ferry.engine.scope import PairScope
from ferry.engine.stage import stage

_NONE: Mapping[str, str] = MappingProxyType({})

class _Run:
    """State of one plan_pair call."""

    __slots__ = ("candidate_ops", "deletes", "dropped", "full", "index", "joins", "matcher",
                 "operations", "outside", "pending", "plan", "references", "rules", "scope",
                 "template", "unseen", "unsettled")

    def __init__(self, rules: PairRules, template: CompiledTemplate, targets: Iterable[Record],
                 joins: Mapping[str, str], pending_creates: Mapping[str, str], full: bool) -> None:
        self.rules, self.template, self.joins, self.full = rules, template, joins, full
        self.pending = pending_creates
        self.scope = PairScope(rules)
        compared = {object_type: template.compared(object_type) for object_type in ObjectType}
        self.index = TargetIndex(rules, targets, joins, pending_creates, compared)
        self.matcher = Matcher(rules, self.index)
        self.plan = PairPlan(rules.name)
        self.operations: list[Operation] = []
        self.references: list[ReferenceRow] = []
        # Operations of all candidates, in candidate order (see Candidate.operation_count).
        self.candidate_ops: list[Operation] = []
        self.deletes: list[DeleteCandidate] = []
        self.unseen = set(joins)  # joined sources not read (yet)
        self.dropped: set[str] = set()
        # Sources read this run and in scope that end with neither a join nor a create
        # (conflicts, errors, creates switched off): references to them are deferred.
        self.unsettled: set[str] = set()
        # Delta runs only: sources read this run that are out of scope (a full run needs no
        # list: what it did not see in scope is out of scope).
        self.outside: set[str] = set()

    def _error(self, source: Record, error: ExpressionError) -> StagingError:
        return StagingError(self.rules.name, source.anchor, source.dn, source.object_type,
                            f"{source.dn}: {error}")

    def _drop(self, source_anchor: str) -> None:
        if source_anchor not in self.dropped:
            self.dropped.add(source_anchor)
            self.plan.dropped_joins.append(source_anchor)

    def add(self, source: Record) -> None:
        """Plan one source object."""
        anchor = source.anchor
        target_anchor = self.joins.get(anchor)
        if target_anchor is not None:
            self.unseen.discard(anchor)
        try:
            reason = self.scope.out_of_scope(source)
        except ExpressionError as error:
            self.plan.errors.append(self._error(source, error))
            self.unsettled.add(anchor)
            return
        index = self.index
        if reason is not None:
            if not self.full:
                self.outside.add(anchor)
            if target_anchor is not None:
                target = index.by_anchor.get(target_anchor)
                if target is None:
                    self._drop(anchor)
                else:
                    self.deletes.append(DeleteCandidate(anchor, target, reason))
            return
        if target_anchor is not None:
            stored = index.by_anchor.get(target_anchor)
            if stored is not None:
                self._sync_joined(source, stored)
                return
            # The joined target vanished: forget the join and match or create again.
            self._drop(anchor)
        self._match(source)

    def _sync_joined(self, source: Record, target: StoredTarget) -> None:
        try:
            desired = stage(source, self.template, target.anchor)
        except ExpressionError as error:
            self.matcher.note_joined(source, target, None)
            self.plan.errors.append(self._error(source, error))
            return
        self.matcher.note_joined(source, target, desired)
        ops = diff_object(desired, target, self.template, pair=self.rules.name,
                          source_anchor=source.anchor)
        if ops:
            self.operations.extend(ops)
        if (source.references or target.references) \
                and self.template.switch(source.object_type).update \
                and not self._references_in_sync(source.references, target.references):
            self.references.append(reference_row(
                source.anchor, source.object_type, target.anchor, _dn_after(ops, target.dn),
                aligned_references(source.references), target.references, bool(ops)))
            return
        if not ops:
            self.plan.unchanged[source.object_type] += 1

    def _references_in_sync(self, desired: Mapping[str, tuple[str, ...]],
                            current: tuple[tuple[str, ...], ...] | None) -> bool:
        """True when every reference maps through existing joins to exactly the current ones."""
        # Existing joins do not change during a run, so this answer is final; anything else is
        # settled once the run's new joins and creates are known.
        joins, by_anchor = self.joins, self.index.by_anchor
        for position, attribute in enumerate(REFERENCE_ATTRIBUTES):
            want = desired.get(attribute, ())
            have = () if current is None else current[position]
            if len(want) != len(have):
                return False
            if not want:
                continue
            if len(want) == 1:  # one reference (a manager, say): no sets needed
                target_ref = joins.get(want[0])
                if target_ref is None or target_ref != have[0] or target_ref not in by_anchor:
                    return False
                continue
            mapped: set[str] = set()
            for source_ref in want:
                target_ref = joins.get(source_ref)
                if target_ref is None or target_ref not in by_anchor:
                    return False
                mapped.add(target_ref)
            if mapped != set(have):
                return False
        return True

    def _match(self, source: Record) -> None:
        candidate = self.matcher.match(source, self.pending.get(source.anchor))
        if candidate.conflict is not None:
            return
        target = None if candidate.target is None else self.index.by_anchor[candidate.target]
        try:
            desired = stage(source, self.template, target.anchor if target is not None else "")
        except ExpressionError as error:
            candidate.error = self._error(source, error)
            return
        if target is None:
            self.matcher.check_create(candidate, desired)
            if candidate.conflict is not None:
                return
        ops = diff_object(desired, target, self.template, pair=self.rules.name,
                          source_anchor=source.anchor)
        self.candidate_ops.extend(ops)
        candidate.operation_count = len(ops)
        if desired.references:
            # The reference row is made in finish, from the candidate and its operations:
            # until then a million candidates would each hold one.
            candidate.references = aligned_references(desired.references)

    def _candidate_row(self, candidate: Candidate, ops: list[Operation]) -> ReferenceRow | None:
        """The reference work of a settled candidate whose operations are ops, if any."""
        wants = candidate.references
        if candidate.target is None:  # a create: ops is the CREATE, or nothing
            return (reference_row(candidate.source_anchor, candidate.object_type, None,
                                  ops[0].dn, wants, None, True)
                    if ops and wants is not None else None)
        target = self.index.by_anchor[candidate.target]
        if (wants is not None or target.references) \
                and self.template.switch(candidate.object_type).update:
            return reference_row(candidate.source_anchor, candidate.object_type, target.anchor,
                                 _dn_after(ops, target.dn), wants or NO_REFERENCES,
                                 target.references, bool(ops))
        return None

    def finish(self, deleted_sources: Iterable[str]) -> PairPlan:
        """Settle conflicts, deletions and references; return the plan."""
        plan, joins, by_anchor = self.plan, self.joins, self.index.by_anchor
        self.matcher.resolve()
        # Matching is over: free its tables before the plan grows to its full size.
        self.index.clear_match_tables()
        self.matcher.clear_tables()
        matched_ops: list[Operation] = []
        created: set[str] = set()
        end = 0
        for candidate in self.matcher.candidates:
            first = end
            end += candidate.operation_count
            if candidate.conflict is not None:
                plan.conflicts.append(candidate.conflict)
                self.unsettled.add(candidate.source_anchor)
                continue
            if candidate.error is not None:
                plan.errors.append(candidate.error)
                self.unsettled.add(candidate.source_anchor)
                continue
            ops = self.candidate_ops[first:end]
            if candidate.target is not None:
                plan.new_joins[candidate.source_anchor] = candidate.target
                plan.matched_by[candidate.source_anchor] = candidate.rule
            elif ops:
                created.add(candidate.source_anchor)
            else:
                self.unsettled.add(candidate.source_anchor)
            matched_ops.extend(ops)
            row = self._candidate_row(candidate, ops)
            if row is not None:
                self.references.append(row)
            elif not ops and candidate.target is not None:
                plan.unchanged[candidate.object_type] += 1
        self.matcher.candidates.clear()
        self.candidate_ops = []

        # Joins whose target object is gone: forget them (a source read this run was already
        # matched or created again above; others are on the next full run).
        vanished = self.index.vanished
        if vanished:
            for source_anchor, target_anchor in joins.items():
                if target_anchor in vanished:
                    self._drop(source_anchor)

        deleted = [anchor for anchor in deleted_sources if anchor in self.unseen]
        for anchor in deleted:
            target = by_anchor.get(joins[anchor])
            if target is not None:
                self.deletes.append(DeleteCandidate(anchor, target, SOURCE_DELETED))
        if self.full and self.unseen:  # a full read usually sees every joined source
            already = set(deleted)
            for anchor, target_anchor in joins.items():
                if anchor in self.unseen and anchor not in already:
                    target = by_anchor.get(target_anchor)
                    if target is not None:
                        self.deletes.append(DeleteCandidate(anchor, target, SOURCE_ABSENT))
        self.unseen.clear()
        deletes = plan_deletes(self.rules, self.template, self.deletes)
        plan.threshold_hit = deletes.threshold_hit
        plan.threshold_message = deletes.threshold_message
        # Every diff and delete is planned: free the stored targets (operations keep the DNs
        # they need) before the reference operations are made.
        self.deletes.clear()
        by_anchor.clear()

        resolver = ReferenceResolver(joins, plan.new_joins, self.dropped, created,
                                     set(joins.values()), held_back=deletes.held_back,
                                     unsynced=self._unsynced)
        reference_ops: list[Operation] = []
        works, self.references = self.references, []
        for work in works:
            ops, deferred, outside = diff_reference_row(work, resolver, pair=self.rules.name)
            reference_ops.extend(ops)
            if outside:
                object_type = reference_row_type(work)
                plan.out_of_scope.extend(
                    OutOfScope(self.rules.name, work[0], object_type, work[3], attribute, ref)
                    for attribute, ref in outside)
            if deferred:
                plan.deferred.append(work[0])
                plan.deferred_counts[reference_row_type(work)] += 1
            elif not ops and not work[6]:  # no other operation either
                plan.unchanged[reference_row_type(work)] += 1

        self.operations.extend(matched_ops)
        self.operations.extend(deletes.operations)
        self.operations.extend(reference_ops)
        plan.operations = self.operations
        return plan

    def _unsynced(self, source_anchor: str) -> bool:
        """Whether a source object that is neither joined nor created this run is in the
        pair's scope, so that references to it wait for it (deferred), or outside it."""
        if source_anchor in self.unsettled:
            return True
        if self.full or source_anchor in self.outside:
            return False  # a full read sees every object of the scope
        # A delta run reads changed and retried objects only; an unjoined object in scope
        # is one of those, unless its join was lost, its create is pending, or the template
        # does not create every type the pair covers.
        return (source_anchor in self.dropped or source_anchor in self.pending
                or not all(self.template.switch(t).create for t in self.rules.object_types))


def _dn_after(ops: list[Operation], dn: str) -> str:
    """The object's DN once ops are applied (references are applied after moves)."""
    for op in ops:
        if op.kind is OpKind.MOVE and op.new_dn is not None:
            return op.new_dn
    return dn


def plan_pair(
    rules: PairRules,
    sources: Iterable[Record],
    targets: Iterable[Record],
    joins: Mapping[str, str],
    *,
    pending_creates: Mapping[str, str] = _NONE,
    deleted_sources: Iterable[str] = (),
    full: bool = True,
    compiled: CompiledTemplate | None = None,
) -> PairPlan:
    """Plan one pair: what to create, update, move, delete and re-reference in the target.
    Raises ExpressionError when a template or filter expression does not compile."""
    # sources: objects read from the source this run (all of scope when full, only changed
    # ones on a delta run). targets: every object of the target scope. joins: source anchor ->
    # target anchor from the state store. pending_creates: source anchor -> DN of creates
    # begun by a run that stopped before storing their join. On a delta run deletions come
    # only from deleted_sources and from read objects that left scope.
    template = compiled if compiled is not None else compile_template(rules.staging)
    if template.staging is not rules.staging and template.staging != rules.staging:
        raise ValueError(
            f"pair {rules.name!r}: compiled template {template.name!r} was compiled from other "
            "staging rules than the pair's; compile the pair's own rules.staging"
        )
    run = _Run(rules, template, targets, joins, pending_creates, full)
    for source in sources:
        run.add(source)
    return run.finish(deleted_sources)


def plan_summary(plan: PairPlan) -> dict[ObjectType, Counter[Count]]:
    """Counts per object type (Count); outOfScope counts references, the others objects.
    An object is counted as updated once, whatever mix of changes it gets."""
    summary: dict[ObjectType, Counter[Count]] = {}

    def counter(object_type: ObjectType) -> Counter[Count]:
        found = summary.get(object_type)
        if found is None:
            found = summary[object_type] = Counter(dict.fromkeys(Count, 0))
        return found

    created: set[str | None] = set()
    updated: set[tuple[ObjectType, str | None]] = set()
    for op in plan.operations:
        if op.kind is OpKind.CREATE:
            counter(op.object_type)[Count.CREATED] += 1
            created.add(op.source_anchor)
        elif op.kind is OpKind.MOVE:
            counter(op.object_type)[Count.MOVED] += 1
        elif op.kind is OpKind.DELETE:
            counter(op.object_type)[Count.DELETED] += 1
    for op in plan.operations:
        if op.kind is OpKind.UPDATE or (
            op.kind is OpKind.REFERENCES and op.source_anchor not in created
        ):
            updated.add((op.object_type, op.source_anchor or op.target_anchor))
    for object_type, _ in updated:
        counter(object_type)[Count.UPDATED] += 1
    for object_type, count in plan.unchanged.items():
        counter(object_type)[Count.UNCHANGED] += count
    for conflict in plan.conflicts:
        counter(conflict.object_type)[Count.CONFLICTS] += 1
    for error in plan.errors:
        counter(error.object_type)[Count.ERRORS] += 1
    for object_type, count in plan.deferred_counts.items():
        counter(object_type)[Count.DEFERRED] += count
    for reference in plan.out_of_scope:
        counter(reference.object_type)[Count.OUT_OF_SCOPE] += 1
    return summary
