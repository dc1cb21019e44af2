"""Carry out a pair's plan against its target, keeping joins and results in the state store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from ferry.api.template import PasswordOptions
from ferry.connectors.base import Connector, ObjectError
from ferry.engine.plan import Operation, OpKind, PairPlan
from ferry.engine.records import Record
from ferry.secrets import SecretResolver
from ferry.state.store import ResultRow, StateStore
from ferry.sync.outcome import COUNT_OF, ObjectFailure, RunOutcome
from ferry.sync.progress import ProgressTask
from ferry_agent.directory.password import generate_password

log = structlog.get_logger("ferry.apply")



@dataclass
class PairApplier:
    """Applies one pair's operations in order; every object's outcome is recorded."""

    run_id: str
    plan: PairPlan
    connector: Connector
    store: StateStore
    outcome: RunOutcome
    targets: Mapping[str, Record]
    password_options: PasswordOptions
    password_source: Callable[[], str]
    joins: dict[str, str] = field(default_factory=dict)
    retries: dict[str, str] = field(default_factory=dict)
    _results: list[ResultRow] = field(default_factory=list)
    _touched: set[tuple[str, str]] = field(default_factory=set)

    def apply(self, task: ProgressTask) -> None:
        pair = self.plan.pair
        self._persist_new_joins()
        if self.plan.dropped_joins:
            self.store.drop_joins(pair, self.plan.dropped_joins)
        for op in self.plan.operations:
            try:
                self._apply_one(op)
            except ObjectError as exc:
                self._fail(op, str(exc))
            task.advance()
            if len(self._results) >= 500:
                self._flush()
        self._flush()

    def _persist_new_joins(self) -> None:
        rows = []
        for source_anchor, target_anchor in self.plan.new_joins.items():
            target = self.targets.get(target_anchor)
            if target is not None:
                rows.append((source_anchor, target_anchor, target.object_type.value, target.dn))
        self.store.confirm_joins(self.plan.pair, rows)
        self.joins.update(self.plan.new_joins)

    def _apply_one(self, op: Operation) -> None:
        pair, source = self.plan.pair, op.source_anchor or ""
        if op.kind is OpKind.CREATE:
            self.store.begin_create(pair, source, op.object_type.value, op.dn)
            password = self._password() if op.object_type.value == "user" else None
            anchor = self.connector.create(
                op, password, self.password_options.must_change_at_next_logon)
            self.store.confirm_joins(pair, [(source, anchor, op.object_type.value, op.dn)])
            self.joins[source] = anchor
        elif op.kind is OpKind.UPDATE:
            self.connector.update(op)
        elif op.kind is OpKind.MOVE:
            self.connector.move(op)
            self.store.update_target_dn(pair, source, op.new_dn or "")
        elif op.kind is OpKind.DELETE:
            self.connector.delete(op)
            self.store.drop_joins(pair, [source])
        elif op.kind is OpKind.REFERENCES:
            self._apply_references(op)
            return
        self._ok(op, COUNT_OF[op.kind])

    def _apply_references(self, op: Operation) -> None:
        target = op.target_anchor or self.joins.get(op.source_anchor or "")
        if target is None:
            self._defer(op, "the object itself was not created")
            return
        add = [self.joins[a] for a in op.add if a in self.joins]
        if len(add) < len(op.add):
            self._defer(op, f"{len(op.add) - len(add)} referenced object(s) not synced yet")
        if add or op.remove:
            self.connector.set_references(target, op.attribute or "member", add, list(op.remove))
            # A reference change of an object created in this run is part of its creation.
            key = (op.object_type.value, op.source_anchor or target)
            if op.target_anchor is not None and key not in self._touched:
                self._ok(op, "updated")

    def _password(self) -> str:
        if self.password_options.value is not None:
            return self.password_source()
        return generate_password()

    def _ok(self, op: Operation, counted: str) -> None:
        key = (op.object_type.value, op.source_anchor or op.target_anchor or op.dn)
        if counted == "updated" and key in self._touched:
            return  # one object updated by attributes and references counts once
        self._touched.add(key)
        self.outcome.count(op.object_type.value, counted)
        self._results.append(ResultRow(self.plan.pair, op.object_type.value, op.source_anchor,
                                       op.new_dn or op.dn, op.kind.value, "ok"))

    def _fail(self, op: Operation, message: str) -> None:
        log.warning("object.failed", pair=self.plan.pair, operation=op.kind.value,
                    dn=op.dn, error=message)
        self.outcome.count(op.object_type.value, "errors")
        self.outcome.failures.append(ObjectFailure(
            self.plan.pair, op.object_type.value, op.dn, op.kind.value, message))
        self._results.append(ResultRow(self.plan.pair, op.object_type.value, op.source_anchor,
                                       op.dn, op.kind.value, "error", message))
        if op.source_anchor:
            self.retries[op.source_anchor] = message

    def _defer(self, op: Operation, message: str) -> None:
        self.outcome.count(op.object_type.value, "deferred")
        self._results.append(ResultRow(self.plan.pair, op.object_type.value, op.source_anchor,
                                       op.dn, op.kind.value, "deferred", message))
        if op.source_anchor:
            self.retries[op.source_anchor] = message

    def _flush(self) -> None:
        if self._results:
            self.store.record_results(self.run_id, self._results)
            self._results.clear()


def password_source(options: PasswordOptions, secrets: SecretResolver,
                    where: str) -> Callable[[], str]:
    """A function returning the template's fixed initial password, resolved when first used."""
    cache: list[str] = []

    def get() -> str:
        if not cache:
            assert options.value is not None
            cache.append(secrets.resolve(options.value, where))
        return cache[0]

    return get
