"""Condition types and reasons, and the one way to set a condition on a status (after
cert-manager's pkg/api/util/conditions.go): one entry per type, lastTransitionTime kept while
the status stays the same, observedGeneration set."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from ferry.api.status import Condition, ConditionStatus, RunResult


class ConditionType(StrEnum):
    READY = "Ready"          # every kind: the spec and what it names can be used
    RUNNING = "Running"      # Workflow: a run is in progress
    SUCCEEDED = "Succeeded"  # Workflow: the last run succeeded (reason: its RunResult)
    CONNECTED = "Connected"  # Environment: the directory, or one of its agents, answers
    PROGRESSING = "Progressing"  # DeviceMigration: devices are moving
    # kstatus' abnormal-true pair (sigs.k8s.io/cli-utils/pkg/kstatus), which Flux and Argo CD's
    # checks read; every kind has both (a Template's Reconciling stays False: it compiles at
    # once), kept False when normal so `kubectl get -o yaml` shows them.
    RECONCILING = "Reconciling"  # work towards the spec is under way (kstatus InProgress)
    STALLED = "Stalled"          # stuck until a person acts (kstatus Failed)


class Reason(StrEnum):
    """Why a condition is as it is; a transition's Event carries the same reason."""

    # Ready
    VALID = "Valid"
    INVALID_REFERENCE = "InvalidReference"
    INVALID_SCHEDULE = "InvalidSchedule"
    SECRETS_RESOLVED = "SecretsResolved"
    INVALID_SPEC = "InvalidSpec"
    SECRET_UNAVAILABLE = "SecretUnavailable"
    COMPILED = "Compiled"
    INVALID_EXPRESSION = "InvalidExpression"
    # Progressing (DeviceMigration)
    DEVICES_MOVING = "DevicesMoving"
    WAITING_FOR_DEVICES = "WaitingForDevices"
    PAUSED = "Paused"
    COMPLETED = "Completed"
    DEVICES_FAILED = "DevicesFailed"
    # Reconciling, Stalled (True: the reason of what is under way or stuck; Ready's and a
    # run's reasons are reused)
    RECONCILED = "Reconciled"
    NOT_STALLED = "NotStalled"
    DISCOVERY_RUNNING = "DiscoveryRunning"
    DISCOVERY_FAILED = "DiscoveryFailed"
    # Running
    RUN_ACTIVE = "RunActive"
    IDLE = "Idle"
    # Connected
    CONNECTED = "Connected"
    CONNECTION_FAILED = "ConnectionFailed"
    NOT_READY = "NotReady"
    NO_GATEWAY = "NoGateway"
    GATEWAY_UNREACHABLE = "GatewayUnreachable"
    AGENTS_CONNECTED = "AgentsConnected"
    NO_AGENT_CONNECTED = "NoAgentConnected"


class HasConditions(Protocol):
    conditions: list[Condition]


def set_condition(status: HasConditions, type_: ConditionType, value: bool | None,
                  reason: Reason | RunResult, message: str, generation: int | None,
                  now: datetime) -> None:
    """Set the condition of type_ on status (value None: Unknown); lastTransitionTime moves
    only when the condition's status changes."""
    new_status = (ConditionStatus.UNKNOWN if value is None
                  else ConditionStatus.TRUE if value else ConditionStatus.FALSE)
    previous = get_condition(status, type_)
    transition = (now if previous is None or previous.status != new_status
                  else previous.last_transition_time)
    condition = Condition(type=type_, status=new_status, observed_generation=generation,
                          last_transition_time=transition, reason=reason,
                          message=message[:32768])
    if previous is None:
        status.conditions = [*status.conditions, condition]
    else:
        status.conditions = [condition if c.type == type_ else c for c in status.conditions]


@dataclass(frozen=True)
class Signal:
    """Why an object is reconciling or stalled: the condition's reason and message."""

    reason: Reason | RunResult
    message: str


def set_kstatus(status: HasConditions, reconciling: Signal | None, stalled: Signal | None,
                generation: int | None, now: datetime) -> None:
    """Set Reconciling and Stalled (None: False), never both True: kstatus takes whichever comes
    first in the list, so a work in progress wins over a stall decided before it."""
    set_condition(status, ConditionType.RECONCILING, reconciling is not None,
                  reconciling.reason if reconciling else Reason.RECONCILED,
                  reconciling.message if reconciling else "nothing in progress", generation, now)
    stalled = None if reconciling is not None else stalled
    set_condition(status, ConditionType.STALLED, stalled is not None,
                  stalled.reason if stalled else Reason.NOT_STALLED,
                  stalled.message if stalled else "nothing waits for a person", generation, now)


def get_condition(status: HasConditions, type_: ConditionType) -> Condition | None:
    return next((c for c in status.conditions if c.type == type_), None)


def has_condition(status: HasConditions, type_: ConditionType, value: ConditionStatus) -> bool:
    """Whether the condition of type_ is there with this status (reason and message aside)."""
    found = get_condition(status, type_)
    return found is not None and found.status == value
