"""The `ferry` command: plan and run workflows from manifests, inspect runs, drive the lab.

Each command group is a module; a command parses its options, makes one call and renders what
comes back (render.py). What a command needs beyond typer and rich is imported when it runs,
so `ferry --help` and every command load only their own part of Ferry.
"""

from __future__ import annotations

from ferry.cli import (
    agents,
    devices,
    discover,
    gateway,
    guests,
    job_credentials,
    jobs,
    lab,
    report,
    trace,
    workflows,
)
from ferry.cli.group import command_group

app = command_group(add_completion=False,
                    help="Ferry: sync and migrate identities between directories.")
# In the order `ferry --help` lists them.
app.command()(workflows.plan)
app.command()(workflows.run)
app.command()(trace.trace)
app.command()(jobs.operator)
app.command("sync-job")(jobs.sync_job)
app.command("trace-job")(trace.trace_job)
app.command()(workflows.runs)
app.command()(workflows.check)
app.command()(discover.discover)
app.add_typer(report.app, name="report")
app.command("match-report-job")(report.match_report_job)
app.command("discover-job")(jobs.discover_job)
app.command()(gateway.gateway)
app.add_typer(lab.app, name="lab")
app.add_typer(agents.app, name="agent")
app.add_typer(devices.app, name="devices")
app.add_typer(guests.app, name="guests")
app.add_typer(job_credentials.app, name="job-credential")


def main() -> None:
    app()
