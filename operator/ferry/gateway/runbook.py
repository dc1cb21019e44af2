"""A device's runbook (see ferry_agent.protocol): computed from its plan and results on each
poll, so nothing but the state store decides what a device does next."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from ferry.state.rows import DeviceAgentInfo, DeviceProgress, PlannedAction

RUN, WAIT, PAUSED, DONE = "run", "wait", "paused", "done"
POLL_RUN = 5          # seconds: it reports as soon as the action ends, then asks again
POLL_STAGING = 10     # a secret being staged comes within seconds
POLL_IDLE = 60        # paused, waiting for a plan, a retry or a cutover far away
POLL_DONE = 300
SPREAD = 4            # idle and done polls are up to 1/SPREAD longer, at random (_spread)
_random = random.Random()
# Actions a ReACL-style SID table is needed for; they wait until the plan's version is written.
NEEDS_SID_TABLE = frozenset({"ReACL", "UndoReACL"})


def next_action(progress: DeviceProgress) -> PlannedAction | None:
    """The first action of the plan without an ok result (None: done, or no plan)."""
    if progress.plan is None:
        return None
    return next((a for a in progress.plan.actions
                 if not (a.id in progress.results and progress.results[a.id].ok)), None)


def needs_staging(progress: DeviceProgress) -> PlannedAction | None:
    """The next action when the gateway must stage its machine secret first: it has a stage,
    no secret is kept, the plan runs and the action has not failed in this generation."""
    action = next_action(progress)
    plan = progress.plan
    if action is None or plan is None or action.stage is None or plan.state != RUN:
        return None
    if action.id in progress.secrets or action.id in progress.results:
        return None
    return action


def build(device: DeviceAgentInfo, progress: DeviceProgress, now: datetime,
          staging: str | None = None) -> dict[str, Any]:
    """The runbook for `device`; `staging` says why the next action's secret is not there
    yet (None: it is not waiting for one)."""
    plan = progress.plan
    if plan is None:
        return _runbook(device, 0, WAIT, f"no plan for device {device.name} yet: the"
                        f" migration {device.migration} selects it in none of its waves, or"
                        " has not planned it yet", _spread(POLL_IDLE), progress, None)
    action = next_action(progress)
    if action is None:
        return _runbook(device, plan.generation, DONE, "every action is done",
                        _spread(POLL_DONE), progress, None)
    if plan.state == PAUSED:
        return _runbook(device, plan.generation, PAUSED, f"wave {plan.wave} is paused",
                        _spread(POLL_IDLE), progress, action)
    failed = progress.results.get(action.id)
    if failed is not None:
        return _runbook(device, plan.generation, WAIT, f"{action.id} failed: {failed.message};"
                        " waiting for a retry", _spread(POLL_IDLE), progress, action)
    if action.not_before is not None and action.not_before > now:
        seconds = (action.not_before - now).total_seconds()
        return _runbook(device, plan.generation, WAIT, f"{action.id} waits for the cutover at"
                        f" {_rfc3339(action.not_before)}",
                        int(max(POLL_RUN, min(_spread(POLL_IDLE), seconds))), progress,
                        action)
    if action.action in NEEDS_SID_TABLE and plan.sid_table_version and \
            progress.sid_table_version != plan.sid_table_version:
        return _runbook(device, plan.generation, WAIT, f"{action.id} waits for SID table"
                        f" {plan.sid_table_version} to be written", POLL_STAGING, progress,
                        action)
    if staging is not None:
        return _runbook(device, plan.generation, WAIT, staging, POLL_STAGING, progress, action)
    return _runbook(device, plan.generation, RUN, f"{action.id} is next", POLL_RUN, progress,
                    action)


def _spread(seconds: int) -> int:
    # Devices started together (a wave token at boot, a gateway restart) would otherwise poll
    # in step for as long as they wait.
    return seconds + _random.randrange(seconds // SPREAD + 1)


def _runbook(device: DeviceAgentInfo, generation: int, state: str, reason: str, poll: int,
             progress: DeviceProgress, action: PlannedAction | None) -> dict[str, Any]:
    plan = progress.plan
    return {
        "migration": device.migration, "device": device.name, "generation": generation,
        "state": state, "reason": reason, "pollSeconds": poll,
        "sidTableVersion": plan.sid_table_version if plan else "",
        "actions": [_action(a, progress, due=state == RUN and a is action)
                    for a in (plan.actions if plan else ())],
        "next": action.id if action is not None and state != DONE else None,
    }


def _action(action: PlannedAction, progress: DeviceProgress, due: bool) -> dict[str, Any]:
    result = progress.results.get(action.id)
    # A secret (a one-time password, an offline join blob, an EntraJoin package of some
    # hundred KB) travels only in the answer that runs its action, not in every poll before.
    secret = progress.secrets.get(action.id) if due else None
    return {"id": action.id, "action": action.action, "arguments": dict(action.arguments),
            "state": "pending" if result is None else "done" if result.ok else "failed",
            "notBefore": _rfc3339(action.not_before) if action.not_before else None,
            "sealed": dict(secret.sealed) if secret is not None else None}


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
