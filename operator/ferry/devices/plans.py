"""What each device is to do: its plan (runbook) for this generation, from the spec, what it
already did and the admin's retry and rollback requests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from ferry.api.devicemigration import (
    CUTOVER_ACTIONS,
    DeviceAction,
    DeviceMigrationSpec,
)
from ferry.devices.selection import SelectedDevice
from ferry.state.rows import DevicePlan, DeviceResult, PlannedAction, StageRequest

# The actions of a rollback generation (not spec actions: an annotation asks for them).
RESTORE_SOURCE = "RestoreSource"
UNDO_REACL = "UndoReACL"
_ROLLBACK_PREFIX = "r"
_JOINS = {DeviceAction.DOMAIN_JOIN, DeviceAction.OFFLINE_DOMAIN_JOIN}


def migration_key(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


@dataclass(frozen=True)
class Directories:
    """What the plans need to know of the two Environments."""

    source: str                 # environment names
    target: str
    target_dns_domain: str
    target_domain_controller: str
    target_computers_ou: str    # the default staging OU (CN=Computers,<base>)
    source_domains: tuple[str, ...]   # domain SIDs of the source (for unmatched SIDs)
    source_dns_domain: str = ""
    source_domain_controller: str = ""
    source_computers_ou: str = ""
    source_agents: bool = False   # the source's agents can stage a rollback's password


@dataclass(frozen=True)
class DeviceRequests:
    """The admin's requests for one device, from the DeviceMigration's annotations."""

    retry: bool = False
    rollback: bool = False


@dataclass(frozen=True)
class PlanDecision:
    plan: DevicePlan
    refusal: str = ""           # a request that could not be followed, and why


def is_rollback(plan: DevicePlan) -> bool:
    return any(a.id.startswith(_ROLLBACK_PREFIX) for a in plan.actions)


def forward_actions(spec: DeviceMigrationSpec, dirs: Directories, device: str,
                    cutover: datetime | None) -> list[PlannedAction]:
    """The spec's actions for one device, with their arguments, in order."""
    out = []
    for index, action in enumerate(spec.actions, start=1):
        arguments, stage = _arguments(spec, dirs, device, action)
        out.append(PlannedAction(id=f"{index}-{action.value}", action=action.value,
                                 arguments=arguments, stage=stage,
                                 not_before=cutover if action in CUTOVER_ACTIONS else None))
    return out


def _arguments(spec: DeviceMigrationSpec, dirs: Directories, device: str,
               action: DeviceAction) -> tuple[dict[str, object], StageRequest | None]:
    options = spec.options
    if action is DeviceAction.REACL:
        return ({"mode": options.reacl.mode.value,
                 "scopes": [s.value for s in options.reacl.scopes],
                 "sourceDomains": list(dirs.source_domains)}, None)
    if action is DeviceAction.CACHE_CREDENTIALS:
        return ({"users": list(options.cache_credentials.users),
                 "timeoutSeconds": options.cache_credentials.timeout_seconds}, None)
    if action in _JOINS:
        dc = options.join.domain_controller or dirs.target_domain_controller
        arguments: dict[str, object] = {"domain": dirs.target_dns_domain,
                                        "domainController": dc, "computerName": device}
        if not options.keep_source_account:
            arguments["disableSource"] = {"environment": dirs.source, "name": device}
        mode = "offline" if action is DeviceAction.OFFLINE_DOMAIN_JOIN else "password"
        return arguments, StageRequest(
            environment=dirs.target, mode=mode, name=device,
            ou=options.join.target_ou or dirs.target_computers_ou,
            dns_domain=dirs.target_dns_domain, domain_controller=dc)
    if action is DeviceAction.REBOOT:
        return ({"delaySeconds": options.reboot_delay_seconds,
                 "notice": options.reboot_notice}, None)
    return {}, None


def _rollback_actions(spec: DeviceMigrationSpec, dirs: Directories, device: SelectedDevice,
                      forward: Sequence[PlannedAction], done: set[str]
                      ) -> list[PlannedAction]:
    """Undo what was done, newest first: the domain move, then the ReACL; reboot, then the
    log goes up (so a rollback always has an action, and support gets the device's story)."""
    by_action = {a.action: a for a in forward}
    steps: list[PlannedAction] = []
    if any(by_action.get(j.value) and by_action[j.value].id in done for j in _JOINS):
        steps.append(PlannedAction(id="", action=RESTORE_SOURCE,
                                   arguments={"domainController":
                                              dirs.source_domain_controller},
                                   stage=_source_stage(dirs, device)))
    reacl = by_action.get(DeviceAction.REACL.value)
    if reacl is not None and reacl.id in done:
        steps.append(PlannedAction(id="", action=UNDO_REACL, arguments=dict(reacl.arguments)))
    reboot = by_action.get(DeviceAction.REBOOT.value)
    if reboot is not None and steps:
        steps.append(PlannedAction(id="", action=DeviceAction.REBOOT.value,
                                   arguments={**reboot.arguments}))
    steps.append(PlannedAction(id="", action=DeviceAction.UPLOAD_LOGS.value, arguments={}))
    return [replace(s, id=f"{_ROLLBACK_PREFIX}{i}-{s.action}")
            for i, s in enumerate(steps, start=1)]


