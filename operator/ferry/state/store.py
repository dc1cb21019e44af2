"""The state store: SQLite by default, PostgreSQL by URL, read-only for test mode; one engine
and its parts by concern. Every write method commits on return."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.orm import sessionmaker

from ferry.state.agents import Agents
from ferry.state.devices import Devices, DiscoveredDevices, SidTranslations
from ferry.state.directory_objects import DirectoryObjects
from ferry.state.joins import Joins
from ferry.state.match_reports import MatchReports
from ferry.state.runs import Runs
from ferry.state.schema import Base, JoinRow
from ferry.state.scripts import ScriptRuns
from ferry.state.watermarks import Inventory, Retries, Watermarks


class StateStore:
    """Joins, watermarks, retries, inventory, run history and script steps, agents, device
    migration, discovered objects and in-cluster match reports, over one engine;
    `with StateStore(location) as store:` closes it.

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
        session = sessionmaker(self.engine, expire_on_commit=False)
        self.joins = Joins(session)
        self.watermarks = Watermarks(session)
        self.retries = Retries(session)
        self.inventory = Inventory(session)
        self.runs = Runs(session)
        self.script_runs = ScriptRuns(session)
        self.agents = Agents(session)
        self.devices = Devices(session)
        self.sid_translations = SidTranslations(session)
        self.discovered_devices = DiscoveredDevices(session)
        self.directory_objects = DirectoryObjects(session)
        self.match_reports = MatchReports(session)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


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
