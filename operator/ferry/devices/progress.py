"""How far each device, wave and the whole migration are: the typed status, from the plans,
the devices' results and their agents' last contact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ferry.api.devicemigration import DeviceAction, DeviceMigrationSpec
from ferry.api.status import (
    ActionState,
    DeviceActionStatus,
    DevicePhase,
    DeviceStatus,
    MigrationPhase,
    WaveStatus,
)
from ferry.devices.plans import (
    RESTORE_SOURCE,
    UNDO_REACL,
    Directories,
    failed_now,
    forward_actions,
    is_rollback,
    shown_results,
)
from ferry.devices.selection import SelectedDevice
from ferry.state.rows import DevicePlan, DeviceResult

MAX_LISTED_DEVICES = 500
_PHASE = {
    DeviceAction.REACL.value: DevicePhase.REACL,
    DeviceAction.CACHE_CREDENTIALS.value: DevicePhase.CACHING_CREDENTIALS,
    DeviceAction.DOMAIN_JOIN.value: DevicePhase.JOINING,
    DeviceAction.OFFLINE_DOMAIN_JOIN.value: DevicePhase.JOINING,
    DeviceAction.ENTRA_JOIN.value: DevicePhase.JOINING,
    DeviceAction.REBOOT.value: DevicePhase.REBOOTING,
}
_FINISHED = {DevicePhase.DONE, DevicePhase.ROLLED_BACK}
_ORDER = {DevicePhase.FAILED: 0, DevicePhase.ROLLING_BACK: 1, DevicePhase.REACL: 1,
          DevicePhase.CACHING_CREDENTIALS: 1, DevicePhase.JOINING: 1, DevicePhase.REBOOTING: 1}


@dataclass
class Progress:
    """What the status shows: devices, waves, counts and the migration's phase."""

    devices: list[DeviceStatus] = field(default_factory=list)
    waves: list[WaveStatus] = field(default_factory=list)
    phase: MigrationPhase = MigrationPhase.PENDING
    done: int = 0
    failed: int = 0
    rolled_back: int = 0
    total: int = 0
    current_wave: str | None = None

    @property
    def text(self) -> str:
        return f"{self.done}/{self.total}"


def device_status(device: SelectedDevice, plan: DevicePlan | None,
                  results: Sequence[DeviceResult], forward: Sequence[str], retries: int,
                  now: datetime) -> DeviceStatus:
    """One device's phase, per-action results and last contact."""
    agent = device.agent
    base = DeviceStatus(name=device.name, wave=device.wave, phase=DevicePhase.PENDING,
                        retries=retries, agent=agent.id if agent else None,
                        last_contact=agent.last_seen if agent else None)
    if plan is not None:
        results = shown_results(plan, results)
    latest: dict[str, DeviceResult] = {}
    for r in sorted(results, key=lambda r: (r.generation, r.finished_at, r.attempt)):
        latest[r.action_id] = r
    attempts: dict[str, int] = {}
    for r in results:
        attempts[r.action_id] = attempts.get(r.action_id, 0) + 1
    rollback = plan is not None and is_rollback(plan)
    ids = list(forward)
    if rollback and plan is not None:
        ids += [a.id for a in plan.actions if a.id not in ids]
        ids += sorted(i for i in latest if i.startswith("r") and i not in ids)
    if agent is None:
        base.message = (f"no device agent enrolled for {device.name}: create a token with"
                        " `ferry devices token create` and enroll the device")
        base.actions = [_action(i, None, 0, ActionState.PENDING) for i in ids]
        return base
    stop = failed_now(plan, results) if plan else None
    next_action = next((a for a in (plan.actions if plan else ()) if
                        not (a.id in latest and latest[a.id].ok
                             and latest[a.id].generation == plan.generation)), None) \
        if plan else None
    states = []
    for action_id in ids:
        result = latest.get(action_id)
        if result is not None and (result.ok or stop is result):
            state = ActionState.SUCCEEDED if result.ok else ActionState.FAILED
        elif next_action is not None and action_id == next_action.id and plan is not None \
                and plan.state == "run" and stop is None and not _waiting(next_action, now):
            state = ActionState.RUNNING
        else:
            state = ActionState.PENDING
        states.append(_action(action_id, result, attempts.get(action_id, 0), state))
    base.actions = states
    if stop is not None:
        base.phase, base.message = DevicePhase.FAILED, f"{stop.action_id}: {stop.message}"
    elif rollback:
        base.phase = DevicePhase.ROLLED_BACK if next_action is None else DevicePhase.ROLLING_BACK
    elif next_action is None and plan is not None:
        base.phase = DevicePhase.DONE
    elif plan is None or next_action is None:
        base.phase = DevicePhase.PENDING
    elif plan.state == "paused":
        base.phase = DevicePhase.READY if latest else DevicePhase.PENDING
        base.message = "its wave is paused"
    elif _waiting(next_action, now):
        base.phase = DevicePhase.READY
        base.message = ("waiting for the wave's cutover at"
                        f" {next_action.not_before:%Y-%m-%dT%H:%M:%SZ}")
    else:
        base.phase = _phase_of(next_action.action, states)
    return base


