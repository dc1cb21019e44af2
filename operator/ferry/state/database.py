"""Opening the state database (SQLite by default, PostgreSQL by URL, read-only for test mode),
and the conventions every part of the store follows: UTC times, bounded IN lists."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect

from ferry.state.schema import Base, JoinRow


def open_engine(location: str, *, read_only: bool) -> Engine:
    """The engine of the database at location, tables made; read-only makes nothing anywhere
    and reads no state as empty."""
    if read_only:
        return _read_only_engine(location)
    url = database_url(location)
    engine = create_engine(url, future=True)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    Base.metadata.create_all(engine)
    return engine


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


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def chunks(items: Iterable[str], size: int = 500) -> Iterable[list[str]]:
    """items in lists short enough for one IN clause on every database."""
    listed = list(items)
    for start in range(0, len(listed), size):
        yield listed[start : start + size]


def _read_only_engine(location: str) -> Engine:
    url = read_only_url(location)
    if url is not None:
        engine = create_engine(url, future=True)
        event.listen(engine, "connect", _read_only_session)
        if inspect(engine).has_table(JoinRow.__tablename__):
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
