"""Work for agents, in memory: a FIFO per environment, leases with deadlines, result chunks.

Nothing here survives a gateway restart, by design: jobs then get 404 for their work ids and
fail that call cleanly (a re-run converges), and agents get 409 for the leases they held.
Only one gateway replica may serve an environment's agents and jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ferry.errors import FerryError
from ferry_agent.protocol import (
    MAX_BODY_BYTES,
    POLL_WAIT_SECONDS,
    ErrorInfo,
    WorkItem,
    WorkProgress,
    WorkResult,
    encode,
)

QUEUED, LEASED, DONE = "queued", "leased", "done"
Clock = Callable[[], float]
_ANSWER_BYTES = MAX_BODY_BYTES // 2  # chunks per results answer, by the size agents posted


class QueueError(FerryError):
    """A request the queue cannot honour; `status` is the HTTP answer for it."""

    status = 400


class QueueFull(QueueError):
    """Too much work is waiting; the job retries after a while."""

    status = 429


class ResultsBacklog(QueueError):
    """The job is not collecting this work's chunks fast enough; the agent retries the chunk."""

    status = 429


class UnknownWork(QueueError):
    """No such work: never submitted, forgotten after delivery, or lost in a restart."""

    status = 404


class LeaseLost(QueueError):
    """The lease is not (or no longer) the caller's; the agent must drop the item."""

    status = 409


class OutOfOrder(QueueError):
    """A chunk skipped a seq."""

    status = 400


@dataclass(frozen=True)
class QueueLimits:
    lease_seconds: float = 60.0
    agent_timeout: float = 60.0          # an agent silent this long loses its leases
    max_attempts: int = 5                # leases lost before the work fails
    max_queued: int = 10_000             # waiting items per environment
    max_works: int = 50_000              # items in any state
    max_backlog_bytes: int = 64 << 20    # unacknowledged result bytes per item
    done_ttl: float = 600.0              # finished work nobody collected is forgotten
    delivered_grace: float = 30.0        # final chunk sent: kept this long for a retried request
    job_timeout: float = 300.0           # unfinished work whose job stopped asking is dropped

    @property
    def heartbeat_seconds(self) -> float:
        """How often agents should heartbeat: several times within a lease and the timeout."""
        return max(1.0, min(self.lease_seconds, self.agent_timeout) / 4)


@dataclass(frozen=True)
class _Chunk:
    seq: int
    final: bool
    body: dict[str, Any]
    size: int


