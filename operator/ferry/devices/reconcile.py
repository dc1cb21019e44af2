"""One pass over a DeviceMigration: check what it names, write each device's plan and the
SID table into the state store, and work out its status and Events. Shared by the operator
(which patches the status and posts the Events) and `ferry devices run` (which prints them)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ferry.api.conditions import (
    ConditionType,
    Reason,
    Signal,
    get_condition,
    set_condition,
    set_kstatus,
)
from ferry.api.devicemigration import DeviceAction, DeviceMigration, DeviceMigrationSpec
from ferry.api.environment import ConnectionMode, Environment
from ferry.api.events import EventReason, EventType
from ferry.api.status import ConditionStatus, DeviceMigrationStatus, DevicePhase, MigrationPhase
from ferry.api.workflow import Workflow
from ferry.devices.plans import (
    DeviceRequests,
    Directories,
    decide_plan,
    failed_now,
    migration_key,
)
from ferry.devices.progress import progress
from ferry.devices.selection import select
from ferry.secrets import SecretError, SecretSource
from ferry.state.rows import DeviceAgentInfo, DevicePlan, DeviceSecret
from ferry.state.store import StateStore
from ferry.sync.pairs import pair_key
from ferry_agent.dn import DNError, dns_domain
from ferry_agent.sealed import Recipient, device_binding, seal

RETRY_ANNOTATION = "ferry.dev/retry-devices"        # "WS1,WS2" (or "*": every failed one)
ROLLBACK_ANNOTATION = "ferry.dev/rollback-devices"  # "WS2": roll these devices back
MAX_UNSELECTED = 20


@dataclass(frozen=True)
class Notice:
    """An Event to post (or a line `ferry devices run` prints)."""

    type: EventType
    reason: EventReason | Reason
    message: str


@dataclass
class Outcome:
    status: DeviceMigrationStatus
    notices: list[Notice] = field(default_factory=list)


def problems(spec: DeviceMigrationSpec, environments: Mapping[str, Environment],
             workflow: Workflow | None) -> list[str]:
    """What keeps the DeviceMigration from running: each names the field and the fix."""
    found = []
    for role in ("source", "target"):
        name = getattr(spec, role)
        env = environments.get(name)
        if env is None:
            found.append(f"spec.{role}: Environment {name} does not exist; create it or"
                         " name an existing Environment")
        elif env.spec.active_directory is None:
            found.append(f"spec.{role}: Environment {name} is not Active Directory; devices"
                         " move between AD domains")
    if workflow is None:
        found.append(f"spec.workflow: Workflow {spec.workflow} does not exist; name the"
                     f" Workflow whose stageData pair syncs {spec.source} -> {spec.target}")
    elif not _pairs(spec, workflow):
        found.append(f"spec.workflow: Workflow {spec.workflow} has no stageData pair"
                     f" {spec.source} -> {spec.target}, so it matches no users or groups to"
                     " translate SIDs with")
    target = environments.get(spec.target)
    joins = {DeviceAction.DOMAIN_JOIN, DeviceAction.OFFLINE_DOMAIN_JOIN}
    if target is not None and joins & set(spec.actions) \
            and target.spec.connection is not ConnectionMode.AGENT:
        found.append(f"spec.target: Environment {spec.target} has connection"
                     f" {target.spec.connection.value}; staging computer accounts for a join"
                     " needs its agents (connection: agent)")
    source = environments.get(spec.source)
    if source is not None and not spec.options.keep_source_account \
            and source.spec.connection is not ConnectionMode.AGENT:
        found.append("spec.options.keepSourceAccount: false needs the source Environment's"
                     f" agents to disable the accounts; {spec.source} has connection"
                     f" {source.spec.connection.value}")
    return found


def _pairs(spec: DeviceMigrationSpec, workflow: Workflow) -> list[str]:
    return [pair_key(workflow.metadata.name, p.source, p.target)
            for _, step in workflow.spec.steps_of("stageData") if step.stage_data
            for p in step.stage_data.pairs
            if p.source == spec.source and p.target == spec.target]


def _directories(spec: DeviceMigrationSpec, environments: Mapping[str, Environment],
                 entries: Mapping[str, str]) -> Directories:
    target = environments[spec.target].spec.active_directory
    source_env = environments[spec.source]
    source = source_env.spec.active_directory
    assert target is not None and source is not None
    return Directories(
        source=spec.source, target=spec.target, target_dns_domain=_domain(target.base_dn),
        target_domain_controller=target.host,
        target_computers_ou=f"CN=Computers,{target.base_dn}",
        source_domains=tuple(sorted({sid.rsplit("-", 1)[0] for sid in entries})),
        source_dns_domain=_domain(source.base_dn), source_domain_controller=source.host,
        source_computers_ou=f"CN=Computers,{source.base_dn}",
        source_agents=source_env.spec.connection is ConnectionMode.AGENT)


def _domain(base_dn: str) -> str:
    try:
        return dns_domain(base_dn)
    except DNError:   # the Environment's own check names it
        return ""


def _names(value: str | None) -> set[str]:
    """The device names of a request annotation: its first word, names split by commas."""
    words = (value or "").split()
    return {n.strip().upper() for n in words[0].split(",") if n.strip()} if words else set()


def reconcile(migration: DeviceMigration, environments: Mapping[str, Environment],
              workflow: Workflow | None, store: StateStore, now: datetime,
              secrets: SecretSource | None = None) -> Outcome:
    """Plans and SID table into the store; the status and notices out. `secrets` reads an
    EntraJoin's provisioning package (only then)."""
    meta, spec = migration.metadata, migration.spec
    previous = migration.status or DeviceMigrationStatus()
    status = previous.model_copy(deep=True)
    status.observed_generation = meta.generation
    outcome = Outcome(status)
    found = problems(spec, environments, workflow)
    if found:
        set_condition(status, ConditionType.READY, False, Reason.INVALID_REFERENCE,
                      "; ".join(found), meta.generation, now)
        set_kstatus(status, None, Signal(Reason.INVALID_REFERENCE, "; ".join(found)),
                    meta.generation, now)
        if not _was(previous, ConditionType.READY, Reason.INVALID_REFERENCE):
            outcome.notices.append(Notice(EventType.WARNING, Reason.INVALID_REFERENCE,
                                          "; ".join(found)))
        return outcome
    assert workflow is not None
    key = migration_key(meta.namespace or "default", meta.name)
    table = store.sid_translations.table(_pairs(spec, workflow))
    version = hashlib.sha256(json.dumps(table.entries, sort_keys=True).encode()).hexdigest()[:16]
    kept = store.devices.sid_table(key)
    if kept is None or kept.version != version:
        store.devices.set_sid_table(key, version, table.entries)
    dirs = _directories(spec, environments, table.entries)
    agents = store.devices.agents(key)
    discovered = store.discovered_devices.find(spec.source) if any(
        w.ous for w in spec.waves) else []
    devices, unselected = select(spec.waves, agents, discovered)
    plans = {p.device: p for p in store.devices.plans(key)}
    results: dict[str, list] = {}
    for result in store.devices.results(key):
        results.setdefault(result.device, []).append(result)
    retry_value = meta.annotations.get(RETRY_ANNOTATION)
    retry = _names(retry_value) if retry_value != previous.handled_retry else set()
    rollback = _names(meta.annotations.get(ROLLBACK_ANNOTATION))
    retries = {d.name: d.retries for d in previous.devices}
    waves = {w.name: w for w in spec.waves}
    new_plans = []
    refusals: dict[str, str] = {}
    for device in devices:
        wave = waves[device.wave]
        old = plans.get(device.name)
        mine = results.get(device.name, [])
        wants_retry = device.name in retry or ("*" in retry and old is not None
                                               and failed_now(old, mine) is not None)
        decision = decide_plan(key, spec, dirs, device, wave.cutover,
                               spec.paused or wave.paused, old, mine,
                               DeviceRequests(retry=wants_retry,
                                              rollback=device.name in rollback), version)
        if old is not None and decision.plan.generation > old.generation \
                and device.name not in rollback:
            retries[device.name] = retries.get(device.name, 0) + 1
            outcome.notices.append(Notice(EventType.NORMAL, EventReason.DEVICE_RETRIED,
                                          f"device {device.name}: retrying"))
        if decision.refusal:
            refusals[device.name] = decision.refusal
            # Posted once: the device's message keeps the refusal while the request stands.
            if not any(d.name == device.name and decision.refusal in (d.message or "")
                       for d in previous.devices):
                outcome.notices.append(Notice(EventType.WARNING, EventReason.ROLLBACK_REFUSED,
                                              decision.refusal))
        if device.agent is not None:
            new_plans.append(decision.plan)
            plans[device.name] = decision.plan
    store.devices.set_plans(key, new_plans)
    unsealed = _seal_packages(migration, key, new_plans, agents, store, secrets) \
        if DeviceAction.ENTRA_JOIN in spec.actions else None
    status.handled_retry = retry_value
    shown = progress(spec, dirs, devices, plans, results, retries, now)
    for shown_device in shown.devices:
        refusal = refusals.get(shown_device.name)
        if refusal:
            shown_device.message = "; ".join(filter(None, (shown_device.message, refusal)))
    _announce(previous, shown.devices, outcome)
    status.devices = shown.devices
    status.waves = shown.waves
    status.phase = shown.phase
    status.devices_done, status.devices_failed = shown.done, shown.failed
    status.devices_rolled_back, status.devices_total = shown.rolled_back, shown.total
    status.progress, status.current_wave = shown.text, shown.current_wave
    status.sid_translations = len(table.entries)
    status.unmatched_devices = unselected[:MAX_UNSELECTED]
    set_condition(status, ConditionType.READY, True, Reason.VALID,
                  f"{len(devices)} devices in {len(spec.waves)} waves; SID table of"
                  f" {len(table.entries)} users and groups"
                  + (f" ({len(table.conflicts)} source SIDs left out: joined to more than one"
                     " target)" if table.conflicts else ""), meta.generation, now)
    if unsealed:   # the devices wait at EntraJoin; everything else goes on
        set_condition(status, ConditionType.READY, False, Reason.SECRET_UNAVAILABLE,
                      unsealed, meta.generation, now)
        if not _was(previous, ConditionType.READY, Reason.SECRET_UNAVAILABLE):
            outcome.notices.append(Notice(EventType.WARNING, Reason.SECRET_UNAVAILABLE,
                                          unsealed))
    _progressing(status, shown.phase, meta.generation, now, outcome, previous)
    return outcome


