"""Device migration: device agents and their enrollment tokens, the controller's plans, the
devices' results, staged machine secrets (ciphertext), uploaded logs and SID tables; and what
sync runs and discovery keep for it (SID translations of joined objects, computer accounts)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, Row, and_, bindparam, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ferry.state.joins import chunks
from ferry.state.rows import (
    DeviceAgentInfo,
    DevicePlan,
    DeviceProgress,
    DeviceResult,
    DeviceSecret,
    DiscoveredDevice,
    MigrationSidTable,
    PlannedAction,
    SidTranslationTable,
    StageRequest,
)
from ferry.state.schema import (
    AgentKeyRow,
    DeviceAgentRow,
    DeviceLogRow,
    DevicePlanRow,
    DeviceResultRow,
    DeviceSecretRow,
    DeviceTokenRow,
    DiscoveredDeviceRow,
    SidTableRow,
    SidTranslationRow,
)

MAX_LOG_BYTES = 1 << 20          # a device's log as kept: its last MiB
MAX_MESSAGE_CHARS = 2000         # a result's message as kept
MAX_DETAILS_BYTES = 64 << 10     # a result's details as kept (JSON)


@dataclass(frozen=True)
class Devices:
    _session: sessionmaker[Session]

    # -- enrollment -----------------------------------------------------------------------

    def add_token(self, token_hash: str, migration: str, max_uses: int | None,
                  expires_at: datetime) -> None:
        """Keep a device token's SHA-256 (never the token): max_uses None until revoked or
        expired (a wave token), 1 for a single device."""
        with self._session.begin() as s:
            s.add(DeviceTokenRow(token_hash=token_hash, migration=migration, max_uses=max_uses,
                                 uses=0, created_at=datetime.now(UTC), expires_at=expires_at))

    def revoke_tokens(self, migration: str) -> int:
        """Revoke every live token of the migration; how many were."""
        with self._session.begin() as s:
            done = s.execute(update(DeviceTokenRow).where(
                DeviceTokenRow.migration == migration, DeviceTokenRow.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC)))
            return int(done.rowcount)  # type: ignore[attr-defined]

    def token_state(self, token_hash: str) -> str:
        """unknown | revoked | used | expired | valid: why an enrollment was refused."""
        with self._session() as s:
            row = s.get(DeviceTokenRow, token_hash)
            if row is None:
                return "unknown"
            if row.revoked_at is not None:
                return "revoked"
            if row.max_uses is not None and row.uses >= row.max_uses:
                return "used"
            return "expired" if _utc(row.expires_at) <= datetime.now(UTC) else "valid"

    def enroll(self, token_hash: str, agent_id: str, name: str, host: str, version: str,
               os: str, labels: Mapping[str, str], public_key: str) -> DeviceAgentInfo | None:
        """Use a token for a new device agent of its migration; None when it is unknown,
        revoked, used up or expired. One conditional UPDATE counts the use, so concurrent
        enrollments never use a token more than it allows. An earlier enrollment of the same
        computer name in that migration is revoked (a re-imaged workstation)."""
        when = datetime.now(UTC)
        with self._session.begin() as s:
            claimed = s.execute(
                update(DeviceTokenRow)
                .where(DeviceTokenRow.token_hash == token_hash,
                       DeviceTokenRow.revoked_at.is_(None),
                       DeviceTokenRow.expires_at > when,
                       or_(DeviceTokenRow.max_uses.is_(None),
                           DeviceTokenRow.uses < DeviceTokenRow.max_uses))
                .values(uses=DeviceTokenRow.uses + 1))
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return None
            migration = s.scalars(select(DeviceTokenRow.migration).where(
                DeviceTokenRow.token_hash == token_hash)).one()
            s.execute(update(DeviceAgentRow).where(
                DeviceAgentRow.migration == migration, DeviceAgentRow.name == name,
                DeviceAgentRow.revoked_at.is_(None)).values(revoked_at=when))
            row = DeviceAgentRow(id=agent_id, migration=migration, name=name, host=host,
                                 version=version, os=os, labels=dict(labels), facts={},
                                 enrolled_at=when, last_seen=when)
            s.add(row)
            s.add(AgentKeyRow(agent_id=agent_id, public_key=public_key))
            return _agent(row)

    # -- device agents --------------------------------------------------------------------

    def get(self, agent_id: str) -> DeviceAgentInfo | None:
        with self._session() as s:
            row = s.get(DeviceAgentRow, agent_id)
            return _agent(row) if row else None

    def public_key(self, agent_id: str) -> str | None:
        """The device agent's PEM public key: what its machine secrets are sealed to."""
        with self._session() as s:
            return s.scalar(select(AgentKeyRow.public_key).where(
                AgentKeyRow.agent_id == agent_id))

    def agents(self, migration: str) -> list[DeviceAgentInfo]:
        """Every device agent of the migration (revoked ones too), by name, oldest first."""
        with self._session() as s:
            return [_agent(r) for r in s.scalars(
                select(DeviceAgentRow).where(DeviceAgentRow.migration == migration)
                .order_by(DeviceAgentRow.name, DeviceAgentRow.enrolled_at))]

    def seen(self, agent_id: str, facts: Mapping[str, str]) -> None:
        """Record a device's contact and the facts it reported."""
        with self._session.begin() as s:
            s.execute(update(DeviceAgentRow).where(DeviceAgentRow.id == agent_id).values(
                last_seen=datetime.now(UTC), facts=dict(facts)))

    def seen_at(self, contacts: Mapping[str, datetime]) -> None:
        """Record many devices' last contacts (agent id -> when) in one transaction."""
        if not contacts:
            return
        with self._session.begin() as s:  # on the connection: one executemany, no ORM
            s.connection().execute(
                update(DeviceAgentRow).where(DeviceAgentRow.id == bindparam("agent"))
                .values(last_seen=bindparam("when")),
                [{"agent": a, "when": w} for a, w in contacts.items()])

    def poll(self, agent_id: str, facts: Mapping[str, str] | None = None
             ) -> tuple[DeviceAgentInfo, DeviceProgress] | None:
        """A runbook poll's reads in one transaction: the device agent and its progress; None
        when it is unknown or revoked. `facts` given: they are recorded with its contact."""
        with self._session.begin() as s:
            connection = s.connection()
            row = connection.execute(_POLL, {"agent": agent_id}).first()
            if row is None or row.revoked_at is not None:
                return None
            device = _agent(row)
            if facts is not None:
                connection.execute(_FACTS, {"agent": agent_id, "facts": dict(facts),
                                            "when": datetime.now(UTC)})
            plan = None if row.generation is None else DevicePlan(
                device.migration, device.name, row.wave, row.generation, row.state,
                row.source, row.target, tuple(_action(a) for a in row.actions),
                row.sid_table_version)
            return device, _with_results(connection, plan, row.table_version)

    # -- plans (written by the controller) and what the gateway computes a runbook from ---

    def set_plans(self, migration: str, plans: Sequence[DevicePlan]) -> None:
        """Make these the migration's plans: upserted by device, the devices not among them
        dropped, and staged secrets of other devices or generations deleted."""
        now = datetime.now(UTC)
        wanted = {p.device: p for p in plans}
        strays = sorted({p.migration for p in plans} - {migration})
        if strays:
            raise ValueError(f"set_plans({migration!r}): plans of {', '.join(strays)} given")
        with self._session.begin() as s:
            rows = {r.device: r for r in s.scalars(
                select(DevicePlanRow).where(DevicePlanRow.migration == migration))}
            for device, plan in wanted.items():
                row = rows.get(device)
                if row is None:
                    row = DevicePlanRow(migration=migration, device=device)
                    s.add(row)
                values = (plan.wave, plan.generation, plan.state, plan.source, plan.target,
                          [_action_json(a) for a in plan.actions], plan.sid_table_version)
                # The controller writes every plan on every pass: unchanged ones stay as
                # they are, so a pass over 10,000 quiet devices writes nothing.
                if values == (row.wave, row.generation, row.state, row.source, row.target,
                              row.actions, row.sid_table_version):
                    continue
                (row.wave, row.generation, row.state, row.source, row.target, row.actions,
                 row.sid_table_version) = values
                row.updated_at = now
            for device, row in rows.items():
                if device not in wanted:
                    s.delete(row)
            stale = [(d, g, a) for d, g, a in s.execute(
                select(DeviceSecretRow.device, DeviceSecretRow.generation,
                       DeviceSecretRow.action_id)
                .where(DeviceSecretRow.migration == migration)).tuples()
                if d not in wanted or wanted[d].generation != g]
            for device, generation, action_id in stale:
                s.execute(delete(DeviceSecretRow).where(*_secret_key(
                    migration, device, generation, action_id)))

    def plans(self, migration: str) -> list[DevicePlan]:
        with self._session() as s:
            return [_plan(r) for r in s.scalars(select(DevicePlanRow).where(
                DevicePlanRow.migration == migration).order_by(DevicePlanRow.device))]

    def progress(self, migration: str, device: str) -> DeviceProgress:
        """The device's plan with its generation's results and staged secrets, and the
        version of the migration's SID table: all a runbook is computed from."""
        with self._session() as s:
            return _progress(s.connection(), migration, device)

    # -- results, secrets, logs (written by the gateway) -----------------------------------

    def record_result(self, result: DeviceResult) -> bool:
        """Keep a device's result for (generation, action id), and drop the action's staged
        secret once it is ok; False for a repeat, which changes nothing."""
        migration = result.migration
        try:
            with self._session.begin() as s:
                s.add(DeviceResultRow(
                    migration=migration, device=result.device, generation=result.generation,
                    action_id=result.action_id, ok=result.ok,
                    message=result.message[:MAX_MESSAGE_CHARS],
                    details=_bounded(result.details or {}), attempt=result.attempt,
                    started_at=result.started_at, finished_at=result.finished_at,
                    recorded_at=datetime.now(UTC)))
                s.flush()  # a repeat fails here, before the secret goes
                if result.ok:
                    s.execute(delete(DeviceSecretRow).where(*_secret_key(
                        migration, result.device, result.generation, result.action_id)))
        except IntegrityError:
            return False
        return True

    def results(self, migration: str) -> list[DeviceResult]:
        """Every result of the migration, by device, generation and when recorded."""
        with self._session() as s:
            return [_result(r) for r in s.scalars(
                select(DeviceResultRow).where(DeviceResultRow.migration == migration)
                .order_by(DeviceResultRow.device, DeviceResultRow.generation,
                          DeviceResultRow.recorded_at))]

    def keep_secret(self, migration: str, device: str, generation: int, action_id: str,
                    secret: DeviceSecret) -> None:
        """Keep a staged secret's ciphertext for the action (replacing an earlier one)."""
        with self._session.begin() as s:
            s.merge(DeviceSecretRow(migration=migration, device=device, generation=generation,
                                    action_id=action_id, sealed=dict(secret.sealed),
                                    dn=secret.dn, staged_at=datetime.now(UTC)))

    def store_log(self, migration: str, device: str, text: str) -> int:
        """Keep the device's log (its last MAX_LOG_BYTES); the bytes kept."""
        data = text.encode("utf-8", "replace")[-MAX_LOG_BYTES:]
        kept = data.decode("utf-8", "ignore")  # a character cut in two at the start goes
        with self._session.begin() as s:
            s.merge(DeviceLogRow(migration=migration, device=device, text=kept,
                                 size=len(kept.encode("utf-8")),
                                 uploaded_at=datetime.now(UTC)))
        return len(kept.encode("utf-8"))

    def logs_size(self, migration: str, device: str) -> int | None:
        """The bytes of the device's last uploaded log; None when it uploaded none."""
        with self._session() as s:
            return s.scalar(select(DeviceLogRow.size).where(
                DeviceLogRow.migration == migration, DeviceLogRow.device == device))

    def log(self, migration: str, device: str) -> str | None:
        with self._session() as s:
            return s.scalar(select(DeviceLogRow.text).where(
                DeviceLogRow.migration == migration, DeviceLogRow.device == device))

    # -- the migration's SID table ------------------------------------------------------------

    def set_sid_table(self, migration: str, version: str, entries: Mapping[str, str]) -> None:
        with self._session.begin() as s:
            s.merge(SidTableRow(migration=migration, version=version, entries=dict(entries),
                                updated_at=datetime.now(UTC)))

    def sid_table(self, migration: str) -> MigrationSidTable | None:
        with self._session() as s:
            row = s.get(SidTableRow, migration)
            return MigrationSidTable(row.version, dict(row.entries)) if row else None


