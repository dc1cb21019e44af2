"""The gateway's work queue with a fake clock: FIFO per environment, leases, heartbeats,
re-issue with a new generation, results from the lease holder only, collection and limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ferry.gateway.queue import (
    LeaseLost,
    OutOfOrder,
    QueueFull,
    QueueLimits,
    ResultsBacklog,
    UnknownWork,
    WorkQueue,
)
from ferry_agent.protocol import MAX_BODY_BYTES, WorkItem, WorkResult

LIMITS = QueueLimits(lease_seconds=60, agent_timeout=120, max_attempts=3, done_ttl=600,
                     delivered_grace=30, job_timeout=300)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run(test: Callable[[WorkQueue, FakeClock], Awaitable[None]],
        limits: QueueLimits = LIMITS) -> None:
    clock = FakeClock()
    asyncio.run(test(WorkQueue(limits, clock), clock))


def chunk(item: WorkItem, seq: int, value: Any = None, final: bool = False) -> WorkResult:
    return WorkResult(lease_id=item.lease_id, work_id=item.work_id, seq=seq, final=final,
                      value=value)


async def woken(task: asyncio.Task[Any]) -> Any:
    """The task's result once it is done within a few turns of the event loop: a waiter that
    was woken needs a handful, however slow the machine; one left to its timeout needs seconds."""
    for _ in range(100):
        if task.done():
            return task.result()
        await asyncio.sleep(0)
    task.cancel()
    raise AssertionError("the waiting task was not woken")


async def take(queue: WorkQueue, agent: str, environment: str) -> WorkItem:
    item = await queue.lease(agent, environment, 0)
    assert item is not None
    return item


def test_fifo_per_environment_and_only_the_agents_own() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        a1 = queue.submit("A", "exists", {"dn": "a1"})
        b1 = queue.submit("B", "exists", {"dn": "b1"})
        a2 = queue.submit("A", "exists", {"dn": "a2"})
        assert (await take(queue, "agent-a", "A")).work_id == a1
        assert (await take(queue, "agent-a", "A")).work_id == a2
        assert await queue.lease("agent-a", "A", 0) is None  # B's work is never offered to A
        item = await take(queue, "agent-b", "B")
        assert (item.work_id, item.environment, item.arguments, item.attempt) == \
            (b1, "B", {"dn": "b1"}, 1)
        assert item.lease_seconds == 60
    run(test)


def test_a_long_poll_wakes_when_work_arrives_and_ends_empty_after_wait() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await queue.lease("agent-a", "A", 0.05) is None
        assert loop.time() - started >= 0.05
        waiting = asyncio.create_task(queue.lease("agent-a", "A", 10))
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.submit("B", "exists", {})  # another environment does not wake it for nothing
        work_id = queue.submit("A", "exists", {})
        item = await woken(waiting)
        assert item is not None and item.work_id == work_id
    run(test)


def test_an_expired_lease_is_reissued_with_attempt_2_and_a_new_generation() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "read_full", {})
        first = await take(queue, "agent-1", "A")
        assert queue.accept("agent-1", chunk(first, 0, ["page 0"]), 10)
        progress = await queue.progress(work_id, -1)
        assert (progress.state, progress.generation, len(progress.chunks)) == ("leased", 1, 1)
        clock.advance(61)
        queue.sweep()
        assert (await queue.progress(work_id, 0, generation=1)).state == "queued"
        second = await take(queue, "agent-2", "A")
        assert (second.work_id, second.attempt) == (work_id, 2)
        assert second.lease_id != first.lease_id
        with pytest.raises(LeaseLost):  # the first agent's late chunks are refused
            queue.accept("agent-1", chunk(first, 1, ["page 1"]), 10)
        progress = await queue.progress(work_id, 0, generation=1)
        assert (progress.generation, progress.chunks) == (2, [])  # page 0 was discarded
        queue.accept("agent-2", chunk(second, 0, ["again"], final=True), 10)
        progress = await queue.progress(work_id, -1, generation=2)
        assert progress.state == "done"
        assert [c["value"] for c in progress.chunks] == [["again"]]
    run(test)


def test_heartbeats_and_results_extend_a_lease() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queue.submit("A", "read_full", {})
        item = await take(queue, "agent-1", "A")
        for _ in range(3):
            clock.advance(45)
            queue.heartbeat("agent-1", [item.lease_id, "some-other-lease"])
            queue.sweep()
        clock.advance(45)
        queue.accept("agent-1", chunk(item, 0), 1)
        clock.advance(45)
        queue.sweep()
        assert queue.accept("agent-1", chunk(item, 1, final=True), 1)
    run(test)


def test_another_agents_heartbeat_does_not_extend_a_lease() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queue.submit("A", "exists", {})
        item = await take(queue, "agent-1", "A")
        clock.advance(45)
        queue.heartbeat("agent-2", [item.lease_id])
        queue.heartbeat("agent-1", [])
        clock.advance(45)
        queue.sweep()
        with pytest.raises(LeaseLost):
            queue.accept("agent-1", chunk(item, 0, final=True), 1)
    run(test)


def test_a_silent_agent_loses_its_leases_before_they_expire() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queue.submit("A", "exists", {})
        item = await take(queue, "agent-1", "A")
        clock.advance(30)
        queue.heartbeat("agent-1", [])  # alive, but no longer lists the lease
        clock.advance(30)
        queue.sweep()
        assert queue.connected("agent-1")
        clock.advance(31)  # silent for 61 s > agent_timeout
        queue.sweep()
        assert not queue.connected("agent-1")
        again = await take(queue, "agent-2", "A")
        assert (again.work_id, again.attempt) == (item.work_id, 2)
    run(test, QueueLimits(lease_seconds=300, agent_timeout=60))


def test_an_agent_in_a_long_poll_is_not_silent() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queue.submit("A", "exists", {})
        item = await take(queue, "agent-1", "A")
        waiting = asyncio.create_task(queue.lease("agent-1", "A", 0.2))
        await asyncio.sleep(0)
        clock.advance(100)
        queue.sweep()
        assert queue.connected("agent-1")
        assert await waiting is None
        assert queue.accept("agent-1", chunk(item, 0, final=True), 1)
    run(test, QueueLimits(lease_seconds=300, agent_timeout=60))


def test_results_only_from_the_holder_in_order_and_repeats_ignored() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "read_full", {})
        item = await take(queue, "agent-1", "A")
        with pytest.raises(LeaseLost):
            queue.accept("agent-2", chunk(item, 0), 1)
        with pytest.raises(LeaseLost):
            queue.accept("agent-1", WorkResult(item.lease_id, "another-work", 0, False), 1)
        with pytest.raises(LeaseLost):
            queue.accept("agent-1", WorkResult("unknown-lease", work_id, 0, False), 1)
        assert queue.accept("agent-1", chunk(item, 0, "first"), 1)
        assert not queue.accept("agent-1", chunk(item, 0, "first again"), 1)
        with pytest.raises(OutOfOrder, match="expected 1, got 3"):
            queue.accept("agent-1", chunk(item, 3), 1)
        assert queue.accept("agent-1", chunk(item, 1, "last", final=True), 1)
        with pytest.raises(LeaseLost):  # the final chunk ended the lease
            queue.accept("agent-1", chunk(item, 2), 1)
        progress = await queue.progress(work_id, -1)
        assert progress.state == "done"
        assert [(c["seq"], c["value"], c["final"]) for c in progress.chunks] == \
            [(0, "first", False), (1, "last", True)]
    run(test)


def test_a_job_collects_in_steps_and_acknowledged_chunks_are_freed() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "read_full", {})
        assert (await queue.progress(work_id, -1, wait=0.01)).chunks == []
        item = await take(queue, "agent-1", "A")
        collecting = asyncio.create_task(queue.progress(work_id, -1, wait=10))
        await asyncio.sleep(0)
        queue.accept("agent-1", chunk(item, 0, "p0"), 100)
        progress = await woken(collecting)  # woken by the chunk
        assert [c["value"] for c in progress.chunks] == ["p0"]
        queue.accept("agent-1", chunk(item, 1, "p1"), 100)
        queue.accept("agent-1", chunk(item, 2, "p2"), 100)
        progress = await queue.progress(work_id, 0, generation=1)
        assert [c["seq"] for c in progress.chunks] == [1, 2]
        # A repeated request (its answer was lost) gets the same chunks again.
        assert await queue.progress(work_id, 0, generation=1) == progress
        queue.accept("agent-1", chunk(item, 3, "p3", final=True), 100)
        progress = await queue.progress(work_id, 2, generation=1)
        assert [c["seq"] for c in progress.chunks] == [3]
        # Acknowledging the final chunk forgets the work at once.
        assert (await queue.progress(work_id, 3, generation=1)).chunks == []
        with pytest.raises(UnknownWork):
            await queue.progress(work_id, 3, generation=1)
    run(test)


def test_a_job_that_omits_the_generation_is_kept_in_step() -> None:
    """As ferry.connectors.agent_session does: `after` only, and after = -1 once it saw a
    new one."""
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "read_full", {})
        first = await take(queue, "agent-1", "A")
        queue.accept("agent-1", chunk(first, 0, "old 0"), 1)
        queue.accept("agent-1", chunk(first, 1, "old 1"), 1)
        assert len((await queue.progress(work_id, -1)).chunks) == 2
        clock.advance(61)
        queue.sweep()
        second = await take(queue, "agent-2", "A")
        for seq in range(3):
            queue.accept("agent-2", chunk(second, seq, f"new {seq}"), 1)
        # The job still believes in generation 1 and says after=1: nothing of generation 2
        # is acknowledged, and it is told about generation 2 from seq 0.
        progress = await queue.progress(work_id, 1)
        assert progress.generation == 2
        assert [c["value"] for c in progress.chunks] == ["new 0", "new 1", "new 2"]
        # It starts over with after = -1, then collects on.
        assert len((await queue.progress(work_id, -1)).chunks) == 3
        queue.accept("agent-2", chunk(second, 3, "new 3", final=True), 1)
        progress = await queue.progress(work_id, 2)
        assert [c["value"] for c in progress.chunks] == ["new 3"]
    run(test)


def test_answers_stay_within_the_body_limit() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "read_full", {})
        item = await take(queue, "agent-1", "A")
        size = MAX_BODY_BYTES // 5
        for seq in range(4):
            queue.accept("agent-1", chunk(item, seq, seq, final=seq == 3), size)
        first = await queue.progress(work_id, -1)
        assert [c["seq"] for c in first.chunks] == [0, 1]
        second = await queue.progress(work_id, 1, generation=1)
        assert [c["seq"] for c in second.chunks] == [2, 3]
    run(test)


def test_finished_work_is_forgotten_after_delivery_or_its_ttl() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        delivered = queue.submit("A", "exists", {})
        uncollected = queue.submit("A", "exists", {})
        for _ in range(2):
            item = await take(queue, "agent-1", "A")
            queue.accept("agent-1", chunk(item, 0, True, final=True), 1)
        assert len((await queue.progress(delivered, -1)).chunks) == 1
        clock.advance(29)
        queue.sweep()
        assert len((await queue.progress(delivered, -1)).chunks) == 1  # a retry within grace
        clock.advance(2)
        queue.sweep()
        with pytest.raises(UnknownWork):
            await queue.progress(delivered, -1)
        assert queue.counts()["done"] == 1
        clock.advance(600)
        queue.sweep()
        with pytest.raises(UnknownWork):
            await queue.progress(uncollected, -1)
        assert queue.counts() == {"queued": 0, "leased": 0, "done": 0, "agents": 0}
    run(test, QueueLimits(agent_timeout=60, job_timeout=10_000))


def test_work_whose_job_stopped_asking_is_dropped() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queued = queue.submit("A", "exists", {})
        leased = queue.submit("A", "exists", {})
        kept = queue.submit("A", "exists", {})
        # The first two are leased in order; `kept` stays queued but its job keeps asking.
        first = await take(queue, "agent-1", "A")
        assert first.work_id == queued
        item = await take(queue, "agent-1", "A")
        assert item.work_id == leased
        clock.advance(200)
        queue.heartbeat("agent-1", [first.lease_id, item.lease_id])
        await queue.progress(kept, -1)
        clock.advance(200)
        queue.heartbeat("agent-1", [first.lease_id, item.lease_id])
        queue.sweep()
        with pytest.raises(UnknownWork):
            await queue.progress(leased, -1)
        with pytest.raises(LeaseLost):
            queue.accept("agent-1", chunk(item, 0, final=True), 1)
        assert (await queue.progress(kept, -1)).state == "queued"
    run(test, QueueLimits(lease_seconds=1000, agent_timeout=1000, job_timeout=300))


def test_work_that_no_agent_finishes_fails_with_an_agent_error() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "create", {"password": "never logged"})
        for attempt in (1, 2, 3):
            item = await take(queue, f"agent-{attempt}", "A")
            assert item.attempt == attempt
            clock.advance(61)
            queue.sweep()
        assert await queue.lease("agent-4", "A", 0) is None
        progress = await queue.progress(work_id, -1)
        assert (progress.state, progress.generation) == ("done", 4)
        [failure] = progress.chunks
        assert failure["final"] is True and failure["ok"] is False
        assert failure["error"]["type"] == "AgentError"
        assert "3 attempts" in failure["error"]["message"]
    run(test)


def test_releasing_a_revoked_agent_requeues_its_work_at_the_front() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        first = queue.submit("A", "exists", {})
        second = queue.submit("A", "exists", {})
        item = await take(queue, "agent-1", "A")
        assert queue.release_agent("agent-1", "agent revoked") == 1
        again = await take(queue, "agent-2", "A")
        assert (again.work_id, again.attempt) == (first, 2)
        assert (await take(queue, "agent-2", "A")).work_id == second
        with pytest.raises(LeaseLost):
            queue.accept("agent-1", chunk(item, 0, final=True), 1)
    run(test)


def test_queue_and_backlog_limits() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queue.submit("A", "read_full", {})
        queue.submit("A", "exists", {})
        with pytest.raises(QueueFull):
            queue.submit("A", "exists", {})
        queue.submit("B", "exists", {})  # another environment has its own queue
        with pytest.raises(QueueFull):
            queue.submit("C", "exists", {})  # but not beyond the total
        item = await take(queue, "agent-1", "A")
        queue.accept("agent-1", chunk(item, 0), 800)
        with pytest.raises(ResultsBacklog):
            queue.accept("agent-1", chunk(item, 1), 800)
        await queue.progress(item.work_id, -1)
        await queue.progress(item.work_id, 0, generation=1)  # acknowledged: room again
        assert queue.accept("agent-1", chunk(item, 1), 800)
        assert queue.accept("agent-1", chunk(item, 2, final=True), 800)  # a final always fits
    run(test, QueueLimits(max_queued=2, max_works=3, max_backlog_bytes=1000))


def test_a_lease_that_never_reached_its_agent_is_given_back() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        work_id = queue.submit("A", "exists", {})
        item = await take(queue, "agent-1", "A")
        queue.give_back(item.lease_id)
        queue.give_back(item.lease_id)  # twice is harmless
        again = await take(queue, "agent-1", "A")
        assert (again.work_id, again.attempt) == (work_id, 2)
    run(test)


def test_metrics_count_queued_leased_reissued_and_failed_per_environment() -> None:
    async def test(queue: WorkQueue, clock: FakeClock) -> None:
        queue.submit("src", "read", {})
        queue.submit("src", "read", {})
        queue.submit("tgt", "write", {})
        await take(queue, "a1", "src")
        assert queue.by_environment() == {"src": {"queued": 1, "leased": 1, "agents": 1},
                                          "tgt": {"queued": 1, "leased": 0, "agents": 0}}
        for attempt in range(LIMITS.max_attempts):  # each lease expires: re-issued, then failed
            clock.advance(LIMITS.lease_seconds + 1)
            queue.sweep()
            if attempt < LIMITS.max_attempts - 1:
                await take(queue, "a1", "src")
        assert dict(queue.events) == {("src", "queued"): 2, ("tgt", "queued"): 1,
                                      ("src", "leased"): 3, ("src", "reissued"): 2,
                                      ("src", "failed"): 1}
        assert queue.by_environment()["src"] == {"queued": 1, "leased": 0, "agents": 1}

    run(test)
