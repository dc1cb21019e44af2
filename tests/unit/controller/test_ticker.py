"""The operator's ticker: one object whose scheduled reconcile fails does not stop the others'."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import structlog

from ferry import logs
from ferry.controller.cache import ObjectCache
from ferry.controller.handlers import Controller, _tick


@dataclass
class Reconciler:
    """Records what it reconciled; the names in `broken` fail as a bug would."""

    broken: set[str] = field(default_factory=set)
    done: list[str] = field(default_factory=list)
    environments_due: bool = False

    def reconcile(self, namespace: str, name: str) -> None:
        if name in self.broken:
            raise FileNotFoundError(f"/var/run/secrets/ferry/{name}")
        self.done.append(name)

    def due(self, _body: dict[str, Any], _now: Any) -> bool:
        return self.environments_due


@dataclass
class Settings:
    tick_seconds: float = 0.01


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What Ferry logs during the test, as JSON lines; afterwards structlog is as it was."""
    before = structlog.get_config()
    buffer = io.StringIO()
    logs.configure("INFO", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    try:
        yield buffer
    finally:
        structlog.configure(**before)


def test_a_failing_scheduled_reconcile_does_not_stop_the_ticker(logged: io.StringIO) -> None:
    cache = ObjectCache()
    for name in ("broken", "fine"):
        cache.put("Workflow", {"metadata": {"namespace": "ns", "name": name, "generation": 1},
                               "status": {"nextRunTime": "2000-01-01T00:00:00Z"}})
    cache.put("Environment", {"metadata": {"namespace": "ns", "name": "env"}})
    workflows = Reconciler(broken={"broken"})
    environments = Reconciler(environments_due=True)
    cache.put("DeviceMigration", {"metadata": {"namespace": "ns", "name": "move"}})
    devices = Reconciler()
    ctl = cast(Controller, Controller(cast(Any, Settings()), cache, cast(Any, workflows),
                                      cast(Any, environments), cast(Any, None),
                                      cast(Any, devices)))

    async def scenario() -> None:
        ticker = asyncio.create_task(_tick(ctl))
        for _ in range(10_000):  # event-loop turns, not seconds: the ticker must tick on
            if workflows.done.count("fine") >= 2 and environments.done and devices.done:
                break
            assert not ticker.done(), ticker.exception()
            await asyncio.sleep(0.01)
        ticker.cancel()

    asyncio.run(scenario())
    assert workflows.done.count("fine") >= 2  # ticked again after the failure
    assert environments.done  # and the Environments after the broken Workflow were reached
    assert "move" in devices.done  # DeviceMigrations read their devices' progress each tick
    failed = [line for line in logged.getvalue().splitlines()
              if "scheduled reconcile failed" in line]
    assert failed and '"name": "broken"' in failed[0] and "FileNotFoundError" in failed[0]