class Translation(Protocol):
    """One joined object's SIDs (ferry.engine.migration.SidTranslation is one)."""

    @property
    def object_type(self) -> str: ...
    @property
    def source_sid(self) -> str: ...
    @property
    def target_sid(self) -> str: ...


@dataclass(frozen=True)
class SidTranslations:
    """Source and target SIDs of joined users and groups, per pair, as sync runs found them."""

    _session: sessionmaker[Session]

    def update(self, pair: str,
               translations: Mapping[str, tuple[str, str, str] | Translation]) -> int:
        """Upsert {source anchor: (object type, source SID, target SID)}, writing only what
        changed; how many rows were written."""
        now = datetime.now(UTC)
        written = 0
        with self._session.begin() as s:
            for chunk in chunks(translations):
                rows = {r.source_anchor: r for r in s.scalars(select(SidTranslationRow).where(
                    SidTranslationRow.pair == pair,
                    SidTranslationRow.source_anchor.in_(chunk)))}
                for anchor in chunk:
                    object_type, source_sid, target_sid = _sids(translations[anchor])
                    row = rows.get(anchor)
                    if row is not None and (row.object_type, row.source_sid,
                                            row.target_sid) == (object_type, source_sid,
                                                                target_sid):
                        continue
                    if row is None:
                        row = SidTranslationRow(pair=pair, source_anchor=anchor)
                        s.add(row)
                    row.object_type, row.source_sid, row.target_sid = (object_type, source_sid,
                                                                       target_sid)
                    row.updated_at = now
                    written += 1
        return written

    def remove(self, pair: str, anchors: Iterable[str]) -> None:
        with self._session.begin() as s:
            for chunk in chunks(anchors):
                s.execute(delete(SidTranslationRow).where(
                    SidTranslationRow.pair == pair, SidTranslationRow.source_anchor.in_(chunk)))

    def table(self, pairs: Iterable[str]) -> SidTranslationTable:
        """source SID -> target SID over the pairs; a source SID with two target SIDs is a
        conflict, left out of the table and listed with its targets."""
        targets: dict[str, set[str]] = {}
        with self._session() as s:
            for chunk in chunks(pairs):
                for source_sid, target_sid in s.execute(
                        select(SidTranslationRow.source_sid, SidTranslationRow.target_sid)
                        .where(SidTranslationRow.pair.in_(chunk))).tuples():
                    targets.setdefault(source_sid, set()).add(target_sid)
        return SidTranslationTable(
            {src: next(iter(tgt)) for src, tgt in targets.items() if len(tgt) == 1},
            {src: tuple(sorted(tgt)) for src, tgt in targets.items() if len(tgt) > 1})