def _seal_packages(migration: DeviceMigration, key: str, plans: list[DevicePlan],
                   agents: list[DeviceAgentInfo], store: StateStore,
                   secrets: SecretSource | None) -> str | None:
    """Seal the provisioning package to each device whose EntraJoin lacks it (the gateway
    cannot read Secrets; only ciphertext is kept); why it could not be read, if so."""
    options = migration.spec.options.entra_join
    assert options is not None   # the spec's own check
    by_name = {a.name: a for a in agents if not a.revoked}
    waiting = []
    for plan in plans:
        action = next((a for a in plan.actions if a.action == DeviceAction.ENTRA_JOIN), None)
        progress_ = store.devices.progress(key, plan.device) if action else None
        if action is None or progress_ is None or action.id in progress_.secrets \
                or action.id in progress_.results:
            continue
        waiting.append((plan, action.id))
    if not waiting:
        return None
    where = f"DeviceMigration/{migration.metadata.name}: spec.options.entraJoin.package"
    if secrets is None:
        return f"{where}: no Secrets can be read here"
    try:
        package = base64.b64decode(secrets.resolve(options.package, where), validate=True)
    except SecretError as exc:
        return str(exc)
    except ValueError:
        return f"{where}: not base64; encode the .ppkg with `base64 -w0`"
    for plan, action_id in waiting:
        agent = by_name.get(plan.device)
        pem = store.devices.public_key(agent.id) if agent else None
        if pem is None:
            continue
        sealed = seal(package, [Recipient.from_pem(pem)], device_binding(plan.device))
        store.devices.keep_secret(key, plan.device, plan.generation, action_id,
                                  DeviceSecret(sealed, ""))
    return None


