"""After a pair's objects are written: the source SIDs its joined targets still lack go into
their sIDHistory. Test mode only says what would be added."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import structlog

from ferry.connectors.base import Connector, SidHistoryTarget
from ferry.engine.migration import SidHistoryAdd, sid_history_adds
from ferry.engine.plan import Count, OpKind, PairPlan
from ferry.engine.records import Record
from ferry.state.rows import ObjectResult
from ferry.sync.outcome import ObjectFailure, RunOutcome
from ferry.sync.pairs import PairSettings

log = structlog.get_logger("ferry.migration")

OPERATION = "sidHistory"


@dataclass
class SidHistoryStep:
    """Adds one pair's missing source SIDs; what failed is retried next run."""

    pair: PairSettings
    plan: PairPlan
    outcome: RunOutcome
    results: list[ObjectResult] = field(default_factory=list)
    retries: dict[str, str] = field(default_factory=dict)

    def plan_adds(self, sources: Sequence[Record], joins: Mapping[str, str],
                  targets: Mapping[str, Record], *, test_mode: bool) -> list[SidHistoryAdd]:
        """The adds this run makes, kept on the plan (for the plan file and test mode)."""
        if not self.pair.sid_history:
            return []
        if test_mode:
            # Objects the plan would create have no target yet: "" stands for it.
            joins = {**joins, **self.plan.new_joins,
                     **{op.source_anchor: "" for op in self.plan.operations
                        if op.kind is OpKind.CREATE and op.source_anchor}}
        adds = sid_history_adds(self.plan.pair, self.pair.sid_history, sources, joins, targets)
        self.plan.sid_history = adds
        if test_mode:
            for add in adds:
                self.outcome.count(add.object_type.value, Count.SID_HISTORY)
        return adds

    def apply(self, adds: Sequence[SidHistoryAdd], connector: Connector,
              targets: Mapping[str, Record]) -> None:
        if not adds:
            return
        if not isinstance(connector, SidHistoryTarget):  # the manifest check refuses this
            raise TypeError(f"{connector.name} cannot hold sIDHistory")
        for start in range(0, len(adds), connector.batch_size):
            batch = adds[start:start + connector.batch_size]
            done_batch = connector.add_sid_history(batch, self.pair.source_domain,
                                                   self.pair.source_dc)
            for add, done in zip(batch, done_batch, strict=True):
                target = targets.get(add.target_anchor)
                dn = done.dn or (target.dn if target else f"<GUID={add.target_anchor}>")
                kind = add.object_type.value
                if done.error is None:
                    self.outcome.count(kind, Count.SID_HISTORY)
                    self._result(add, dn, "ok", f"added {add.sid} to sIDHistory")
                    continue
                log.warning("sid_history.failed", pair=add.pair, object=dn, error=done.error)
                self.outcome.count(kind, Count.ERRORS)
                self.outcome.failures.append(ObjectFailure(add.pair, kind, dn, OPERATION,
                                                           done.error))
                self._result(add, dn, "error", done.error)
                self.retries[add.source_anchor] = done.error

    def _result(self, add: SidHistoryAdd, dn: str, outcome: str, message: str) -> None:
        self.results.append(ObjectResult(add.pair, add.object_type.value, add.source_anchor,
                                         dn, OPERATION, outcome, message))
