"""What the `ferry` command prints: its two consoles, styled labels, tables and progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ferry.errors import FerryError

if TYPE_CHECKING:
    from datetime import datetime

    from rich.progress import Progress, TaskID

    from ferry.api.status import DeviceMigrationStatus, ScriptRun
    from ferry.lab.samba import DomainStatus, LabDomain
    from ferry.state.rows import AgentInfo, DeviceAgentInfo, ObjectResult, StoredRun
    from ferry.sync.runner import CompletedRun

# Tables stay readable when output goes to a file or CI log (rich assumes 80 columns there).
# Nothing printed is ever parsed as rich markup or highlighted: errors, DNs, values and file
# names come from outside and may hold `[...]`. Styles are applied only through `labelled`.
out = Console(width=None if sys.stdout.isatty() else 160, markup=False, highlight=False)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120, markup=False,
              highlight=False)


def labelled(label: str, style: str, text: object = "") -> Text:
    """A styled label followed by text that is shown exactly as it is."""
    return Text.assemble((label, style), " " if text != "" else "", str(text))


# Commands that head their errors with a label (the lab and the gateway print other output
# around them); every other command prints the message alone.
_ERROR_LABELS = {"lab": ("lab:", "bold red"), "gateway": ("gateway:", "bold red"),
                 "job-credential key": ("job-credential key:", ""),
                 "job-credential create": ("job-credential create:", "")}


def failure(command: str, exc: FerryError) -> None:
    """Why `command` (e.g. "lab up") ended: the error's message, or each of its problems."""
    from ferry.api.errors import ManifestError
    from ferry.secrets import SecretsMissing

    if isinstance(exc, ManifestError):
        err.print(labelled(f"{len(exc.problems)} problem(s) in the manifests; nothing ran:",
                           "bold red"))
        for problem in exc.problems:
            err.print(f"  {problem}")
    elif isinstance(exc, SecretsMissing):  # one line per Secret: never wrapped
        for line in exc.problems:
            err.print(line, soft_wrap=True)
    elif label := _ERROR_LABELS.get(command) or _ERROR_LABELS.get(command.partition(" ")[0]):
        err.print(labelled(*label, exc))
    else:
        err.print(str(exc))


class RichProgress:
    """Progress bars on the terminal for reads and writes."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def task(self, description: str, total: int | None = None) -> _RichTask:
        return _RichTask(self.progress, self.progress.add_task(description, total=total))


class _RichTask:
    def __init__(self, progress: Progress, task_id: TaskID):
        self.progress, self.task_id = progress, task_id

    def advance(self, amount: int = 1) -> None:
        self.progress.advance(self.task_id, amount)

    def finish(self) -> None:
        task = next(t for t in self.progress.tasks if t.id == self.task_id)
        self.progress.update(self.task_id, total=task.completed)


@contextmanager
def progress_bars() -> Iterator[RichProgress]:
    """Bars on stderr while a run reads and writes, gone when it ends."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                  transient=True) as bars:
        yield RichProgress(bars)


def run_result(result: CompletedRun) -> None:
    """A finished run (or plan): counts per object type, then its problems."""
    from ferry.engine.plan import Count

    o = result.outcome
    what = ("plan (test mode, nothing written)" if o.mode == "test"
            else f"run {o.run_id} ({o.mode})")
    title = f"Workflow {o.workflow}: {what}: {o.result}"
    table = Table(title=title, title_justify="left")
    table.add_column("type")
    for key in Count:
        table.add_column(key, justify="right")
    for object_type, counts in o.counts_as_dict().items():
        table.add_row(object_type, *(str(counts[k]) for k in Count))
    out.print(table)
    if o.mode == "test":
        _operations(result)
    lines = [f"conflict: {c.message}" for c in o.conflicts]
    lines += [f"error: {e.source_dn}: {e.message}" for e in o.staging_errors]
    lines += [f"error: {f.message}" for f in o.failures]
    lines += [f"out of scope: {r.message}" for r in o.out_of_scope]
    for line in lines[:20]:
        out.print(f"  {line}")
    if len(lines) > 20:
        out.print(f"  ... and {len(lines) - 20} more (see `ferry runs --run {o.run_id}`)")
    for message in o.threshold_messages:
        out.print(labelled("delete threshold:", "bold yellow", message))
    script_runs(o.scripts)
    if o.fatal:
        out.print(labelled("failed:", "bold red", o.fatal))
    if result.plan_path:
        out.print(f"plan saved to {result.plan_path}")


def alert_results(sent: list[str], failed: list[str]) -> None:
    """The alerts a run sent (stdout) and those it could not (stderr)."""
    for line in sent:
        out.print(line)
    for line in failed:
        err.print(labelled("warning", "yellow", line))