def _source_stage(dirs: Directories, device: SelectedDevice) -> StageRequest | None:
    """A Windows device forgets the source's machine password when it leaves, so its
    rollback re-joins with one staged on the kept account; Linux keeps a backup instead
    (and staging would change the password that backup holds)."""
    if device.agent is None or device.agent.os != "windows" or not dirs.source_agents:
        return None
    return StageRequest(environment=dirs.source, mode="password", name=device.name,
                        ou=dirs.source_computers_ou, dns_domain=dirs.source_dns_domain,
                        domain_controller=dirs.source_domain_controller)


def succeeded(results: Sequence[DeviceResult]) -> set[str]:
    """Action ids the device finished, in any generation."""
    return {r.action_id for r in results if r.ok}


def failed_now(plan: DevicePlan, results: Sequence[DeviceResult]) -> DeviceResult | None:
    """The failed result that stops the plan's generation, if any."""
    ids = {a.id for a in plan.actions}
    latest: dict[str, DeviceResult] = {}
    for r in sorted(results, key=lambda r: (r.finished_at, r.attempt)):
        if r.generation == plan.generation and r.action_id in ids:
            latest[r.action_id] = r
    return next((latest[a.id] for a in plan.actions
                 if a.id in latest and not latest[a.id].ok), None)


def epoch_start(generation: int, rollback: bool, results: Sequence[DeviceResult]) -> int:
    """The first generation of the stretch, up to `generation`, that went one way (forward,
    or rollback) with nothing of the other way between: only its results count for it."""
    kinds: dict[int, bool] = {}
    for r in results:
        kinds[r.generation] = kinds.get(r.generation, False) or \
            r.action_id.startswith(_ROLLBACK_PREFIX)
    start = generation
    for g in sorted((g for g in kinds if g < generation), reverse=True):
        if kinds[g] != rollback:
            break
        start = g
    return start


def shown_results(plan: DevicePlan, results: Sequence[DeviceResult]) -> list[DeviceResult]:
    """The results a plan's status shows: its own stretch's; for a rollback, also those of the
    forward stretch it undoes (a device rolled forward again starts with none)."""
    rollback = is_rollback(plan)
    start = epoch_start(plan.generation, rollback, results)
    if rollback:
        before = [r.generation for r in results if r.generation < start]
        if before:
            start = epoch_start(max(before), False, results)
    return [r for r in results if r.generation >= start]


def _rolled_back(plan: DevicePlan, results: Sequence[DeviceResult]) -> bool:
    ok = {r.action_id for r in results if r.ok and r.generation == plan.generation}
    return is_rollback(plan) and all(a.id in ok for a in plan.actions)


def decide_plan(migration: str, spec: DeviceMigrationSpec, dirs: Directories,
                device: SelectedDevice, cutover: datetime | None, paused: bool,
                previous: DevicePlan | None, results: Sequence[DeviceResult],
                requests: DeviceRequests, sid_table_version: str) -> PlanDecision:
    """This device's plan: the same generation brought up to date with the spec, or a new
    one for a retry (what is left, again) or a rollback."""
    forward = forward_actions(spec, dirs, device.name, cutover)
    done = succeeded(results)
    # A device without a plan may have had one (taken out of the waves and put back): it
    # resumes its latest generation, so earlier results are not read as this one's.
    last = previous.generation if previous else max((r.generation for r in results), default=0)
    generation = max(last, 1)
    rollback = is_rollback(previous) if previous is not None else any(
        r.generation == last and r.action_id.startswith(_ROLLBACK_PREFIX) for r in results)
    refusal = ""
    if requests.rollback and not rollback:
        joined = any(a.action in {j.value for j in _JOINS} and a.id in done for a in forward)
        if joined and not spec.options.keep_source_account:
            refusal = (f"device {device.name} cannot roll back: keepSourceAccount is false, so"
                       " its source computer account was disabled; enable it in the source"
                       " domain and re-join the device by hand")
        else:
            rollback, generation = True, last + 1
    elif requests.retry and previous is not None and failed_now(previous, results):
        generation += 1
    elif requests.retry and not requests.rollback and previous is not None \
            and _rolled_back(previous, results):
        # Rolled forward: the rollback undid the forward actions, so all of them run again.
        rollback, generation = False, last + 1
    # Within a generation the plan keeps every action (its results say which are done); a
    # new generation leaves out what earlier ones of its stretch finished.
    start = epoch_start(generation, rollback, results)
    earlier = succeeded([r for r in results if start <= r.generation < generation])
    if rollback:
        went = [r for r in results if not r.action_id.startswith(_ROLLBACK_PREFIX)]
        latest = max((r.generation for r in went), default=0)
        since = epoch_start(latest, False, results)
        forward_done = succeeded([r for r in went if r.generation >= since])
        actions = [a for a in _rollback_actions(spec, dirs, device, forward, forward_done)
                   if a.id not in earlier]
    else:
        actions = [a for a in forward if a.id not in earlier]
    plan = DevicePlan(migration=migration, device=device.name, wave=device.wave,
                      generation=generation, state="paused" if paused else "run",
                      source=dirs.source, target=dirs.target, actions=tuple(actions),
                      sid_table_version=sid_table_version)
    return PlanDecision(plan, refusal)