@dataclass(frozen=True)
class DiscoveredDevices:
    """Computer accounts discovery found, per environment."""

    _session: sessionmaker[Session]

    def update(self, environment: str, found: Mapping[str, tuple[str, str, str]],
               deleted: Iterable[str] = (), replace: bool = False) -> None:
        """Upsert {anchor: (name, dn, os)}, drop `deleted`; `replace` (a full discovery)
        also drops every device of the environment not in `found`."""
        with self._session.begin() as s:
            rows = {r.anchor: r for r in s.scalars(select(DiscoveredDeviceRow).where(
                DiscoveredDeviceRow.environment == environment))}
            for anchor, (name, dn, os) in found.items():
                row = rows.get(anchor)
                if row is None:
                    row = DiscoveredDeviceRow(environment=environment, anchor=anchor)
                    s.add(row)
                row.name, row.dn, row.os = name.upper(), dn, os
            gone = set(deleted) | ({a for a in rows if a not in found} if replace else set())
            for anchor in gone:
                if anchor in rows and anchor not in found:
                    s.delete(rows[anchor])

    def find(self, environment: str) -> list[DiscoveredDevice]:
        with self._session() as s:
            return [DiscoveredDevice(r.anchor, r.name, r.dn, r.os)
                    for r in s.scalars(select(DiscoveredDeviceRow).where(
                        DiscoveredDeviceRow.environment == environment)
                        .order_by(DiscoveredDeviceRow.name))]


