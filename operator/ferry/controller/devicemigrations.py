"""DeviceMigration reconciler: the devices' plans and SID table into the state store the
gateway serves device agents from; their progress back into status and Events. The decisions
are ferry.devices (shared with `ferry devices run`); this part reads and patches."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import ValidationError

from ferry.api.conditions import ConditionType, Reason, Signal, set_condition, set_kstatus
from ferry.api.devicemigration import DeviceMigration
from ferry.api.environment import Environment
from ferry.api.events import EventType
from ferry.api.status import DeviceMigrationStatus
from ferry.api.workflow import Workflow
from ferry.controller.cache import ObjectCache
from ferry.controller.events import EventRecorder
from ferry.devices.reconcile import reconcile
from ferry.kube import FerryObjects, retry_conflicts, status_changes
from ferry.secrets import SecretSource
from ferry.state.store import StateStore

log = structlog.get_logger("ferry.operator")
Clock = Callable[[], datetime]


class DeviceMigrationReconciler:
    def __init__(self, objects: FerryObjects, cache: ObjectCache, events: EventRecorder,
                 state: str | None, secrets: Callable[[str], SecretSource],
                 clock: Clock = lambda: datetime.now(UTC)):
        self._objects = objects
        self._secrets = secrets   # namespace -> its Secrets (an EntraJoin's package)
        self._cache = cache
        self._events = events
        self._state = state
        self._store: StateStore | None = None
        self._clock = clock
        self._lock = threading.Lock()   # one pass at a time: they share the store

    def reconcile(self, namespace: str, name: str) -> None:
        """Bring one DeviceMigration's plans and status in line with its spec and devices."""
        with self._lock:
            if not retry_conflicts(lambda: self._reconcile_once(namespace, name)):
                log.warning("devicemigration.conflicts", migration=f"{namespace}/{name}")

    def _reconcile_once(self, namespace: str, name: str) -> None:
        body = self._objects.get("devicemigrations", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        old = DeviceMigrationStatus.of(body)
        now = self._clock()
        try:
            migration = DeviceMigration.without_status(body)
        except ValidationError as exc:
            self._refuse(body, old, Reason.INVALID_SPEC, f"spec: {exc.errors()[0]['msg']}", now)
            return
        if self._state is None:
            self._refuse(body, old, Reason.NOT_READY, "the operator has no state store"
                         " (FERRY_STATE): DeviceMigrations need the one the gateway serves"
                         " devices from (chart: state.persistence or state.postgresUrlSecret)",
                         now)
            return
        migration = migration.model_copy(update={"status": old})
        outcome = reconcile(migration, self._environments(namespace),
                            self._workflow(namespace, migration.spec.workflow),
                            self._open(), now, self._secrets(namespace))
        changes = status_changes(old, outcome.status)
        if changes:
            self._objects.patch_status("devicemigrations", body, changes)
        for notice in outcome.notices:
            self._events.post(body, notice.type, notice.reason, notice.message)

    def _refuse(self, body: dict[str, Any], old: DeviceMigrationStatus, reason: Reason,
                message: str, now: datetime) -> None:
        status = old.model_copy(deep=True)
        generation = body["metadata"].get("generation")
        status.observed_generation = generation
        set_condition(status, ConditionType.READY, False, reason, message, generation, now)
        set_kstatus(status, None, Signal(reason, message), generation, now)
        changes = status_changes(old, status)
        if changes:
            self._objects.patch_status("devicemigrations", body, changes)
            self._events.post(body, EventType.WARNING, reason, message)

    def _open(self) -> StateStore:
        if self._store is None:
            assert self._state is not None
            self._store = StateStore(self._state)
        return self._store

    def _environments(self, namespace: str) -> dict[str, Environment]:
        found = {}
        for body in self._cache.all("Environment", namespace):
            try:
                env = Environment.without_status(body)
            except ValidationError:
                continue   # its own status says why
            found[env.metadata.name] = env
        return found

    def _workflow(self, namespace: str, name: str) -> Workflow | None:
        body = self._cache.get("Workflow", namespace, name)
        if body is None:
            return None
        try:
            return Workflow.without_status(body)
        except ValidationError:
            return None