def _progressing(status: DeviceMigrationStatus, phase: MigrationPhase, generation: int | None,
                 now: datetime, outcome: Outcome, previous: DeviceMigrationStatus) -> None:
    value, reason, message = {
        MigrationPhase.PENDING: (True, Reason.WAITING_FOR_DEVICES,
                                 "waiting for device agents to enroll"),
        MigrationPhase.RUNNING: (True, Reason.DEVICES_MOVING, f"{status.progress} done"),
        MigrationPhase.PAUSED: (False, Reason.PAUSED, "paused by spec"),
        MigrationPhase.COMPLETED: (False, Reason.COMPLETED, _completed(status)),
        MigrationPhase.FAILED: (False, Reason.DEVICES_FAILED,
                                f"{status.devices_failed} devices failed; retry them with"
                                f" the {RETRY_ANNOTATION} annotation"),
    }[phase]
    set_condition(status, ConditionType.PROGRESSING, value, reason, message, generation, now)
    # Reconciling while devices move or wait to; Stalled once nothing is left to run but failed
    # devices, or while a Secret is missing (unless others still move: Reconciling wins).
    ready = get_condition(status, ConditionType.READY)
    stalled = None
    if phase is MigrationPhase.FAILED:
        stalled = Signal(reason, message)
    elif ready is not None and ready.status == ConditionStatus.FALSE:
        stalled = Signal(Reason.SECRET_UNAVAILABLE, ready.message)
    set_kstatus(status, Signal(reason, message) if value else None, stalled, generation, now)
    if phase is MigrationPhase.COMPLETED and previous.phase is not MigrationPhase.COMPLETED:
        outcome.notices.append(Notice(EventType.NORMAL, EventReason.MIGRATION_COMPLETED,
                                      message))