# Built once: a runbook poll runs them, and building and keying a statement costs more than
# SQLite takes to answer it.
_POLL = (select(DeviceAgentRow.id, DeviceAgentRow.migration, DeviceAgentRow.name,
                DeviceAgentRow.os, DeviceAgentRow.labels, DeviceAgentRow.enrolled_at,
                DeviceAgentRow.last_seen, DeviceAgentRow.revoked_at, DeviceAgentRow.facts,
                DeviceAgentRow.host, DeviceAgentRow.version, DevicePlanRow.wave,
                DevicePlanRow.generation, DevicePlanRow.state, DevicePlanRow.source,
                DevicePlanRow.target, DevicePlanRow.actions, DevicePlanRow.sid_table_version,
                SidTableRow.version.label("table_version"))
         .select_from(DeviceAgentRow)
         .outerjoin(DevicePlanRow, and_(DevicePlanRow.migration == DeviceAgentRow.migration,
                                        DevicePlanRow.device == DeviceAgentRow.name))
         .outerjoin(SidTableRow, SidTableRow.migration == DeviceAgentRow.migration)
         .where(DeviceAgentRow.id == bindparam("agent")))
_FACTS = update(DeviceAgentRow).where(DeviceAgentRow.id == bindparam("agent")).values(
    facts=bindparam("facts"), last_seen=bindparam("when"))