def _waiting(action: object, now: datetime) -> bool:
    not_before = getattr(action, "not_before", None)
    return not_before is not None and not_before > now


def _phase_of(action: str, states: Sequence[DeviceActionStatus]) -> DevicePhase:
    if action in _PHASE:
        return _PHASE[action]
    if action in (RESTORE_SOURCE, UNDO_REACL):
        return DevicePhase.ROLLING_BACK
    done = [s.action for s in states if s.state is ActionState.SUCCEEDED]  # UploadLogs
    return _PHASE.get(done[-1], DevicePhase.READY) if done else DevicePhase.READY


def _action(action_id: str, result: DeviceResult | None, attempts: int,
            state: ActionState) -> DeviceActionStatus:
    return DeviceActionStatus(
        id=action_id, action=action_id.split("-", 1)[1], state=state, attempts=attempts,
        time=result.finished_at if result and state in (ActionState.SUCCEEDED,
                                                         ActionState.FAILED) else None,
        message=(result.message[:500] or None) if result else None)


def progress(spec: DeviceMigrationSpec, dirs: Directories, devices: Sequence[SelectedDevice],
             plans: Mapping[str, DevicePlan], results: Mapping[str, Sequence[DeviceResult]],
             retries: Mapping[str, int], now: datetime) -> Progress:
    """The status of every device, every wave and the migration as a whole."""
    out = Progress(total=len(devices))
    for device in devices:
        forward = [a.id for a in forward_actions(spec, dirs, device.name, None)]
        out.devices.append(device_status(device, plans.get(device.name),
                                         results.get(device.name, ()), forward,
                                         retries.get(device.name, 0), now))
    phases = [d.phase for d in out.devices]
    out.done = phases.count(DevicePhase.DONE)
    out.failed = phases.count(DevicePhase.FAILED)
    out.rolled_back = phases.count(DevicePhase.ROLLED_BACK)
    for wave in spec.waves:
        mine = [d for d in out.devices if d.wave == wave.name]
        out.waves.append(WaveStatus(
            name=wave.name, cutover=wave.cutover, paused=wave.paused or spec.paused,
            total=len(mine), done=sum(d.phase is DevicePhase.DONE for d in mine),
            failed=sum(d.phase is DevicePhase.FAILED for d in mine),
            rolled_back=sum(d.phase is DevicePhase.ROLLED_BACK for d in mine)))
        if out.current_wave is None and any(d.phase not in _FINISHED for d in mine):
            out.current_wave = wave.name
    out.phase = _migration_phase(spec, phases)
    out.devices.sort(key=lambda d: _ORDER.get(d.phase, 2))   # failed and active first
    out.devices = out.devices[:MAX_LISTED_DEVICES]
    return out


def _migration_phase(spec: DeviceMigrationSpec, phases: Sequence[DevicePhase]) -> MigrationPhase:
    if phases and all(p in _FINISHED for p in phases):
        return MigrationPhase.COMPLETED
    if phases and all(p in _FINISHED or p is DevicePhase.FAILED for p in phases):
        return MigrationPhase.FAILED
    if spec.paused or (spec.waves and all(w.paused for w in spec.waves)):
        return MigrationPhase.PAUSED
    if any(p is not DevicePhase.PENDING for p in phases):
        return MigrationPhase.RUNNING
    return MigrationPhase.PENDING
