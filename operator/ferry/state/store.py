"""The state store: SQLite by default, PostgreSQL by URL, one small API over SQLAlchemy 2."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, delete, event, func, inspect, select, update
from sqlalchemy.orm import Session, sessionmaker

from ferry.errors import FerryError
from ferry.state.schema import (
    Agent,
    Base,
    EnrollmentToken,
    InventoryItem,
    Join,
    ObjectResult,
    Retry,
    Run,
    Watermark,
)

# Like the products Ferry replaces: up to five agents share an environment's work.
MAX_AGENTS_PER_ENVIRONMENT = 5


class AgentLimitReached(FerryError):
    """The environment already has MAX_AGENTS_PER_ENVIRONMENT active agents."""

    def __init__(self, environment: str):
        self.environment = environment
        super().__init__(f"environment {environment} already has {MAX_AGENTS_PER_ENVIRONMENT}"
                         " active agents; revoke one first")


@dataclass(frozen=True)
class ResultRow:
    pair: str
    object_type: str
    source_anchor: str | None
    target_dn: str
    operation: str
    outcome: str
    message: str = ""


@dataclass(frozen=True)
class RunSummary:
    id: str
    workflow: str
    mode: str
    started_at: datetime
    finished_at: datetime | None
    result: str
    exit_code: int | None
    message: str
    counts: dict[str, dict[str, int]]


@dataclass(frozen=True)
class AgentInfo:
    id: str
    name: str
    environment: str
    host: str
    version: str
    enrolled_at: datetime
    last_seen: datetime | None
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def _now() -> datetime:
    return datetime.now(UTC)


def database_url(location: str) -> str:
    """Accept a SQLAlchemy URL or a plain file path (taken as SQLite)."""
    if "://" in location:
        return location
    path = Path(location).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def read_only_url(location: str) -> str | None:
    """The URL reading location without writing anything (no file, folder or sidecar made);
    None when there is no state there yet."""
    if "://" in location:
        return location
    path = Path(location).expanduser().resolve()
    if not path.is_file():
        return None
    # SQLite's mode=ro still creates a WAL database's -wal and -shm files and leaves them
    # behind. Without a -wal file every committed change is in the main file, so it can be
    # read as immutable (no locks, no sidecars); with one (a run is writing, or was killed)
    # its changes are read through it, and the sidecars already exist.
    mode = "mode=ro" if path.with_name(path.name + "-wal").exists() else "immutable=1"
    return f"sqlite:///file:{quote(str(path))}?{mode}&uri=true"


class StateStore:
    """Joins, watermarks, retries, run history and agents. Every write method commits on return.

    A read-only store (test mode) reads the state as it is, and as empty where there is none
    yet; it creates nothing anywhere.
    """

    def __init__(self, location: str, *, read_only: bool = False):
        self.read_only = read_only
        if read_only:
            self.engine: Engine = _read_only_engine(location)
        else:
            url = database_url(location)
            self.engine = create_engine(url, future=True)
            if url.startswith("sqlite"):
                event.listen(self.engine, "connect", _sqlite_pragmas)
            Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    # joins -----------------------------------------------------------------------------
    def joins(self, pair: str) -> dict[str, str]:
        """source anchor -> target anchor of confirmed joins."""
        with self._session() as s:
            rows = s.execute(select(Join.source_anchor, Join.target_anchor).where(
                Join.pair == pair, Join.status == "joined"))
            return {src: tgt for src, tgt in rows if tgt}

    def pending_creates(self, pair: str) -> dict[str, str]:
        """source anchor -> target DN of creates begun but never confirmed."""
        with self._session() as s:
            rows = s.execute(select(Join.source_anchor, Join.target_dn).where(
                Join.pair == pair, Join.status == "pending"))
            return dict(rows.tuples().all())

    def begin_creates(self, pair: str, creates: Iterable[tuple[str, str, str]]) -> None:
        """Write ahead: remember where objects (source anchor, object type, target DN) are
        about to be created, so a run killed before it learns their anchors finds them."""
        with self._session.begin() as s:
            for source_anchor, object_type, target_dn in creates:
                self._upsert(s, pair, source_anchor, None, object_type, target_dn, "pending")

    def confirm_joins(self, pair: str, joins: Iterable[tuple[str, str, str, str]]) -> None:
        """Store (source anchor, target anchor, object type, target DN) joins."""
        with self._session.begin() as s:
            for source_anchor, target_anchor, object_type, target_dn in joins:
                self._upsert(s, pair, source_anchor, target_anchor, object_type, target_dn,
                             "joined")

    def update_target_dns(self, pair: str, moves: Iterable[tuple[str, str]]) -> None:
        """Record the new target DNs of moved objects: (source anchor, target DN)."""
        with self._session.begin() as s:
            for source_anchor, target_dn in moves:
                s.execute(update(Join)
                          .where(Join.pair == pair, Join.source_anchor == source_anchor)
                          .values(target_dn=target_dn, updated_at=_now()))

    def mark_deleted(self, pair: str, source_anchors: Iterable[str]) -> None:
        """The target objects of these joins were deleted by Ferry: keep them as tombstones,
        so that a source object that comes back gets its target restored, not a new one."""
        anchors = list(source_anchors)
        with self._session.begin() as s:
            for chunk in _chunks(anchors, 500):
                s.execute(update(Join)
                          .where(Join.pair == pair, Join.source_anchor.in_(chunk))
                          .values(status="deleted", updated_at=_now()))

    def deleted_targets(self, pair: str) -> dict[str, str]:
        """source anchor -> target anchor of the targets Ferry deleted (tombstones)."""
        with self._session() as s:
            rows = s.execute(select(Join.source_anchor, Join.target_anchor).where(
                Join.pair == pair, Join.status == "deleted"))
            return {src: tgt for src, tgt in rows if tgt}

    def drop_joins(self, pair: str, source_anchors: Iterable[str]) -> None:
        anchors = list(source_anchors)
        with self._session.begin() as s:
            for chunk in _chunks(anchors, 500):
                s.execute(delete(Join).where(Join.pair == pair, Join.source_anchor.in_(chunk)))

    def _upsert(self, s: Session, pair: str, source_anchor: str, target_anchor: str | None,
                object_type: str, target_dn: str, status: str) -> None:
        row = s.scalars(select(Join).where(
            Join.pair == pair, Join.source_anchor == source_anchor)).first()
        if row is None:
            s.add(Join(pair=pair, source_anchor=source_anchor, target_anchor=target_anchor,
                       object_type=object_type, target_dn=target_dn, status=status,
                       updated_at=_now()))
        else:
            row.target_anchor, row.target_dn, row.status = target_anchor, target_dn, status
            row.object_type, row.updated_at = object_type, _now()

    # watermarks ------------------------------------------------------------------------
    def watermark(self, workflow: str, environment: str) -> tuple[str, str] | None:
        with self._session() as s:
            row = s.scalars(select(Watermark).where(
                Watermark.workflow == workflow, Watermark.environment == environment)).first()
            return (row.kind, row.value) if row else None

    def set_watermark(self, workflow: str, environment: str, kind: str, value: str) -> None:
        with self._session.begin() as s:
            row = s.scalars(select(Watermark).where(
                Watermark.workflow == workflow, Watermark.environment == environment)).first()
            if row is None:
                s.add(Watermark(workflow=workflow, environment=environment, kind=kind,
                                value=value, updated_at=_now()))
            else:
                row.kind, row.value, row.updated_at = kind, value, _now()

    def reset_watermarks(self, environment: str) -> None:
        """Forget where deltas start: the next run of every workflow reads in full."""
        with self._session.begin() as s:
            s.execute(delete(Watermark).where(Watermark.environment == environment))

    # inventory -------------------------------------------------------------------------
    def update_inventory(self, environment: str, found: Mapping[str, str],
                         deleted: Iterable[str] = (), *, replace: bool = False) -> None:
        """Record discovered objects (anchor -> type); replace drops everything else first."""
        with self._session.begin() as s:
            if replace:
                s.execute(delete(InventoryItem).where(InventoryItem.environment == environment))
                known: dict[str, InventoryItem] = {}
            else:
                gone = list(deleted) + list(found)
                known = {}
                for start in range(0, len(gone), 500):
                    chunk = gone[start:start + 500]
                    for item in s.scalars(select(InventoryItem).where(
                            InventoryItem.environment == environment,
                            InventoryItem.anchor.in_(chunk))):
                        known[item.anchor] = item
                for anchor in deleted:
                    if anchor in known:
                        s.delete(known.pop(anchor))
            for anchor, object_type in found.items():
                row = known.get(anchor)
                if row is None:
                    s.add(InventoryItem(environment=environment, anchor=anchor,
                                        object_type=object_type))
                else:
                    row.object_type = object_type

    def inventory_counts(self, environment: str) -> dict[str, int]:
        """Objects discovered in an environment, by type."""
        with self._session() as s:
            rows = s.execute(select(InventoryItem.object_type, func.count())
                             .where(InventoryItem.environment == environment)
                             .group_by(InventoryItem.object_type))
            return {object_type: count for object_type, count in rows}

    # retries ---------------------------------------------------------------------------
    def retries(self, pair: str) -> set[str]:
        with self._session() as s:
            return set(s.scalars(select(Retry.source_anchor).where(Retry.pair == pair)))

    def set_retries(self, pair: str, reasons: Mapping[str, str]) -> None:
        """Replace the pair's retry list with these source anchors."""
        with self._session.begin() as s:
            s.execute(delete(Retry).where(Retry.pair == pair))
            s.add_all(Retry(pair=pair, source_anchor=a, reason=r) for a, r in reasons.items())

    # runs ------------------------------------------------------------------------------
    def start_run(self, workflow: str, mode: str, run_id: str | None = None) -> str:
        """Record a run as Running; a given id that already exists (a retried Job) restarts it."""
        run_id = run_id or _now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        with self._session.begin() as s:
            s.merge(Run(id=run_id, workflow=workflow, mode=mode, started_at=_now(),
                        finished_at=None, result="Running", message="", counts={}))
        return run_id

    def record_results(self, run_id: str, rows: Iterable[ResultRow]) -> None:
        with self._session.begin() as s:
            s.add_all(ObjectResult(run_id=run_id, **row.__dict__) for row in rows)

    def finish_run(self, run_id: str, result: str, exit_code: int, message: str,
                   counts: dict[str, dict[str, int]]) -> None:
        with self._session.begin() as s:
            s.execute(update(Run).where(Run.id == run_id).values(
                finished_at=_now(), result=result, exit_code=exit_code, message=message,
                counts=counts))

    def runs(self, workflow: str | None = None, limit: int = 20) -> list[RunSummary]:
        with self._session() as s:
            query = select(Run).order_by(Run.started_at.desc()).limit(limit)
            if workflow:
                query = query.where(Run.workflow == workflow)
            return [RunSummary(r.id, r.workflow, r.mode, r.started_at, r.finished_at, r.result,
                               r.exit_code, r.message, r.counts or {})
                    for r in s.scalars(query)]

    def results(self, run_id: str) -> list[ResultRow]:
        with self._session() as s:
            rows = s.scalars(select(ObjectResult).where(ObjectResult.run_id == run_id)
                             .order_by(ObjectResult.id))
            return [ResultRow(r.pair, r.object_type, r.source_anchor, r.target_dn, r.operation,
                              r.outcome, r.message) for r in rows]


    # agents ----------------------------------------------------------------------------
    def add_enrollment_token(self, token_hash: str, environment: str,
                             expires_at: datetime) -> None:
        """Keep an enrollment token's SHA-256 (never the token) until it is used or expires."""
        with self._session.begin() as s:
            s.add(EnrollmentToken(token_hash=token_hash, environment=environment,
                                  created_at=_now(), expires_at=expires_at))

    def enroll_agent(self, token_hash: str, agent_id: str, name: str, host: str,
                     version: str) -> AgentInfo | None:
        """Use a token for a new agent of its environment; None when it is unknown, used or
        expired. One conditional UPDATE claims it, so a token works once, also concurrently."""
        now = _now()
        with self._session.begin() as s:
            claimed = s.execute(
                update(EnrollmentToken)
                .where(EnrollmentToken.token_hash == token_hash,
                       EnrollmentToken.used_at.is_(None), EnrollmentToken.expires_at > now)
                .values(used_at=now, agent_id=agent_id))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            environment = s.scalars(select(EnrollmentToken.environment).where(
                EnrollmentToken.token_hash == token_hash)).one()
            active = s.scalar(select(func.count()).select_from(Agent).where(
                Agent.environment == environment, Agent.revoked_at.is_(None))) or 0
            if active >= MAX_AGENTS_PER_ENVIRONMENT:
                # Raising rolls the claim back: the token stays usable once one is revoked.
                raise AgentLimitReached(environment)
            row = Agent(id=agent_id, name=name, environment=environment, host=host,
                        version=version, enrolled_at=now, last_seen=now)
            s.add(row)
            return _agent_info(row)

    def enrollment_token_state(self, token_hash: str) -> str:
        """unknown | used | expired | valid: why an enrollment was refused, for the log."""
        with self._session() as s:
            row = s.scalars(select(EnrollmentToken).where(
                EnrollmentToken.token_hash == token_hash)).first()
            if row is None:
                return "unknown"
            if row.used_at is not None:
                return "used"
            return "expired" if _utc(row.expires_at) <= _now() else "valid"

    def agent(self, agent_id: str) -> AgentInfo | None:
        with self._session() as s:
            row = s.get(Agent, agent_id)
            return _agent_info(row) if row else None

    def agents(self, environment: str | None = None) -> list[AgentInfo]:
        with self._session() as s:
            query = select(Agent).order_by(Agent.environment, Agent.name, Agent.enrolled_at)
            if environment is not None:
                query = query.where(Agent.environment == environment)
            return [_agent_info(r) for r in s.scalars(query)]

    def find_agents(self, id_or_name: str) -> list[AgentInfo]:
        """The agent with this id, else the agents with this name."""
        found = self.agent(id_or_name)
        if found:
            return [found]
        with self._session() as s:
            rows = s.scalars(select(Agent).where(Agent.name == id_or_name)
                             .order_by(Agent.enrolled_at))
            return [_agent_info(r) for r in rows]

    def has_agents(self, environment: str) -> bool:
        """Whether any agent that is not revoked was enrolled for `environment`."""
        with self._session() as s:
            return s.scalar(select(func.count()).select_from(Agent).where(
                Agent.environment == environment, Agent.revoked_at.is_(None))) != 0

    def revoke_agent(self, agent_id: str) -> bool:
        """Revoke an agent; False if it was already revoked (or is unknown)."""
        with self._session.begin() as s:
            done = s.execute(update(Agent).where(Agent.id == agent_id,
                                                 Agent.revoked_at.is_(None))
                             .values(revoked_at=_now()))
            return bool(done.rowcount)  # type: ignore[attr-defined]

    def agent_seen(self, agent_id: str, host: str, version: str) -> None:
        """Record a heartbeat: when, and the host and version the agent reported."""
        with self._session.begin() as s:
            s.execute(update(Agent).where(Agent.id == agent_id).values(
                last_seen=_now(), host=host, version=version))


def _agent_info(row: Agent) -> AgentInfo:
    return AgentInfo(row.id, row.name, row.environment, row.host, row.version,
                     _utc(row.enrolled_at), _opt_utc(row.last_seen), _opt_utc(row.revoked_at))


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _opt_utc(value: datetime | None) -> datetime | None:
    return _utc(value) if value is not None else None

def _read_only_engine(location: str) -> Engine:
    url = read_only_url(location)
    if url is not None:
        engine = create_engine(url, future=True)
        event.listen(engine, "connect", _read_only_session)
        if inspect(engine).has_table(Join.__tablename__):
            return engine
        engine.dispose()
    empty = create_engine("sqlite://", future=True)  # in memory: no state reads as empty
    Base.metadata.create_all(empty)
    return empty


def _read_only_session(dbapi_connection: Any, _record: Any) -> None:
    # PostgreSQL refuses writes in such a session; SQLite opened read-only cannot write.
    if type(dbapi_connection).__module__.startswith("psycopg"):
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL keeps readers (ferry runs) unblocked while a run writes; NORMAL is durable in WAL.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