_SID_VERSION = select(SidTableRow.version).where(SidTableRow.migration == bindparam("migration"))
_PLAN = select(DevicePlanRow.migration, DevicePlanRow.device, DevicePlanRow.wave,
               DevicePlanRow.generation, DevicePlanRow.state, DevicePlanRow.source,
               DevicePlanRow.target, DevicePlanRow.actions, DevicePlanRow.sid_table_version
               ).where(DevicePlanRow.migration == bindparam("migration"),
                       DevicePlanRow.device == bindparam("device"))
_RESULTS = select(DeviceResultRow.migration, DeviceResultRow.device, DeviceResultRow.generation,
                  DeviceResultRow.action_id, DeviceResultRow.ok, DeviceResultRow.message,
                  DeviceResultRow.attempt, DeviceResultRow.finished_at,
                  DeviceResultRow.recorded_at, DeviceResultRow.details,
                  DeviceResultRow.started_at
                  ).where(DeviceResultRow.migration == bindparam("migration"),
                          DeviceResultRow.device == bindparam("device"),
                          DeviceResultRow.generation == bindparam("generation"))
_SECRETS = select(DeviceSecretRow.action_id, DeviceSecretRow.sealed, DeviceSecretRow.dn).where(
    DeviceSecretRow.migration == bindparam("migration"),
    DeviceSecretRow.device == bindparam("device"),
    DeviceSecretRow.generation == bindparam("generation"))


