"""The directory work the gateway has environments' agents do for device agents: staging a
computer account (and its machine secret, sealed to the device's key) before a join, and
disabling the source account after one. The gateway only ever holds the ciphertext.

Staging never holds up a runbook poll: the first poll that needs a secret queues
stage_computer and is answered "wait"; the sealed answer is kept in the state store, and a
later poll hands it out. One staging per device action at a time; a failed one is retried,
with backoff, by a later poll. Nothing here survives a restart but the kept secrets: a poll
after one stages again what was in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from ferry.gateway.queue import QueueError, WorkQueue, outcome
from ferry.state.rows import DeviceAgentInfo, DeviceSecret, PlannedAction, StageRequest
from ferry.state.store import StateStore
from ferry_agent.sealed import Recipient, SealError

log = structlog.get_logger("ferry.gateway")
STAGING_OWNER = "gateway:device-staging"
STAGE_SECONDS = 300.0             # for the target's agents to answer one stage_computer
DISABLE_SECONDS = 300.0
RETRY_FIRST, RETRY_MOST = 5.0, 300.0    # backoff between failed stagings of one action
MAX_STAGING_PER_ENVIRONMENT = 100       # in flight at once: the rest wait their turn
_DONE_SECONDS = 600.0             # a staging just done is not started again meanwhile
HasAgents = Callable[[str], Awaitable[bool]]
Key = tuple[str, str, int, str]   # migration, device, generation, action id


@dataclass
class _Failure:
    message: str
    attempts: int
    retry_at: float


class DeviceWork:
    """Stagings in flight and failed, by device action; disable_computer sent after joins."""

    def __init__(self, store: StateStore, queue: WorkQueue, has_agents: HasAgents,
                 clock: Callable[[], float] = time.monotonic):
        self._store = store
        self._queue = queue
        self._has_agents = has_agents
        self._clock = clock
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._failures: dict[Key, _Failure] = {}
        self._done: dict[Key, float] = {}
        self._per_environment: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def stage(self, device: DeviceAgentInfo, generation: int,
                    action: PlannedAction) -> str:
        """Why `action`'s secret is not there yet; stages it unless that is under way, just
        done, or backing off after a failure."""
        stage = action.stage
        assert stage is not None
        key = (device.migration, device.name, generation, action.id)
        where = f"{stage.name}'s computer account in {stage.environment}"
        now = self._clock()
        if key in self._running:
            return f"staging {where}"
        if now - self._done.get(key, -_DONE_SECONDS) < _DONE_SECONDS:
            return f"staged {where}; it comes with the next runbook"
        failure = self._failures.get(key)
        if failure is not None and now < failure.retry_at:
            return (f"staging {where} failed ({failure.attempts} time(s)): {failure.message};"
                    f" trying again in {failure.retry_at - now:.0f} s")
        if self._per_environment.get(stage.environment, 0) >= MAX_STAGING_PER_ENVIRONMENT:
            return (f"waiting to stage {where}: {MAX_STAGING_PER_ENVIRONMENT} are being staged"
                    " there already")
        problem = await self._start(key, device, stage)
        if problem:
            return self._failed(key, problem)
        return f"staging {where}"

    async def disable_source(self, device: DeviceAgentInfo, action: PlannedAction,
                             target: dict[str, Any]) -> None:
        """Queue disable_computer for the moved device's source account; its outcome is
        logged (the account stays enabled when it fails: nothing is lost)."""
        environment, name = str(target.get("environment", "")), str(target.get("name", ""))
        fields = {"device": device.name, "migration": device.migration, "action": action.id,
                  "environment": environment}
        if not environment or not name:
            log.warning("source account not disabled", **fields,
                        reason="disableSource needs environment and name")
            return
        if not await self._has_agents(environment):
            log.warning("source account not disabled", **fields,
                        reason=f"no agent is enrolled for environment {environment}")
            return
        try:
            work_id = self._queue.submit(environment, "disable_computer", {"name": name},
                                         owner=STAGING_OWNER)
        except QueueError as exc:
            log.warning("source account not disabled", **fields, reason=str(exc))
            return
        self._spawn(self._disabled(work_id, fields))

    async def close(self) -> None:
        """Stop what is in flight (the gateway is stopping)."""
        tasks = [*self._running.values(), *self._tasks]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- staging ---------------------------------------------------------------------------

    async def _start(self, key: Key, device: DeviceAgentInfo, stage: StageRequest) -> str:
        """Queue stage_computer for the action; what kept it from being queued, or ""."""
        if not await self._has_agents(stage.environment):
            return f"no agent is enrolled for environment {stage.environment}"
        public_key = await asyncio.to_thread(self._store.devices.public_key, device.id)
        if not public_key:
            return f"device agent {device.id} has no key to seal to; enroll it again"
        arguments = {"name": stage.name or device.name, "ou": stage.ou,
                     "dnsDomain": stage.dns_domain, "mode": stage.mode,
                     "recipient": public_key, "domainController": stage.domain_controller}
        try:
            work_id = self._queue.submit(stage.environment, "stage_computer", arguments,
                                         owner=STAGING_OWNER)
        except QueueError as exc:
            return str(exc)
        self._per_environment[stage.environment] = \
            self._per_environment.get(stage.environment, 0) + 1
        self._running[key] = asyncio.create_task(
            self._collect(key, stage.environment, work_id, public_key))
        log.info("staging", device=key[1], migration=key[0], action=key[3],
                 environment=stage.environment, mode=stage.mode, work=work_id)
        return ""

    async def _collect(self, key: Key, environment: str, work_id: str, public_key: str) -> None:
        try:
            done = await outcome(self._queue, work_id, STAGE_SECONDS)
            problem = done.error
            secret = None
            if not problem:
                secret, problem = _secret(done.values, public_key)
            if secret is not None:
                migration, device, generation, action_id = key
                await asyncio.to_thread(self._store.devices.keep_secret, migration, device,
                                        generation, action_id, secret)
                self._failures.pop(key, None)
                self._done[key] = self._clock()
                log.info("staged", device=device, migration=migration, action=action_id,
                         environment=environment, dn=secret.dn)
            else:
                self._failed(key, problem)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the store failed: a later poll tries again
            self._failed(key, f"{type(exc).__name__} keeping the staged secret")
        finally:
            self._running.pop(key, None)
            self._per_environment[environment] -= 1
            if not self._per_environment[environment]:
                del self._per_environment[environment]
            self._forget_old()

    def _failed(self, key: Key, problem: str) -> str:
        earlier = self._failures.get(key)
        attempts = earlier.attempts + 1 if earlier else 1
        delay = min(RETRY_MOST, RETRY_FIRST * 2 ** (attempts - 1))
        self._failures[key] = _Failure(problem[:300], attempts, self._clock() + delay)
        log.warning("staging failed", device=key[1], migration=key[0], action=key[3],
                    attempts=attempts, retry_seconds=delay, reason=problem[:300])
        return (f"staging the computer account failed ({attempts} time(s)): {problem[:300]};"
                f" trying again in {delay:.0f} s")

    def _forget_old(self) -> None:
        now = self._clock()
        for key in [k for k, at in self._done.items() if now - at >= _DONE_SECONDS]:
            del self._done[key]
        for key in [k for k, f in self._failures.items() if now - f.retry_at > RETRY_MOST * 4]:
            del self._failures[key]

    # -- disabling -------------------------------------------------------------------------

    async def _disabled(self, work_id: str, fields: dict[str, str]) -> None:
        done = await outcome(self._queue, work_id, DISABLE_SECONDS)
        value = done.values[0] if done.values and isinstance(done.values[0], dict) else {}
        if done.error or not value:
            log.warning("source account not disabled", **fields, work=work_id,
                        reason=done.error or "no outcome")
        else:
            log.info("source account disabled", **fields, work=work_id,
                     dn=str(value.get("dn", "")), changed=bool(value.get("disabled")))

    def _spawn(self, work: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _secret(values: list[Any], public_key: str) -> tuple[DeviceSecret | None, str]:
    """The one chunk of stage_computer as a secret to keep, or what is wrong with it."""
    value = values[0] if len(values) == 1 else None
    sealed = value.get("sealed") if isinstance(value, dict) else None
    if not isinstance(value, dict) or not isinstance(sealed, dict) or not sealed or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in sealed.items()):
        return None, "the agent's answer holds no sealed secret"
    try:
        own = Recipient.from_pem(public_key).key_id
    except (SealError, ValueError):
        return None, "the device's key cannot be sealed to"
    if own not in sealed:
        return None, "the secret is not sealed to the device's key"
    return DeviceSecret({own: sealed[own]}, str(value.get("dn", ""))), ""