class _Signal:
    """Wakes every task waiting now; a task that starts waiting later waits for the next pulse."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def pulse(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        if timeout <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)


@dataclass(eq=False)
class _Work:
    id: str
    environment: str
    operation: str
    arguments: dict[str, Any]   # may hold passwords: never logged
    touched: float              # the job's last request
    owner: str = ""             # who submitted it (a job credential's subject)
    generation: int = 1         # = the attempt; +1 whenever a lease is lost
    state: str = QUEUED
    lease_id: str = ""
    agent_id: str = ""
    deadline: float = 0.0
    next_seq: int = 0
    chunks: list[_Chunk] = field(default_factory=list)   # not yet acknowledged by the job
    backlog: int = 0
    synced: int = 0             # the generation the job's `after` refers to when it omits one
    expires: float = float("inf")
    signal: _Signal = field(default_factory=_Signal)


class WorkQueue:
    """Submitted work, leased to the agents of its environment, results collected by jobs.

    `clock` (monotonic seconds) decides leases and expiry, so tests can move time; long-poll
    waits use the event loop's own time. Call sweep() every second or so.
    """

    def __init__(self, limits: QueueLimits | None = None, clock: Clock = time.monotonic):
        self.limits = limits or QueueLimits()
        self._clock = clock
        self._works: dict[str, _Work] = {}
        self._queues: dict[str, deque[_Work]] = {}
        self._ready: dict[str, _Signal] = {}
        self._leases: dict[str, _Work] = {}
        self._agents: dict[str, float] = {}      # agent id -> last heard of
        self._polling: dict[str, int] = {}       # agent id -> polls waiting now
        self._environments: dict[str, str] = {}  # agent id -> environment it leases for
        # (environment, queued | leased | reissued | failed) since this process started: the
        # queue itself lives in memory, so its counters start again with it (metrics).
        self.events: Counter[tuple[str, str]] = Counter()

    # -- job side ---------------------------------------------------------------------------

    def submit(self, environment: str, operation: str, arguments: dict[str, Any],
               owner: str = "") -> str:
        """Queue one work item for `owner`; its id is unguessable all the same."""
        queue = self._queues.setdefault(environment, deque())
        if len(queue) >= self.limits.max_queued or len(self._works) >= self.limits.max_works:
            raise QueueFull("too much work is waiting; retry later")
        work = _Work(secrets.token_urlsafe(18), environment, operation, arguments,
                     touched=self._clock(), owner=owner)
        self._works[work.id] = work
        queue.append(work)
        self.events[(environment, QUEUED)] += 1
        self._signal(environment).pulse()
        return work.id

    def origin(self, work_id: str) -> tuple[str, str] | None:
        """(environment, owner) of the work, or None when it is unknown."""
        work = self._works.get(work_id)
        return None if work is None else (work.environment, work.owner)

    async def progress(self, work_id: str, after: int = -1, generation: int = 0,
                       wait: float = 0.0) -> WorkProgress:
        """The work's state and the chunks the job lacks; waits up to `wait` s for news.

        `after` acknowledges chunks of the job's generation: they are freed. A job that omits
        `generation` is known to be in step once it asked with after = -1 in this generation.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, min(wait, POLL_WAIT_SECONDS))
        while True:
            work = self._works.get(work_id)
            if work is None:
                raise UnknownWork("unknown work id")
            work.touched = self._clock()
            answer = self._answer(work, after, generation, last=loop.time() >= end)
            if answer is not None:
                return answer
            await work.signal.wait(end - loop.time())

    def _answer(self, work: _Work, after: int, generation: int,
                last: bool) -> WorkProgress | None:
        if after < 0:
            work.synced = work.generation  # the job holds nothing: in step with this generation
        reference = generation or work.synced
        in_step = reference == work.generation
        if in_step and after >= 0:
            self._acknowledge(work, after)
            if work.id not in self._works:  # the final chunk was acknowledged
                return WorkProgress(DONE, work.generation, [])
        fresh = [c for c in work.chunks if not in_step or c.seq > after]
        if not fresh and in_step and work.state != DONE and not last:
            return None
        taken: list[_Chunk] = []
        size = 0
        for chunk in fresh:  # an answer stays within what clients read; the rest comes next
            if taken and size + chunk.size > _ANSWER_BYTES:
                break
            taken.append(chunk)
            size += chunk.size
        if any(c.final for c in taken):
            work.expires = min(work.expires, self._clock() + self.limits.delivered_grace)
        return WorkProgress(work.state, work.generation, [c.body for c in taken])

    def _acknowledge(self, work: _Work, after: int) -> None:
        kept = [c for c in work.chunks if c.seq > after]
        if any(c.final for c in work.chunks if c.seq <= after):
            self._forget(work)
            return
        work.backlog = sum(c.size for c in kept)
        work.chunks = kept

    # -- agent side -------------------------------------------------------------------------

    def seen(self, agent_id: str) -> None:
        self._agents[agent_id] = self._clock()

    async def lease(self, agent_id: str, environment: str, wait: float) -> WorkItem | None:
        """The oldest work of the agent's own environment, leased to it; None after `wait` s."""
        loop = asyncio.get_running_loop()
        end = loop.time() + max(0.0, min(wait, POLL_WAIT_SECONDS))
        self._polling[agent_id] = self._polling.get(agent_id, 0) + 1
        self._environments[agent_id] = environment
        try:
            while True:
                self.seen(agent_id)
                item = self._take(agent_id, environment)
                if item is not None or loop.time() >= end:
                    return item
                await self._signal(environment).wait(end - loop.time())
        finally:
            self._polling[agent_id] -= 1
            if not self._polling[agent_id]:
                del self._polling[agent_id]
            self.seen(agent_id)

    def _take(self, agent_id: str, environment: str) -> WorkItem | None:
        queue = self._queues.get(environment)
        if not queue:
            return None
        work = queue.popleft()
        work.state, work.agent_id = LEASED, agent_id
        work.lease_id = secrets.token_urlsafe(18)
        work.deadline = self._clock() + self.limits.lease_seconds
        work.next_seq = 0
        self._leases[work.lease_id] = work
        self.events[(environment, LEASED)] += 1
        return WorkItem(work.id, work.lease_id, work.environment, work.operation,
                        work.arguments, self.limits.lease_seconds, attempt=work.generation)

    def heartbeat(self, agent_id: str, lease_ids: Iterable[str]) -> None:
        """The agent is alive, and still working on these leases: extend them."""
        self.seen(agent_id)
        deadline = self._clock() + self.limits.lease_seconds
        for lease_id in lease_ids:
            work = self._leases.get(lease_id)
            if work is not None and work.agent_id == agent_id:
                work.deadline = deadline

    def accept(self, agent_id: str, result: WorkResult, size: int) -> bool:
        """Take a result chunk from the lease holder; False for a seq already received."""
        work = self._leases.get(result.lease_id)
        if work is None or work.id != result.work_id or work.agent_id != agent_id:
            raise LeaseLost("the lease is not held by this agent")
        self.seen(agent_id)
        now = self._clock()
        work.deadline = now + self.limits.lease_seconds
        if result.seq < work.next_seq:
            return False
        if result.seq > work.next_seq:
            raise OutOfOrder(f"WorkResult.seq: expected {work.next_seq}, got {result.seq}")
        # A final chunk is always taken: it ends the lease, and delivery then frees it.
        if not result.final and work.chunks and \
                work.backlog + size > self.limits.max_backlog_bytes:
            raise ResultsBacklog("the job has not collected earlier chunks yet; retry")
        work.chunks.append(_Chunk(result.seq, result.final, encode(result), size))
        work.backlog += size
        work.next_seq += 1
        if result.final:
            del self._leases[work.lease_id]
            work.state, work.expires = DONE, now + self.limits.done_ttl
        work.signal.pulse()
        return True

    def give_back(self, lease_id: str) -> None:
        """Put back one lease whose item never reached its agent (the poll was abandoned)."""
        work = self._leases.get(lease_id)
        if work is not None:
            self._requeue(work, "lease not delivered")

    def release_agent(self, agent_id: str, reason: str) -> int:
        """Put back every lease of an agent that is gone (silent, revoked); how many."""
        self._agents.pop(agent_id, None)
        self._environments.pop(agent_id, None)
        held = [w for w in self._leases.values() if w.agent_id == agent_id]
        for work in held:
            self._requeue(work, reason)
        return len(held)

    # -- housekeeping -----------------------------------------------------------------------

    def sweep(self) -> None:
        """Re-issue expired leases and silent agents' leases; forget finished and orphaned work."""
        now = self._clock()
        for work in [w for w in self._leases.values() if w.deadline <= now]:
            self._requeue(work, "lease expired")
        for agent_id in list(self._agents):
            if agent_id in self._polling:
                self._agents[agent_id] = now
            elif now - self._agents[agent_id] > self.limits.agent_timeout:
                self.release_agent(agent_id, "agent silent")
        for work in list(self._works.values()):
            finished = work.state == DONE and work.expires <= now
            orphaned = work.state != DONE and now - work.touched > self.limits.job_timeout
            if finished or orphaned:
                self._forget(work)

    def counts(self) -> dict[str, int]:
        """Items per state, and agents heard from within the timeout."""
        found = {QUEUED: 0, LEASED: 0, DONE: 0}
        for work in self._works.values():
            found[work.state] += 1
        return {**found, "agents": len(self._agents)}

    def by_environment(self) -> dict[str, dict[str, int]]:
        """Items queued and leased now, and agents heard from, per environment."""
        found: dict[str, dict[str, int]] = {}
        for work in self._works.values():
            if work.state != DONE:
                counts = found.setdefault(work.environment, {QUEUED: 0, LEASED: 0, "agents": 0})
                counts[work.state] += 1
        for agent_id in self._agents:
            environment = self._environments.get(agent_id)
            if environment is not None:
                found.setdefault(environment, {QUEUED: 0, LEASED: 0, "agents": 0})["agents"] += 1
        return found

    def connected(self, agent_id: str) -> bool:
        return agent_id in self._agents

    def _requeue(self, work: _Work, reason: str) -> None:
        self._leases.pop(work.lease_id, None)
        work.lease_id = work.agent_id = ""
        work.generation += 1
        work.chunks, work.backlog, work.next_seq = [], 0, 0
        if work.generation > self.limits.max_attempts:
            self.events[(work.environment, "failed")] += 1
            self._fail(work, f"no agent finished {work.operation} in"
                             f" {self.limits.max_attempts} attempts (last: {reason})")
        else:
            self.events[(work.environment, "reissued")] += 1
            work.state = QUEUED
            self._queues.setdefault(work.environment, deque()).appendleft(work)  # oldest first
            self._signal(work.environment).pulse()
        work.signal.pulse()

    def _fail(self, work: _Work, message: str) -> None:
        result = WorkResult(lease_id="", work_id=work.id, seq=0, final=True, ok=False,
                            error=ErrorInfo("AgentError", message, operation=work.operation))
        body = encode(result)
        work.chunks = [_Chunk(0, True, body, 0)]
        work.state, work.expires = DONE, self._clock() + self.limits.done_ttl

    def _forget(self, work: _Work) -> None:
        self._works.pop(work.id, None)
        if work.state == QUEUED:
            with contextlib.suppress(ValueError):
                self._queues[work.environment].remove(work)
        self._leases.pop(work.lease_id, None)
        work.signal.pulse()

    def _signal(self, environment: str) -> _Signal:
        return self._ready.setdefault(environment, _Signal())