def _progress(connection: Connection, migration: str, device: str) -> DeviceProgress:
    key = {"migration": migration, "device": device}
    version = connection.execute(_SID_VERSION, key).scalar()
    row = connection.execute(_PLAN, key).first()
    return _with_results(connection, _plan(row) if row is not None else None, version)


def _with_results(connection: Connection, plan: DevicePlan | None,
                  version: str | None) -> DeviceProgress:
    """The progress of `plan`: its generation's results and staged secrets."""
    if plan is None:
        return DeviceProgress(None, {}, {}, version)
    key = {"migration": plan.migration, "device": plan.device, "generation": plan.generation}
    results = {r.action_id: _result(r) for r in connection.execute(_RESULTS, key)}
    secrets = {r.action_id: DeviceSecret(dict(r.sealed), r.dn)
               for r in connection.execute(_SECRETS, key)}
    return DeviceProgress(plan, results, secrets, version)


# -- rows to values ----------------------------------------------------------------------------

def _agent(row: DeviceAgentRow | Row[Any]) -> DeviceAgentInfo:
    return DeviceAgentInfo(row.id, row.migration, row.name, row.os, dict(row.labels or {}),
                           _utc(row.enrolled_at), row.last_seen and _utc(row.last_seen),
                           row.revoked_at and _utc(row.revoked_at), dict(row.facts or {}),
                           row.host, row.version)


def _plan(row: DevicePlanRow | Row[Any]) -> DevicePlan:
    return DevicePlan(row.migration, row.device, row.wave, row.generation, row.state,
                      row.source, row.target, tuple(_action(a) for a in row.actions),
                      row.sid_table_version)


def _result(row: DeviceResultRow | Row[Any]) -> DeviceResult:
    return DeviceResult(row.migration, row.device, row.generation, row.action_id, row.ok,
                        row.message, row.attempt, _utc(row.finished_at or row.recorded_at),
                        dict(row.details or {}), row.started_at and _utc(row.started_at))


_STAGE_FIELDS = (("environment", "environment"), ("mode", "mode"), ("ou", "ou"),
                 ("dns_domain", "dnsDomain"), ("domain_controller", "domainController"),
                 ("name", "name"))


def _action_json(action: PlannedAction) -> dict[str, Any]:
    """The stored form of a planned action: the one of the design's plan contract."""
    stage = None if action.stage is None else {
        key: getattr(action.stage, attribute) for attribute, key in _STAGE_FIELDS}
    return {"id": action.id, "action": action.action, "arguments": dict(action.arguments),
            "notBefore": action.not_before.astimezone(UTC).isoformat()
            if action.not_before else None, "stage": stage}


def _action(data: Mapping[str, Any]) -> PlannedAction:
    stage = data.get("stage")
    not_before = data.get("notBefore")
    return PlannedAction(
        str(data["id"]), str(data["action"]), dict(data.get("arguments") or {}),
        datetime.fromisoformat(not_before) if not_before else None,
        StageRequest(**{attribute: str(stage.get(key, "")) for attribute, key in _STAGE_FIELDS})
        if stage else None)


def _sids(value: tuple[str, str, str] | Translation) -> tuple[str, str, str]:
    if isinstance(value, tuple):
        return value
    return str(value.object_type), value.source_sid, value.target_sid


def _secret_key(migration: str, device: str, generation: int, action_id: str) -> list[Any]:
    return [DeviceSecretRow.migration == migration, DeviceSecretRow.device == device,
            DeviceSecretRow.generation == generation, DeviceSecretRow.action_id == action_id]


def _bounded(details: Mapping[str, object]) -> dict[str, object]:
    size = len(json.dumps(details, default=str))
    if size <= MAX_DETAILS_BYTES:
        return dict(details)
    return {"truncated": f"the details were {size} bytes, more than the"
                         f" {MAX_DETAILS_BYTES} kept"}


def _utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)