def _completed(status: DeviceMigrationStatus) -> str:
    if not status.devices_rolled_back:
        return f"every device done ({status.progress})"
    return (f"every device done or rolled back: {status.devices_done} of"
            f" {status.devices_total} moved, {status.devices_rolled_back} rolled back")


_ANNOUNCED = {
    DevicePhase.DONE: (EventType.NORMAL, EventReason.DEVICE_MIGRATED, "moved to the target"),
    DevicePhase.FAILED: (EventType.WARNING, EventReason.DEVICE_FAILED, "failed"),
    DevicePhase.ROLLED_BACK: (EventType.NORMAL, EventReason.DEVICE_ROLLED_BACK,
                              "rolled back to the source"),
}


def _announce(previous: DeviceMigrationStatus, devices: list, outcome: Outcome) -> None:
    before = {d.name: d.phase for d in previous.devices}
    for device in devices:
        if device.phase in _ANNOUNCED and before.get(device.name) != device.phase:
            type_, reason, text = _ANNOUNCED[device.phase]
            detail = f": {device.message}" if device.message else ""
            outcome.notices.append(Notice(type_, reason,
                                          f"device {device.name} {text}{detail}"))


def _was(status: DeviceMigrationStatus, type_: ConditionType, reason: Reason) -> bool:
    found = get_condition(status, type_)
    return found is not None and found.reason == reason
