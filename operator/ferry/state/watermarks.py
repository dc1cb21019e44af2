"""What the next read starts from: watermarks per workflow and environment, the objects a pair
reads again (retries), and the inventory discovery keeps per environment."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from ferry.state.joins import chunks
from ferry.state.rows import Watermark
from ferry.state.schema import InventoryRow, RetryRow, WatermarkRow


@dataclass(frozen=True)
class Watermarks:
    """Per workflow and environment; password replication keeps its own per pair (the pair's
    key, `workflow/source->target`, in place of the workflow: no workflow is named so), so
    resetting an environment's watermarks resets both."""

    _session: sessionmaker[Session]

    def get(self, workflow: str, environment: str) -> Watermark | None:
        with self._session() as s:
            row = self._row(s, workflow, environment)
            return Watermark(row.kind, row.value) if row else None

    def set(self, workflow: str, environment: str, watermark: Watermark) -> None:
        with self._session.begin() as s:
            row = self._row(s, workflow, environment)
            if row is None:
                row = WatermarkRow(workflow=workflow, environment=environment)
                s.add(row)
            row.kind, row.value = watermark.kind, watermark.value
            row.updated_at = datetime.now(UTC)

    def reset(self, environment: str) -> None:
        """Forget where deltas start: the next run of every workflow reads in full."""
        with self._session.begin() as s:
            s.execute(delete(WatermarkRow).where(WatermarkRow.environment == environment))

    @staticmethod
    def _row(s: Session, workflow: str, environment: str) -> WatermarkRow | None:
        return s.scalars(select(WatermarkRow).where(
            WatermarkRow.workflow == workflow, WatermarkRow.environment == environment)).first()


@dataclass(frozen=True)
class Retries:
    _session: sessionmaker[Session]

    def of(self, pair: str) -> set[str]:
        """The source anchors the pair's next run processes again, changed or not."""
        with self._session() as s:
            return set(s.scalars(select(RetryRow.source_anchor).where(RetryRow.pair == pair)))

    def replace(self, pair: str, reasons: Mapping[str, str]) -> None:
        """Replace the pair's retry list with these source anchors (-> why)."""
        with self._session.begin() as s:
            s.execute(delete(RetryRow).where(RetryRow.pair == pair))
            s.add_all(RetryRow(pair=pair, source_anchor=a, reason=r) for a, r in reasons.items())


@dataclass(frozen=True)
class Inventory:
    _session: sessionmaker[Session]

    def update(self, environment: str, found: Mapping[str, str], deleted: Iterable[str] = (),
               *, replace: bool = False) -> None:
        """Record discovered objects (anchor -> type); replace drops everything else first."""
        deleted = list(deleted)
        with self._session.begin() as s:
            known: dict[str, InventoryRow] = {}
            if replace:
                s.execute(delete(InventoryRow).where(InventoryRow.environment == environment))
            else:
                for chunk in chunks([*deleted, *found]):
                    for item in s.scalars(select(InventoryRow).where(
                            InventoryRow.environment == environment,
                            InventoryRow.anchor.in_(chunk))):
                        known[item.anchor] = item
                for anchor in deleted:
                    if anchor in known:
                        s.delete(known.pop(anchor))
            for anchor, object_type in found.items():
                row = known.get(anchor)
                if row is None:
                    s.add(InventoryRow(environment=environment, anchor=anchor,
                                       object_type=object_type))
                else:
                    row.object_type = object_type

    def counts(self, environment: str) -> dict[str, int]:
        """Objects discovered in an environment, by type."""
        with self._session() as s:
            rows = s.execute(select(InventoryRow.object_type, func.count())
                             .where(InventoryRow.environment == environment)
                             .group_by(InventoryRow.object_type))
            return {object_type: count for object_type, count in rows}
