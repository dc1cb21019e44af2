"""The latest in-cluster match report of each Workflow: its pairs and their rows, replaced
whole by each report, so `ferry report matches NAMESPACE/NAME` writes the CSV files the
report Job's plan gave. Its tables live here, beside the one part that uses them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, String, Text, delete, insert, inspect, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from ferry.state.rows import MatchRow, MatchStatus, PairMatches
from ferry.state.schema import Base


class MatchReportPairRow(Base):
    """One pair of a Workflow's latest match report (kept even when it has no rows)."""

    __tablename__ = "match_report_pairs"

    namespace: Mapped[str] = mapped_column(String(63), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(300), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)   # step order
    source: Mapped[str] = mapped_column(String(300))
    target: Mapped[str] = mapped_column(String(300))
    report_id: Mapped[str] = mapped_column(String(40))
    made_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MatchReportRow(Base):
    """One source object's row of a pair of a Workflow's latest match report."""

    __tablename__ = "match_report_rows"

    namespace: Mapped[str] = mapped_column(String(63), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(300), primary_key=True)
    pair: Mapped[int] = mapped_column(Integer, primary_key=True)       # its pair's position
    position: Mapped[int] = mapped_column(Integer, primary_key=True)   # the CSV's order
    source_dn: Mapped[str] = mapped_column(Text)
    source_type: Mapped[str] = mapped_column(String(20))
    anchor: Mapped[str] = mapped_column(String(100))
    target_dn: Mapped[str] = mapped_column(Text, default="")
    target_type: Mapped[str] = mapped_column(String(20), default="")
    status: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str] = mapped_column(Text, default="")
    candidates: Mapped[str] = mapped_column(Text, default="[]")        # a JSON list of DNs
    reason: Mapped[str] = mapped_column(Text, default="")


_BATCH = 5000


@dataclass(frozen=True)
class StoredMatchReport:
    """A Workflow's latest match report as the store holds it."""

    report_id: str
    made_at: datetime
    pairs: list[PairMatches]


@dataclass(frozen=True)
class MatchReports:
    _session: sessionmaker[Session]

    def replace(self, namespace: str, workflow: str, report_id: str,
                pairs: Iterable[PairMatches]) -> None:
        """Keep this report as the Workflow's latest, dropping the one before, in one
        transaction (a reader sees the old report or the new one, never a mix)."""
        now = datetime.now(UTC)
        pairs = list(pairs)
        heads = [{"namespace": namespace, "workflow": workflow, "position": index,
                  "source": pair.source, "target": pair.target, "report_id": report_id,
                  "made_at": now} for index, pair in enumerate(pairs)]
        # Core statements, not ORM objects: a pair of a million objects stays rows.
        rows = [{"namespace": namespace, "workflow": workflow, "pair": index,
                 "position": position, "source_dn": r.source_dn, "source_type": r.source_type,
                 "anchor": r.anchor, "target_dn": r.target_dn, "target_type": r.target_type,
                 "status": r.status.value, "rule": r.rule,
                 "candidates": json.dumps(list(r.candidates)), "reason": r.reason}
                for index, pair in enumerate(pairs) for position, r in enumerate(pair.rows)]
        with self._session.begin() as s:
            for table in (MatchReportPairRow, MatchReportRow):
                s.execute(delete(table).where(table.namespace == namespace,
                                              table.workflow == workflow))
            if heads:
                s.execute(insert(MatchReportPairRow), heads)
            for start in range(0, len(rows), _BATCH):
                s.execute(insert(MatchReportRow), rows[start:start + _BATCH])

    def of(self, namespace: str, workflow: str) -> StoredMatchReport | None:
        """The Workflow's latest report; None when none was stored (or the store predates
        match reports)."""
        with self._session() as s:
            if not inspect(s.connection()).has_table(MatchReportPairRow.__tablename__):
                return None
            heads = list(s.scalars(select(MatchReportPairRow).where(
                MatchReportPairRow.namespace == namespace,
                MatchReportPairRow.workflow == workflow).order_by(MatchReportPairRow.position)))
            if not heads:
                return None
            found = s.scalars(select(MatchReportRow).where(
                MatchReportRow.namespace == namespace, MatchReportRow.workflow == workflow)
                .order_by(MatchReportRow.pair, MatchReportRow.position))
            rows: dict[int, list[MatchRow]] = {head.position: [] for head in heads}
            for r in found:
                rows[r.pair].append(MatchRow(
                    r.source_dn, r.source_type, r.anchor, r.target_dn, r.target_type,
                    MatchStatus(r.status), r.rule, tuple(json.loads(r.candidates)), r.reason))
        made_at = heads[0].made_at
        return StoredMatchReport(
            heads[0].report_id, made_at if made_at.tzinfo else made_at.replace(tzinfo=UTC),
            [PairMatches(head.source, head.target, rows[head.position]) for head in heads])

    def workflows(self) -> list[str]:
        """NAMESPACE/NAME of every Workflow with a stored report."""
        with self._session() as s:
            if not inspect(s.connection()).has_table(MatchReportPairRow.__tablename__):
                return []
            return sorted({f"{ns}/{wf}" for ns, wf in s.execute(
                select(MatchReportPairRow.namespace, MatchReportPairRow.workflow).distinct())})
