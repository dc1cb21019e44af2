"""Carry out a pair's plan against its target, keeping joins and results in the state store."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import structlog

from ferry.api.template import PasswordOptions
from ferry.connectors.base import Connector, ObjectWrite
from ferry.engine.plan import Count, Operation, OpKind, PairPlan
from ferry.engine.records import Record
from ferry.secrets import SecretSource
from ferry.state.rows import Join, ObjectResult, PendingCreate
from ferry.state.store import StateStore
from ferry.sync.outcome import COUNT_OF, ObjectFailure, RunOutcome
from ferry.sync.pairs import PairSettings
from ferry.sync.progress import ProgressTask
from ferry_agent.directory.password import complexity_tokens, generate_password

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
    deleted: dict[str, str] = field(default_factory=dict)   # tombstones: source -> target
    retries: dict[str, str] = field(default_factory=dict)
    _results: list[ObjectResult] = field(default_factory=list)
    _touched: set[tuple[str, str]] = field(default_factory=set)

    @classmethod
    def for_pair(cls, pair: PairSettings, plan: PairPlan, run_id: str, connector: Connector,
                 store: StateStore, outcome: RunOutcome, targets: Mapping[str, Record],
                 joins: Mapping[str, str], secrets: SecretSource) -> PairApplier:
        """The applier of one pair's plan in a run; it adds the run's joins to its own copy."""
        return cls(run_id=run_id, plan=plan, connector=connector, store=store,
                   outcome=outcome, targets=targets, password_options=pair.password,
                   password_source=password_source(
                       pair.password, secrets,
                       f"Template/{pair.template}: spec.password.value"),
                   joins=dict(joins), deleted=store.joins.deleted(pair.rules.name))

    def apply(self, task: ProgressTask) -> None:
        self._persist_new_joins()
        if self.plan.dropped_joins:
            self.store.joins.drop(self.plan.pair, self.plan.dropped_joins)
        batch: list[ObjectWrite] = []
        for op in self.plan.operations:
            if batch and _is_reference(op) != _is_reference(batch[-1].op):
                # References name objects the writes before them create and delete.
                self._write(batch, task)
            write = self._prepare(op)
            if write is None:
                task.advance()
                continue
            batch.append(write)
            if len(batch) >= self.connector.batch_size:
                self._write(batch, task)
        if batch:
            self._write(batch, task)
        self._flush()

    def _persist_new_joins(self) -> None:
        rows = []
        for source_anchor, target_anchor in self.plan.new_joins.items():
            target = self.targets.get(target_anchor)
            if target is not None:
                rows.append(Join(source_anchor, target_anchor, target.object_type.value,
                                 target.dn))
        self.store.joins.confirm(self.plan.pair, rows)
        self.joins.update(self.plan.new_joins)

    def _prepare(self, op: Operation) -> ObjectWrite | None:
        """What the connector needs for op, or None when there is nothing to write."""
        if op.kind is OpKind.CREATE:
            password = self._password(op) if op.object_type.value == "user" else None
            return ObjectWrite(op, password, self.password_options.must_change,
                               restore=self.deleted.get(op.source_anchor or "", ""))
        if op.kind is not OpKind.REFERENCES:
            return ObjectWrite(op)
        target = op.target_anchor or self.joins.get(op.source_anchor or "")
        if target is None:
            self._defer(op, "the object itself was not created")
            return None
        add = tuple(self.joins[a] for a in op.add if a in self.joins)
        if len(add) < len(op.add):
            self._defer(op, f"{len(op.add) - len(add)} referenced object(s) not synced yet")
        if not add and not op.remove:
            return None
        return ObjectWrite(op, target=target, add=add, remove=tuple(op.remove))

    def _write(self, batch: list[ObjectWrite], task: ProgressTask) -> None:
        """Apply a batch and keep the state store in step with what each write did."""
        pair = self.plan.pair
        creates = [PendingCreate(w.op.source_anchor or "", w.op.object_type.value, w.op.dn)
                   for w in batch if w.op.kind is OpKind.CREATE]
        if creates:  # written ahead, so a run killed mid-batch finds these objects again
            self.store.joins.begin_creates(pair, creates)
        outcomes = self.connector.write(batch)
        joined: list[Join] = []
        moved: dict[str, str] = {}   # source anchor -> new target DN
        deleted: list[str] = []
        for write, outcome in zip(batch, outcomes, strict=True):
            op, source = write.op, write.op.source_anchor or ""
            if outcome.error is not None:
                self._fail(op, outcome.error)
            elif op.kind is OpKind.REFERENCES:
                # A reference change of an object created in this run is part of its creation.
                if op.target_anchor is not None:
                    self._ok(op, Count.UPDATED)
            else:
                if op.kind is OpKind.CREATE:
                    joined.append(Join(source, outcome.anchor, op.object_type.value, op.dn))
                    self.joins[source] = outcome.anchor
                elif op.kind is OpKind.MOVE:
                    moved[source] = op.new_dn or ""
                elif op.kind is OpKind.DELETE:
                    deleted.append(source)
                self._ok(op, COUNT_OF[op.kind])
            task.advance()
        self.store.joins.confirm(pair, joined)
        if moved:
            self.store.joins.moved(pair, moved)
        if deleted:
            self.store.joins.mark_deleted(pair, deleted)
        batch.clear()
        if len(self._results) >= 500:
            self._flush()

    def _password(self, op: Operation) -> str:
        if self.password_options.value is not None:
            return self.password_source()
        # AD refuses a password holding the account name or a displayName token.
        changes = op.changes
        return generate_password(avoid=complexity_tokens(
            _text(changes.get("sAMAccountName")), _text(changes.get("displayName"))))

    def _ok(self, op: Operation, counted: Count) -> None:
        key = (op.object_type.value, op.source_anchor or op.target_anchor or op.dn)
        if counted is Count.UPDATED and key in self._touched:
            return  # one object updated by attributes and references counts once
        self._touched.add(key)
        self.outcome.count(op.object_type.value, counted)
        log.info("object.written", pair=self.plan.pair, operation=op.kind.value,
                 type=op.object_type.value, object=op.new_dn or op.dn)
        self._result(op, op.new_dn or op.dn, "ok")

    def _fail(self, op: Operation, message: str) -> None:
        log.warning("object.failed", pair=self.plan.pair, operation=op.kind.value,
                    type=op.object_type.value, object=op.dn, error=message)
        self.outcome.count(op.object_type.value, Count.ERRORS)
        self.outcome.failures.append(ObjectFailure(
            self.plan.pair, op.object_type.value, op.dn, op.kind.value, message))
        self._result(op, op.dn, "error", message)
        if op.source_anchor:
            self.retries[op.source_anchor] = message

    def _defer(self, op: Operation, message: str) -> None:
        self.outcome.count(op.object_type.value, Count.DEFERRED)
        self._result(op, op.dn, "deferred", message)
        if op.source_anchor:
            self.retries[op.source_anchor] = message

    def _result(self, op: Operation, dn: str, outcome: str, message: str = "") -> None:
        self._results.append(ObjectResult(self.plan.pair, op.object_type.value,
                                          op.source_anchor, dn, op.kind.value, outcome, message))

    def _flush(self) -> None:
        if self._results:
            self.store.runs.record(self.run_id, self._results)
            self._results.clear()


def password_source(options: PasswordOptions, secrets: SecretSource,
                    where: str) -> Callable[[], str]:
    """A function returning the template's fixed initial password, resolved when first used."""
    cache: list[str] = []

    def get() -> str:
        if not cache:
            assert options.value is not None
            cache.append(secrets.resolve(options.value, where))
        return cache[0]

    return get


def _text(value: object) -> str:
    if isinstance(value, list | tuple):
        return str(value[0]) if value else ""
    return str(value) if value is not None else ""


def _is_reference(op: Operation) -> bool:
    return op.kind is OpKind.REFERENCES
