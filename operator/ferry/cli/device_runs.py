"""`ferry devices run -f DIR`: drive the DeviceMigrations of manifests from this machine, as
the operator does in a cluster: plans into the state store the gateway serves devices from,
progress printed until every device is done (or failed), or once with --once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import typer

from ferry import logs
from ferry.api.status import DeviceMigrationStatus, MigrationPhase
from ferry.cli import manifests as local
from ferry.cli import render
from ferry.devices.reconcile import problems, reconcile
from ferry.errors import FerryError, InvalidInput
from ferry.state.store import StateStore

_FINAL = {MigrationPhase.COMPLETED, MigrationPhase.FAILED}


class DevicesNotDone(FerryError):
    """The deadline of `ferry devices run --timeout` passed before every device finished."""


def execute(paths: list[Path], state: str, migration: str | None, once: bool,
            interval: float, timeout: float | None, stop: threading.Event | None = None) -> None:
    """Reconcile until every migration is Completed or Failed; exit 0 when all completed."""
    logs.configure("ERROR")
    manifests = local.load(paths)
    chosen = {n: m for n, m in manifests.device_migrations.items()
              if migration is None or n == migration}
    if not chosen:
        named = f"named {migration!r} " if migration else ""
        raise InvalidInput(f"no DeviceMigration {named}in the manifests (found:"
                           f" {', '.join(sorted(manifests.device_migrations)) or 'none'})")
    found = [f"DeviceMigration/{name}: {problem}" for name, dm in chosen.items()
             for problem in problems(dm.spec, manifests.environments,
                                     manifests.workflows.get(dm.spec.workflow))]
    if found:   # before the state store is opened: nothing is written
        raise InvalidInput("; ".join(found))
    secrets = local.secrets(None, paths)   # an EntraJoin's package; FERRY_SECRETS_DIR too
    stop = stop or threading.Event()
    statuses: dict[str, DeviceMigrationStatus] = {}
    started = datetime.now(UTC)
    with StateStore(state) as store:
        while True:
            for name, dm in chosen.items():
                current = dm.model_copy(update={"status": statuses.get(name)})
                outcome = reconcile(current, manifests.environments,
                                    manifests.workflows.get(dm.spec.workflow), store,
                                    datetime.now(UTC), secrets)
                for notice in outcome.notices:
                    render.out.print(f"DeviceMigration/{name}: {notice.reason}:"
                                     f" {notice.message}", soft_wrap=True)
                before = statuses.get(name)
                statuses[name] = outcome.status
                if before is None or _summary(before) != _summary(outcome.status):
                    render.out.print(f"DeviceMigration/{name}: {_summary(outcome.status)}",
                                     soft_wrap=True)
            if once or all(s.phase in _FINAL for s in statuses.values()):
                break
            if timeout is not None and \
                    (datetime.now(UTC) - started).total_seconds() > timeout:
                raise DevicesNotDone(
                    f"not every device finished within {timeout:g} s: "
                    + "; ".join(f"{n}: {_summary(s)}" for n, s in statuses.items()))
            if stop.wait(interval):
                break
    for name, status in statuses.items():
        render.device_migration(name, status)
    failed = any(s.phase is MigrationPhase.FAILED for s in statuses.values())
    raise typer.Exit(1 if failed else 0)


def _summary(status: DeviceMigrationStatus) -> str:
    phases = ", ".join(f"{d.name} {d.phase}" for d in sorted(status.devices,
                                                             key=lambda d: d.name))
    return f"{status.phase} {status.progress or '0/0'} ({phases or 'no devices'})"
