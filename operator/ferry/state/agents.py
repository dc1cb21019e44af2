"""Enrolled agents and the single-use enrollment tokens that enrolled them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from ferry.errors import FerryError
from ferry.state.rows import AgentInfo, Revocation
from ferry.state.schema import AgentKeyRow, AgentRow, EnrollmentTokenRow

# Like the products Ferry replaces: up to five agents share an environment's work.
MAX_AGENTS_PER_ENVIRONMENT = 5


class AgentLimitReached(FerryError):
    """The environment already has MAX_AGENTS_PER_ENVIRONMENT active agents."""

    def __init__(self, environment: str):
        self.environment = environment
        super().__init__(f"environment {environment} already has {MAX_AGENTS_PER_ENVIRONMENT}"
                         " active agents; revoke one first")


@dataclass(frozen=True)
class Agents:
    _session: sessionmaker[Session]

    def add_token(self, token_hash: str, environment: str, expires_at: datetime) -> None:
        """Keep an enrollment token's SHA-256 (never the token) until it is used or expires."""
        with self._session.begin() as s:
            s.add(EnrollmentTokenRow(token_hash=token_hash, environment=environment,
                                     created_at=datetime.now(UTC), expires_at=expires_at))

    def enroll(self, token_hash: str, agent_id: str, name: str, host: str,
               version: str, public_key: str = "") -> AgentInfo | None:
        """Use a token for a new agent of its environment; None when it is unknown, used or
        expired. One conditional UPDATE claims it, so a token works once, also concurrently."""
        when = datetime.now(UTC)
        with self._session.begin() as s:
            claimed = s.execute(
                update(EnrollmentTokenRow)
                .where(EnrollmentTokenRow.token_hash == token_hash,
                       EnrollmentTokenRow.used_at.is_(None),
                       EnrollmentTokenRow.expires_at > when)
                .values(used_at=when, agent_id=agent_id))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            environment = s.scalars(select(EnrollmentTokenRow.environment).where(
                EnrollmentTokenRow.token_hash == token_hash)).one()
            if _active(s, environment) >= MAX_AGENTS_PER_ENVIRONMENT:
                # Raising rolls the claim back: the token stays usable once one is revoked.
                raise AgentLimitReached(environment)
            row = AgentRow(id=agent_id, name=name, environment=environment, host=host,
                           version=version, enrolled_at=when, last_seen=when)
            s.add(row)
            if public_key:
                s.add(AgentKeyRow(agent_id=agent_id, public_key=public_key))
            return _info(row)

    def public_keys(self, environment: str) -> dict[str, str]:
        """Agent id -> PEM public key of the environment's active agents that have one
        (agents enrolled before keys were kept have none until they enroll again)."""
        with self._session() as s:
            rows = s.execute(select(AgentKeyRow.agent_id, AgentKeyRow.public_key)
                             .join(AgentRow, AgentRow.id == AgentKeyRow.agent_id)
                             .where(AgentRow.environment == environment,
                                    AgentRow.revoked_at.is_(None)))
            return dict(rows.tuples().all())

    def token_state(self, token_hash: str) -> str:
        """unknown | used | expired | valid: why an enrollment was refused, for the log."""
        with self._session() as s:
            row = s.scalars(select(EnrollmentTokenRow).where(
                EnrollmentTokenRow.token_hash == token_hash)).first()
            if row is None:
                return "unknown"
            if row.used_at is not None:
                return "used"
            return "expired" if _utc(row.expires_at) <= datetime.now(UTC) else "valid"

    def get(self, agent_id: str) -> AgentInfo | None:
        with self._session() as s:
            row = s.get(AgentRow, agent_id)
            return _info(row) if row else None

    def enrolled(self, environment: str | None = None) -> list[AgentInfo]:
        """Every enrolled agent (revoked ones too), of one environment or all."""
        with self._session() as s:
            query = select(AgentRow).order_by(AgentRow.environment, AgentRow.name,
                                              AgentRow.enrolled_at)
            if environment is not None:
                query = query.where(AgentRow.environment == environment)
            return [_info(r) for r in s.scalars(query)]

    def find(self, id_or_name: str) -> list[AgentInfo]:
        """The agent with this id, else the agents with this name (oldest first)."""
        with self._session() as s:
            return [_info(r) for r in _find(s, id_or_name)]

    def any_active(self, environment: str) -> bool:
        """Whether any agent that is not revoked was enrolled for `environment`."""
        with self._session() as s:
            return _active(s, environment) != 0

    def revoke(self, id_or_name: str) -> Revocation:
        """Revoke the agent with this id, else the one active agent with this name (else
        the oldest by that name, already revoked); several active ones revoke none."""
        with self._session.begin() as s:
            found = _find(s, id_or_name)
            active = [r for r in found if r.revoked_at is None]
            if len(active) > 1:
                return Revocation(None, same_name=tuple(map(_info, active)))
            if not found:
                return Revocation(None)
            target = (active or found)[0]
            if target.revoked_at is not None:
                return Revocation(_info(target), already_revoked=True)
            target.revoked_at = datetime.now(UTC)
            return Revocation(_info(target))

    def seen(self, agent_id: str, host: str, version: str) -> None:
        """Record a heartbeat: when, and the host and version the agent reported."""
        with self._session.begin() as s:
            s.execute(update(AgentRow).where(AgentRow.id == agent_id).values(
                last_seen=datetime.now(UTC), host=host, version=version))


def _find(s: Session, id_or_name: str) -> list[AgentRow]:
    row = s.get(AgentRow, id_or_name)
    if row is not None:
        return [row]
    return list(s.scalars(select(AgentRow).where(AgentRow.name == id_or_name)
                          .order_by(AgentRow.enrolled_at)))


def _active(s: Session, environment: str) -> int:
    return s.scalar(select(func.count()).select_from(AgentRow).where(
        AgentRow.environment == environment, AgentRow.revoked_at.is_(None))) or 0


def _info(row: AgentRow) -> AgentInfo:
    return AgentInfo(row.id, row.name, row.environment, row.host, row.version,
                     _utc(row.enrolled_at), row.last_seen and _utc(row.last_seen),
                     row.revoked_at and _utc(row.revoked_at))


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
