"""Joins per pair: confirmed, pending (a create written ahead) and deleted (a tombstone); and
the password routes (DCAgent mode) along which the gateway relays changes to joined users."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from ferry.state.rows import Join, PasswordRoute, PendingCreate
from ferry.state.schema import JoinRow, PasswordRouteRow


@dataclass(frozen=True)
class Joins:
    _session: sessionmaker[Session]

    def confirmed(self, pair: str, object_type: str | None = None) -> dict[str, str]:
        """source anchor -> target anchor of confirmed joins (of one object type, if given)."""
        return self._anchors(pair, "joined", object_type)

    def target_of(self, pair: str, source_anchor: str) -> str | None:
        """The target anchor a source object is joined to, or None."""
        with self._session() as s:
            return s.scalars(select(JoinRow.target_anchor).where(
                JoinRow.pair == pair, JoinRow.source_anchor == source_anchor,
                JoinRow.status == "joined")).first()

    def routes(self, source: str) -> list[PasswordRoute]:
        """The password routes from one environment (DCAgent mode)."""
        with self._session() as s:
            rows = s.scalars(select(PasswordRouteRow).where(PasswordRouteRow.source == source))
            return [PasswordRoute(r.pair, r.source, r.target) for r in rows]

    def publish_routes(self, workflow: str, routes: Iterable[PasswordRoute]) -> None:
        """Replace the workflow's password routes with these (none: it has no such pair)."""
        with self._session.begin() as s:
            s.execute(delete(PasswordRouteRow).where(PasswordRouteRow.workflow == workflow))
            now = datetime.now(UTC)
            s.add_all(PasswordRouteRow(pair=r.pair, workflow=workflow, source=r.source,
                                       target=r.target, updated_at=now) for r in routes)

    def pending(self, pair: str) -> dict[str, str]:
        """source anchor -> target DN of creates begun but never confirmed."""
        with self._session() as s:
            rows = s.execute(select(JoinRow.source_anchor, JoinRow.target_dn).where(
                JoinRow.pair == pair, JoinRow.status == "pending"))
            return dict(rows.tuples().all())

    def deleted(self, pair: str) -> dict[str, str]:
        """source anchor -> target anchor of the targets Ferry deleted (tombstones)."""
        return self._anchors(pair, "deleted")

    def begin_creates(self, pair: str, creates: Iterable[PendingCreate]) -> None:
        """Write ahead: remember where objects are about to be created, so a run killed
        before it learns their anchors finds them."""
        with self._session.begin() as s:
            for c in creates:
                _upsert(s, pair, c.source_anchor, None, c.object_type, c.target_dn, "pending")

    def confirm(self, pair: str, joins: Iterable[Join]) -> None:
        with self._session.begin() as s:
            for j in joins:
                _upsert(s, pair, j.source_anchor, j.target_anchor, j.object_type, j.target_dn,
                        "joined")

    def moved(self, pair: str, target_dns: Mapping[str, str]) -> None:
        """Record the new target DNs of moved objects, by source anchor."""
        with self._session.begin() as s:
            for source_anchor, target_dn in target_dns.items():
                s.execute(update(JoinRow)
                          .where(JoinRow.pair == pair, JoinRow.source_anchor == source_anchor)
                          .values(target_dn=target_dn, updated_at=datetime.now(UTC)))

    def mark_deleted(self, pair: str, source_anchors: Iterable[str]) -> None:
        """The target objects of these joins were deleted by Ferry: keep them as tombstones,
        so that a source object that comes back gets its target restored, not a new one."""
        with self._session.begin() as s:
            for chunk in chunks(source_anchors):
                s.execute(update(JoinRow)
                          .where(JoinRow.pair == pair, JoinRow.source_anchor.in_(chunk))
                          .values(status="deleted", updated_at=datetime.now(UTC)))

    def drop(self, pair: str, source_anchors: Iterable[str]) -> None:
        with self._session.begin() as s:
            for chunk in chunks(source_anchors):
                s.execute(delete(JoinRow).where(JoinRow.pair == pair,
                                                JoinRow.source_anchor.in_(chunk)))

    def _anchors(self, pair: str, status: str, object_type: str | None = None
                 ) -> dict[str, str]:
        query = select(JoinRow.source_anchor, JoinRow.target_anchor).where(
            JoinRow.pair == pair, JoinRow.status == status)
        if object_type is not None:
            query = query.where(JoinRow.object_type == object_type)
        with self._session() as s:
            return {src: tgt for src, tgt in s.execute(query) if tgt}


def _upsert(s: Session, pair: str, source_anchor: str, target_anchor: str | None,
            object_type: str, target_dn: str, status: str) -> None:
    row = s.scalars(select(JoinRow).where(
        JoinRow.pair == pair, JoinRow.source_anchor == source_anchor)).first()
    if row is None:
        row = JoinRow(pair=pair, source_anchor=source_anchor)
        s.add(row)
    row.target_anchor, row.target_dn, row.status = target_anchor, target_dn, status
    row.object_type, row.updated_at = object_type, datetime.now(UTC)


def chunks(items: Iterable[str], size: int = 500) -> Iterable[list[str]]:
    """items in lists short enough for one IN clause on every database."""
    listed = list(items)
    for start in range(0, len(listed), size):
        yield listed[start : start + size]
