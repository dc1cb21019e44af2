"""The state store: one database, its parts by concern. Every write method commits on return."""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker

from ferry.state.agents import Agents
from ferry.state.database import open_engine
from ferry.state.joins import Joins
from ferry.state.runs import Runs
from ferry.state.watermarks import Inventory, Retries, Watermarks


class StateStore:
    """Joins, watermarks, retries, inventory, run history and agents, over one engine.

    A read-only store (test mode) reads the state as it is, and as empty where there is none
    yet; it creates nothing anywhere.
    """

    def __init__(self, location: str, *, read_only: bool = False):
        self.read_only = read_only
        self.engine = open_engine(location, read_only=read_only)
        session = sessionmaker(self.engine, expire_on_commit=False)
        self.joins = Joins(session)
        self.watermarks = Watermarks(session)
        self.retries = Retries(session)
        self.inventory = Inventory(session)
        self.runs = Runs(session)
        self.agents = Agents(session)

    def close(self) -> None:
        self.engine.dispose()