@dataclass(frozen=True)
class Outcome:
    """How one work item ended, as a job collects it: each chunk's value in order, or why
    there are none."""

    values: list[Any]
    error: str = ""          # the agent's error, or "the work was lost"; "" when it went well
    finished: bool = True    # False: no final chunk came within the time given


async def outcome(queue: WorkQueue, work_id: str, seconds: float) -> Outcome:
    """Collect one work item to its final chunk, within `seconds` (for the gateway's own
    work: relayed passwords, staged computer accounts)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    after, generation = -1, 0
    pages: dict[int, Any] = {}
    while loop.time() < deadline:
        try:
            progress = await queue.progress(work_id, after, generation,
                                            min(POLL_WAIT_SECONDS, deadline - loop.time()))
        except UnknownWork:
            return Outcome([], "the work was lost")
        if generation and progress.generation != generation:
            pages, after = {}, -1   # an agent was lost: the work started over
        generation = progress.generation
        for chunk in progress.chunks:
            seq = int(chunk["seq"])
            if seq <= after:
                continue
            after = seq
            if chunk.get("error"):
                return Outcome([], str(chunk["error"].get("message", "")))
            pages[seq] = chunk.get("value")
            if chunk.get("final"):
                return Outcome([pages[i] for i in sorted(pages)])
    return Outcome([], f"no answer within {seconds:.0f} s", finished=False)

