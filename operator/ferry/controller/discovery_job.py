"""`ferry discover-job`: the command a discovery Job executes. Takes inventory of one
Environment and writes its object counts into the Environment's status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.api.environment import Environment
from ferry.api.status import DiscoveryRun, EnvironmentStatus, RunResult
from ferry.connectors.factory import open_connector
from ferry.controller.job_report import ActiveEntry, report
from ferry.controller.run_tracking import end
from ferry.kube import FerryObjects
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.discovery import DiscoveryResult, discover
from ferry.sync.outcome import ExitCode

log = structlog.get_logger("ferry.discover_job")
_ACTIVE_DISCOVERY = ActiveEntry("environments", EnvironmentStatus,
                                lambda s: s.active_discovery, "discover_job")


def run_discovery_job(api: client.ApiClient, namespace: str, name: str, run_id: str,
                      store: StateStore, secrets: SecretSource, settings: RunSettings,
                      full: bool) -> ExitCode:
    """Discover one Environment inside its Job; the outcome ends up in its status."""
    objects = FerryObjects(api)
    body = objects.get("environments", namespace, name)
    active = EnvironmentStatus.of(body).active_discovery
    if body is None or active is None or active.id != run_id:
        log.error("discover_job.not_active", run=run_id, active=active and active.id)
        return ExitCode.INVALID_INPUT
    update = partial(report, objects, _ACTIVE_DISCOVERY, namespace, name, run_id)
    update(_running)
    try:
        env = Environment.without_status(body)
    except ValidationError as exc:
        update(_final(RunResult.FAILED, str(exc)))
        return ExitCode.INVALID_INPUT
    try:
        connector = open_connector(env, secrets, settings)
        try:
            found = discover(env, connector, store, reset=full)
        finally:
            connector.close()
    except Exception as exc:  # the Environment's status must say why, whatever broke
        log.exception("discover_job.failed", environment=f"{namespace}/{name}")
        update(_final(RunResult.FAILED, f"{type(exc).__name__}: {exc}"))
        return ExitCode.FAILED
    kind = "full" if found.full else "delta"
    message = (f"{kind} discovery: {found.total} objects"
               f" ({', '.join(f'{n} {t}' for t, n in found.counts.items()) or 'none'});"
               f" {found.changed} read, {found.deleted} gone")
    update(_discovered(found, message))
    log.info("discover_job.done", environment=f"{namespace}/{name}", message=message)
    return ExitCode.OK


# Changes the Job makes to the Environment's status and to its activeDiscovery.
Change = Callable[[EnvironmentStatus, DiscoveryRun], None]


def _running(_: EnvironmentStatus, run: DiscoveryRun) -> None:
    run.result = RunResult.RUNNING


def _final(result: RunResult, message: str) -> Change:
    def change(_: EnvironmentStatus, run: DiscoveryRun) -> None:
        end(run, result, message, datetime.now(UTC))
    return change


def _discovered(found: DiscoveryResult, message: str) -> Change:
    def change(status: EnvironmentStatus, run: DiscoveryRun) -> None:
        status.object_counts, status.objects = found.counts, found.total
        status.last_discovery = datetime.now(UTC)
        end(run, RunResult.SUCCEEDED, message, status.last_discovery)
        run.full = found.full
    return change

