"""`ferry trace`: one object through a workflow, step by step; --apply does what it shows."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ferry.cli.options import DEFAULT_STATE, PathsOpt, SecretsOpt, StateOpt, VerboseOpt
from ferry.errors import InvalidInput


def trace(paths: PathsOpt,
          object_key: Annotated[str, typer.Argument(
              metavar="OBJECT", help="A DN, UPN, sAMAccountName, mail or objectGUID.")],
          workflow: Annotated[str, typer.Option("--workflow", "-w",
                                                help="The Workflow to trace it through.")],
          state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
          apply: Annotated[bool, typer.Option(
              "--apply", help="Perform the traced operation and record it as a run.")] = False,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
          verbose: VerboseOpt = False) -> None:
    """Show where an object is found, its scope, match, staging, diff and operation."""
    from ferry import logs
    from ferry.cli import manifests as local
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore
    from ferry.sync.trace import trace_object
    from ferry.sync.trace_text import report_json, report_lines

    logs.configure("INFO" if verbose else "ERROR")
    manifests = local.load(paths)
    if workflow not in manifests.workflows:
        raise InvalidInput(f"no Workflow named {workflow!r} in the manifests"
                           f" (found: {', '.join(sorted(manifests.workflows)) or 'none'})")
    secrets = local.secrets(secrets_dir, paths)
    with StateStore(state, read_only=not apply) as store:
        report = trace_object(manifests, workflow, object_key, store, secrets,
                              RunSettings.from_environment(), apply=apply)
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        for line in report_lines(report):
            typer.echo(line)
    if report.outcome is not None:
        raise typer.Exit(int(report.outcome.exit_code))
