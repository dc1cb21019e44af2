"""The objects discovery read per environment, with their report fields: replaced by a full
read, updated by deltas like the inventory. Its table lives here, beside the one part that
uses it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Boolean, DateTime, Integer, String, Text, delete, insert, select
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from ferry.state.joins import chunks
from ferry.state.rows import DirectoryObject
from ferry.state.schema import Base


class DirectoryObjectRow(Base):
    """An object as discovery last read it, with the fields the discovery report shows."""

    __tablename__ = "directory_objects"

    environment: Mapped[str] = mapped_column(String(300), primary_key=True)
    anchor: Mapped[str] = mapped_column(String(100), primary_key=True)
    namespace: Mapped[str] = mapped_column(String(63), default="")   # "" outside a cluster
    object_type: Mapped[str] = mapped_column(String(20))
    dn: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text, default="")
    display_name: Mapped[str] = mapped_column(Text, default="")
    upn: Mapped[str] = mapped_column(Text, default="")
    mail: Mapped[str] = mapped_column(Text, default="")
    enabled: Mapped[bool | None] = mapped_column(Boolean)
    last_logon: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    members: Mapped[int | None] = mapped_column(Integer)
    os: Mapped[str] = mapped_column(String(200), default="")
    read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


_BATCH = 5000
_FIELDS = ("object_type", "dn", "name", "display_name", "upn", "mail", "enabled",
           "last_logon", "created", "members", "os")


@dataclass(frozen=True)
class DiscoveredEnvironment:
    """What the store holds of one environment's discovery: its objects and when read."""

    environment: str
    namespace: str
    read_at: datetime | None
    objects: list[DirectoryObject]


@dataclass(frozen=True)
class DirectoryObjects:
    _session: sessionmaker[Session]

    def update(self, environment: str, objects: Iterable[DirectoryObject],
               deleted: Iterable[str] = (), *, replace: bool = False,
               namespace: str = "") -> None:
        """Record what discovery read (a full read with replace drops everything else)."""
        now = datetime.now(UTC)
        objects = list(objects)
        # Core statements, not ORM objects: a full read of a million objects stays rows.
        rows = [{"environment": environment, "anchor": o.anchor, "namespace": namespace,
                 "read_at": now, **{name: getattr(o, name) for name in _FIELDS}}
                for o in objects]
        where = DirectoryObjectRow.environment == environment
        with self._session.begin() as s:
            if replace:
                s.execute(delete(DirectoryObjectRow).where(where))
            else:   # a changed object's row is written anew
                for chunk in chunks([*deleted, *(o.anchor for o in objects)]):
                    s.execute(delete(DirectoryObjectRow).where(
                        where, DirectoryObjectRow.anchor.in_(chunk)))
            for start in range(0, len(rows), _BATCH):
                s.execute(insert(DirectoryObjectRow), rows[start:start + _BATCH])

    def environments(self) -> list[str]:
        """The environments discovery has recorded objects of."""
        with self._session() as s:
            return sorted(set(s.scalars(select(DirectoryObjectRow.environment).distinct())))

    def of(self, environment: str) -> DiscoveredEnvironment | None:
        """An environment's objects by type and DN; None when discovery recorded none."""
        with self._session() as s:
            rows = list(s.scalars(select(DirectoryObjectRow).where(
                DirectoryObjectRow.environment == environment).order_by(
                DirectoryObjectRow.object_type, DirectoryObjectRow.dn)))
        if not rows:
            return None
        return DiscoveredEnvironment(
            environment, rows[0].namespace, _aware(max(r.read_at for r in rows)),
            [DirectoryObject(r.anchor, r.object_type, r.dn, r.name, r.display_name, r.upn,
                             r.mail, r.enabled, _aware(r.last_logon), _aware(r.created),
                             r.members, r.os) for r in rows])


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
