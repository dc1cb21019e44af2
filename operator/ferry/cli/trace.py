"""`ferry trace`: one object through a workflow, step by step; --apply does what it shows.
With --in-cluster the operator's trace Job does it; `trace-job` is that Job's command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ferry.cli.options import DEFAULT_STATE, SecretsOpt, StateOpt, VerboseOpt
from ferry.errors import InvalidInput


def trace(object_key: Annotated[str, typer.Argument(
              metavar="OBJECT", help="A DN, UPN, sAMAccountName, mail or objectGUID.")],
          paths: Annotated[list[Path] | None, typer.Option(
              "-f", "--filename", help="Manifest file or folder (repeatable).")] = None,
          workflow: Annotated[str | None, typer.Option(
              "--workflow", "-w", help="The Workflow to trace it through.")] = None,
          in_cluster: Annotated[str | None, typer.Option(
              "--in-cluster", metavar="[NAMESPACE/]NAME", help="Have the operator trace it"
              " through this Workflow in a Job, as its runs are, instead of -f and -w.")]
          = None,
          wait: Annotated[float, typer.Option(
              help="With --in-cluster: seconds to wait for the trace's report.")] = 300,
          state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
          apply: Annotated[bool, typer.Option(
              "--apply", help="Perform the traced operation and record it as a run.")] = False,
          as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
          verbose: VerboseOpt = False) -> None:
    """Show where an object is found, its scope, match, staging, diff and operation."""
    if in_cluster:
        if paths or workflow:
            raise InvalidInput("--in-cluster traces the Workflow in the cluster: leave out"
                               " -f and --workflow")
        _in_cluster(in_cluster, object_key, apply, as_json, wait)
        return
    if not paths or not workflow:
        raise InvalidInput("give the manifests and the Workflow (-f DIR --workflow NAME), or"
                           " a Workflow in the cluster (--in-cluster NAMESPACE/NAME)")
    from ferry import logs
    from ferry.cli import manifests as local
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore
    from ferry.sync.trace import trace_object
    from ferry.sync.trace_text import report_json

    logs.configure("INFO" if verbose else "ERROR")
    manifests = local.load(paths)
    if workflow not in manifests.workflows:
        raise InvalidInput(f"no Workflow named {workflow!r} in the manifests"
                           f" (found: {', '.join(sorted(manifests.workflows)) or 'none'})")
    secrets = local.secrets(secrets_dir, paths)
    with StateStore(state, read_only=not apply) as store:
        report = trace_object(manifests, workflow, object_key, store, secrets,
                              RunSettings.from_environment(), apply=apply)
    _print(report_json(report), as_json)
    if report.outcome is not None:
        raise typer.Exit(int(report.outcome.exit_code))


def _in_cluster(target: str, object_key: str, apply: bool, as_json: bool,
                wait: float) -> None:
    from ferry.controller.request_status import failure, wait_for_request
    from ferry.controller.trace_requests import TRACE, request_trace
    from ferry.kube import api_client, current_namespace

    namespace, _, name = target.rpartition("/")
    api = api_client()
    namespace = namespace or current_namespace()
    request = request_trace(api, namespace, name, object_key, apply)
    typer.echo(f"requested trace {request.id} of Workflow {namespace}/{name}", err=True)
    trace = wait_for_request(TRACE, api, namespace, name, request.id, wait)
    if trace.report is None:  # refused, or it failed before it traced: no report to print
        raise failure(TRACE, trace)
    _print(json.loads(trace.report), as_json)
    if trace.exit_code:
        raise typer.Exit(trace.exit_code)


def _print(data: dict[str, Any], as_json: bool) -> None:
    from ferry.sync.trace_text import json_lines

    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for line in json_lines(data):
            typer.echo(line)


def trace_job(
    workflow: Annotated[str, typer.Option("--workflow", help="NAMESPACE/NAME of the Workflow.")],
    request: Annotated[str, typer.Option("--request", help="The trace request's id.")],
    state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
) -> None:
    """Execute one in-cluster trace inside its Job (started by the operator, not by hand)."""
    from ferry import logs
    from ferry.controller.trace_job import run_trace_job
    from ferry.kube import api_client
    from ferry.secrets import SecretResolver
    from ferry.settings import RunSettings

    logs.configure("INFO")
    namespace, _, name = workflow.partition("/")
    if not namespace or not name:
        raise InvalidInput(f"--workflow must be NAMESPACE/NAME, not {workflow!r}")
    code = run_trace_job(api_client(), namespace, name, request, state,
                         SecretResolver.from_environment(secrets_dir),
                         RunSettings.from_environment())
    raise typer.Exit(int(code))
