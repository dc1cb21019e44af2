"""Tables of the state store: joins, watermarks, inventory, runs, per-object results and
script steps, agents and their enrollment tokens, device migration. A class per table, named
for one of its rows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class JoinRow(Base):
    """A source object joined to its target object, per pair.

    status "pending" marks a create that was started but not confirmed: target_dn says where
    it was going, so a re-run after a crash adopts the object instead of creating it again.
    status "deleted" marks a target Ferry deleted: if the source object comes back, its
    target is restored from the directory's recycle bin where the directory has one.
    """

    __tablename__ = "joins"
    __table_args__ = (
        UniqueConstraint("pair", "source_anchor"),
        Index("ix_joins_pair_target", "pair", "target_anchor"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pair: Mapped[str] = mapped_column(String(300))
    source_anchor: Mapped[str] = mapped_column(String(100))
    target_anchor: Mapped[str | None] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(20))
    target_dn: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="joined")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WatermarkRow(Base):
    """Where the next changed-objects-only read of an environment starts, per workflow."""

    __tablename__ = "watermarks"
    __table_args__ = (UniqueConstraint("workflow", "environment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    workflow: Mapped[str] = mapped_column(String(300))
    environment: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))     # "dirsync" | "usn" | "deltaLink"
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class InventoryRow(Base):
    """One object discovery found in an environment: the inventory behind its object counts."""

    __tablename__ = "inventory"
    __table_args__ = (UniqueConstraint("environment", "anchor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    environment: Mapped[str] = mapped_column(String(300), index=True)
    anchor: Mapped[str] = mapped_column(String(100))
    object_type: Mapped[str] = mapped_column(String(20))


class RetryRow(Base):
    """A source object to process again on the next run, even if it did not change."""

    __tablename__ = "retries"
    __table_args__ = (UniqueConstraint("pair", "source_anchor"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    pair: Mapped[str] = mapped_column(String(300))
    source_anchor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)


class RunRow(Base):
    __tablename__ = "runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(300), index=True)
    mode: Mapped[str] = mapped_column(String(20))      # full | changed | test
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    message: Mapped[str] = mapped_column(Text, default="")
    counts: Mapped[dict[str, dict[str, int]]] = mapped_column(JSON, default=dict)


class ObjectResultRow(Base):
    __tablename__ = "object_results"

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    pair: Mapped[str] = mapped_column(String(300))
    object_type: Mapped[str] = mapped_column(String(20))
    source_anchor: Mapped[str | None] = mapped_column(String(100))
    target_dn: Mapped[str] = mapped_column(Text)
    operation: Mapped[str] = mapped_column(String(20))
    # ok | error | conflict | deferred | outOfScope
    outcome: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")


class ScriptRunRow(Base):
    """How one runScript step of a run went: where, result, exit code, time, output tail."""

    __tablename__ = "script_runs"
    __table_args__ = (UniqueConstraint("run_id", "step"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    step: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(63), default="")
    where: Mapped[str] = mapped_column(String(300))
    result: Mapped[str] = mapped_column(String(20))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    duration_seconds: Mapped[float | None] = mapped_column()
    output_tail: Mapped[str] = mapped_column(Text, default="")


class EnrollmentTokenRow(Base):
    """A single-use agent enrollment token for one environment; only its SHA-256 is kept."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    environment: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    agent_id: Mapped[str | None] = mapped_column(String(40))   # the agent it enrolled


class PasswordRouteRow(Base):
    """A pair whose source DC agents send password changes (DCAgent mode), as its workflow's
    last run published it: the gateway relays a change only along these."""

    __tablename__ = "password_routes"

    pair: Mapped[str] = mapped_column(String(700), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(300), index=True)
    source: Mapped[str] = mapped_column(String(300), index=True)
    target: Mapped[str] = mapped_column(String(300))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentKeyRow(Base):
    """An agent's public key (from its CSR): what secrets for it are sealed to. A table of its
    own, so state stores made before it gain it without a migration."""

    __tablename__ = "agent_keys"

    agent_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    public_key: Mapped[str] = mapped_column(Text)


class AgentRow(Base):
    """An enrolled on-premises agent; revoked_at set means every call of it is refused."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), index=True)
    environment: Mapped[str] = mapped_column(String(300), index=True)
    host: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(40), default="")
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# -- device migration (ferry.state.devices) ---------------------------------------------------

class DeviceTokenRow(Base):
    """A device enrollment token of one DeviceMigration; only its SHA-256 is kept. max_uses
    None: a wave token, good until revoked or expired; 1: single-use."""

    __tablename__ = "device_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    migration: Mapped[str] = mapped_column(String(300), index=True)    # "ns/name"
    max_uses: Mapped[int | None] = mapped_column(Integer)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeviceAgentRow(Base):
    """An enrolled device agent (one workstation); its public key is in agent_keys."""

    __tablename__ = "device_agents"
    __table_args__ = (Index("ix_device_agents_migration_name", "migration", "name"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)   # "device-<hex>"
    migration: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(64))                   # computer name, upper
    host: Mapped[str] = mapped_column(String(255), default="")
    version: Mapped[str] = mapped_column(String(40), default="")
    os: Mapped[str] = mapped_column(String(20), default="")
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    facts: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    enrolled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DevicePlanRow(Base):
    """What the controller wants one device to do (its actions, in order), per generation."""

    __tablename__ = "device_plans"

    migration: Mapped[str] = mapped_column(String(300), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    wave: Mapped[str] = mapped_column(String(100))
    generation: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(10))          # run | paused
    source: Mapped[str] = mapped_column(String(300))
    target: Mapped[str] = mapped_column(String(300))
    actions: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    sid_table_version: Mapped[str] = mapped_column(String(100), default="")
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceResultRow(Base):
    """One action's result as a device reported it, once per generation."""

    __tablename__ = "device_results"

    migration: Mapped[str] = mapped_column(String(300), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    ok: Mapped[bool] = mapped_column()
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceSecretRow(Base):
    """A staged machine secret, sealed to the device's key (ciphertext only), until the
    action that uses it is recorded ok."""

    __tablename__ = "device_secrets"

    migration: Mapped[str] = mapped_column(String(300), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    action_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    sealed: Mapped[dict[str, str]] = mapped_column(JSON)
    dn: Mapped[str] = mapped_column(Text, default="")
    staged_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeviceLogRow(Base):
    """The last log a device uploaded (its last MAX_LOG_BYTES)."""

    __tablename__ = "device_logs"

    migration: Mapped[str] = mapped_column(String(300), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)          # bytes of text, UTF-8
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SidTableRow(Base):
    """A migration's SID translation table (source SID -> target SID), as its devices get it."""

    __tablename__ = "sid_tables"

    migration: Mapped[str] = mapped_column(String(300), primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    entries: Mapped[dict[str, str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class SidTranslationRow(Base):
    """A joined user or group's SIDs in the source and the target, per pair (sync runs)."""

    __tablename__ = "sid_translations"

    pair: Mapped[str] = mapped_column(String(300), primary_key=True)
    source_anchor: Mapped[str] = mapped_column(String(100), primary_key=True)
    object_type: Mapped[str] = mapped_column(String(20))
    source_sid: Mapped[str] = mapped_column(String(200))
    target_sid: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DiscoveredDeviceRow(Base):
    """A computer account discovery found in an environment."""

    __tablename__ = "discovered_devices"

    environment: Mapped[str] = mapped_column(String(300), primary_key=True)
    anchor: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))       # sAMAccountName without $, upper
    dn: Mapped[str] = mapped_column(Text)
    os: Mapped[str] = mapped_column(String(200), default="")