def _operations(result: CompletedRun, limit: int = 40) -> None:
    """What a plan would do, one line per operation (the JSON file has them all)."""
    from ferry.engine.plan import OpKind

    shown = 0
    total = sum(len(p.operations) for p in result.plans)
    for plan in result.plans:
        for op in plan.operations:
            if shown == limit:
                where = "in the plan file" if result.plan_path else "(--out FILE saves all)"
                out.print(f"  ... and {total - limit} more operations {where}")
                return
            if op.kind is OpKind.UPDATE:
                detail = ", ".join(sorted(op.changes)) or "account state"
                line = f"update {op.object_type} {op.dn}: {detail}"
            elif op.kind is OpKind.MOVE:
                line = f"move {op.object_type} {op.dn} -> {op.new_dn}"
            elif op.kind is OpKind.REFERENCES:
                line = (f"{op.attribute} of {op.object_type} {op.dn}: +{len(op.add)}"
                        f" -{len(op.remove)}")
            else:
                line = f"{op.kind.value} {op.object_type} {op.dn}"
            out.print(f"  {line}")
            shown += 1


def runs(summaries: Iterable[StoredRun]) -> None:
    """Recent runs, one line each with the totals a reader looks at first."""
    from ferry.engine.plan import SUMMARY_COUNT_KEYS

    table = Table()
    for column in ("run", "workflow", "mode", "started", "result"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    for column in SUMMARY_COUNT_KEYS:
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    table.add_column("message", overflow="fold")
    for r in summaries:
        totals = {k: sum(c.get(k, 0) for c in r.counts.values()) for k in SUMMARY_COUNT_KEYS}
        table.add_row(r.id, r.workflow, r.mode, f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.result,
                      *(str(totals[k]) for k in SUMMARY_COUNT_KEYS), r.message)
    out.print(table)


def run_objects(rows: Iterable[ObjectResult]) -> None:
    """One run's per-object results."""
    table = Table("pair", "type", "operation", "outcome", "target", "message")
    for row in rows:
        table.add_row(row.pair, row.object_type, row.operation, row.outcome, row.target_dn,
                      row.message)
    out.print(table)


def script_runs(scripts: Sequence[ScriptRun], tail_lines: int = 5) -> None:
    """A run's script steps: where each ran, how it ended, and the end of its output."""
    for run in scripts:
        name = f" ({run.name})" if run.name else ""
        code = f", exit code {run.exit_code}" if run.exit_code is not None else ""
        took = f", {run.duration_seconds:.1f} s" if run.duration_seconds is not None else ""
        out.print(f"script step {run.step}{name}: {run.result} on {run.where}{code}{took}")
        for line in run.output_tail.splitlines()[-tail_lines:]:
            out.print(f"  | {line}", markup=False, highlight=False)


def agents(found: Iterable[AgentInfo]) -> None:
    """Enrolled agents with their last heartbeat and whether they are revoked."""
    table = Table("id", "name", "environment", "host", "version", "enrolled", "last seen",
                  "state")
    for a in found:
        table.add_row(a.id, a.name, a.environment, a.host, a.version,
                      *_enrollment(a.enrolled_at, a.last_seen, a.revoked_at))
    out.print(table)


def device_agents(found: Iterable[DeviceAgentInfo]) -> None:
    """A migration's device agents: computer name, os, host, last contact, revoked."""
    table = Table("name", "id", "os", "host", "version", "enrolled", "last contact", "state")
    for a in found:
        table.add_row(a.name, a.id, a.os, a.host, a.version,
                      *_enrollment(a.enrolled_at, a.last_seen, a.revoked_at))
    out.print(table)


def _enrollment(enrolled: datetime, last_seen: datetime | None,
                revoked: datetime | None) -> tuple[str, str, str]:
    """An agent's enrolled, last seen and state cells."""
    return (f"{enrolled:%Y-%m-%d %H:%M:%S}",
            f"{last_seen:%Y-%m-%d %H:%M:%S}" if last_seen else "-",
            f"revoked {revoked:%Y-%m-%d %H:%M}" if revoked else "active")


def lab_domains(domains: Iterable[LabDomain], lab_dir: Path) -> None:
    """The lab's domains and where their credentials are."""
    table = Table("realm", "address", "base DN", "LDAPS", "credentials (Secret folder)",
                  title="Lab domains", title_justify="left")
    for d in domains:
        table.add_row(d.realm, d.ip, d.base_dn, f"ldaps://{d.ip}:{d.port}",
                      str(lab_dir / "secrets" / d.secret_name))
    out.print(table)


def lab_status(statuses: Iterable[DomainStatus]) -> None:
    """Each lab domain's process and whether it answers."""
    table = Table("realm", "address", "pid", "running", "LDAPS bind")
    for s in statuses:
        table.add_row(s.domain.realm, s.domain.ip, str(s.pid or "-"), str(s.running),
                      str(s.reachable))
    out.print(table)


def device_migration(name: str, status: DeviceMigrationStatus) -> None:
    """Each device of a DeviceMigration: wave, phase, every action's state and message."""
    out.print(labelled(f"DeviceMigration/{name}:", "bold",
                       f"{status.phase} {status.progress or '0/0'}"))
    table = Table("device", "wave", "phase", "actions", "message")
    for device in sorted(status.devices, key=lambda d: (d.wave, d.name)):
        actions = ", ".join(f"{a.id} {a.state}" for a in device.actions)
        table.add_row(device.name, device.wave, str(device.phase), actions,
                      device.message or "")
    out.print(table)
