"""`ferry plan`, `run`, `runs` and `check`: workflows, their runs and their environments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferry.cli import render
from ferry.cli.options import (
    DEFAULT_STATE,
    PathsOpt,
    PlanOutOpt,
    SecretsOpt,
    StateOpt,
    VerboseOpt,
    WorkflowOpt,
)
from ferry.cli.render import labelled, out
from ferry.errors import ExitCode, InvalidInput


def plan(paths: PathsOpt, workflow: WorkflowOpt = None, state: StateOpt = DEFAULT_STATE,
         secrets_dir: SecretsOpt = None, out_file: PlanOutOpt = None,
         verbose: VerboseOpt = False) -> None:
    """Show what a run would change, writing nothing anywhere (test mode)."""
    from ferry.cli.local_runs import execute

    execute(paths, workflow, state, secrets_dir, True, False, out_file, verbose)


def run(paths: Annotated[list[Path] | None, typer.Option(
            "-f", "--filename", help="Manifest file or folder (repeatable).")] = None,
        workflow: WorkflowOpt = None, state: StateOpt = DEFAULT_STATE,
        secrets_dir: SecretsOpt = None,
        full: Annotated[bool, typer.Option("--full", help="Read everything even when the"
                                           " workflow is changed-objects-only.")] = False,
        out_file: PlanOutOpt = None,
        in_cluster: Annotated[str | None, typer.Option(
            "--in-cluster", help="Ask the operator to run this Workflow (NAME or"
            " NAMESPACE/NAME) as a Job instead of running manifests here.")] = None,
        wait: Annotated[float, typer.Option(
            help="With --in-cluster: seconds to wait for the run's end (0: don't wait).")]
        = 0,
        verbose: VerboseOpt = False) -> None:
    """Run workflows. Exit codes: 0 ok, 1 failed, 2 invalid input, 3 delete threshold hit,
    4 some objects failed (retried next run)."""
    if in_cluster:
        _request_in_cluster(in_cluster, wait)
        return
    if not paths:
        raise InvalidInput("give manifests with -f PATH, or a Workflow in the cluster with"
                           " --in-cluster")
    from ferry.cli.local_runs import execute

    execute(paths, workflow, state, secrets_dir, False, full, out_file, verbose)


def _request_in_cluster(target: str, wait: float) -> None:
    from ferry.api.status import RunResult
    from ferry.controller.requests import request_run, wait_for_run
    from ferry.engine.plan import SUMMARY_COUNT_KEYS
    from ferry.kube import api_client, current_namespace

    namespace, _, name = target.rpartition("/")
    api = api_client()
    namespace = namespace or current_namespace()
    run_id = request_run(api, namespace, name)
    out.print(f"requested run {run_id} of Workflow {namespace}/{name}")
    if wait <= 0:
        return
    summary = wait_for_run(api, namespace, name, run_id, wait)
    counts = summary.counts.model_dump(by_alias=True)
    out.print(f"run {run_id}: {summary.result} "
              + " ".join(f"{k}={counts[k]}" for k in SUMMARY_COUNT_KEYS)
              + (f" ({summary.message})" if summary.message else ""))
    if summary.result != RunResult.SUCCEEDED:
        raise typer.Exit(ExitCode.FAILED)


def runs(state: StateOpt = DEFAULT_STATE, workflow: WorkflowOpt = None,
         run_id: Annotated[str | None, typer.Option("--run", help="Show one run's objects.")]
         = None,
         limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20,
         as_csv: Annotated[bool, typer.Option(
             "--csv", help="With --run: the run's per-object results as CSV.")] = False,
         ) -> None:
    """List recent runs with their counts, or one run's per-object results."""
    from ferry.state.store import StateStore

    if as_csv and not run_id:
        raise InvalidInput("--csv prints one run's objects: give --run ID as well")
    with StateStore(state) as store:
        if run_id and store.runs.get(run_id) is None:
            raise InvalidInput(f"--run {run_id}: no such run in the state store {state};"
                               " `ferry runs` lists them")
        if run_id and as_csv:
            from ferry.reports.run_results import run_csv

            typer.echo(run_csv(store.runs.results(run_id)), nl=False)
        elif run_id:
            render.run_objects(store.runs.results(run_id))
            render.script_runs(store.script_runs.of(run_id))
        else:
            render.runs(store.runs.recent(workflow, limit))


def check(paths: PathsOpt, secrets_dir: SecretsOpt = None,
          environment: Annotated[str | None, typer.Option(
              "--environment", "-e", help="Check only this Environment.")] = None) -> None:
    """Reach, sign in to and read each environment; for Entra ID name the Graph permissions
    the workflows need that the app lacks. Exit 0 when all pass, 1 otherwise."""
    from ferry.cli import manifests as local
    from ferry.settings import RunSettings
    from ferry.sync.checks import check_environment  # Graph and LDAP only where needed

    settings = RunSettings.from_environment()
    manifests = local.load(paths)
    secrets = local.secrets(secrets_dir, paths)
    chosen = [e for n, e in sorted(manifests.environments.items())
              if environment is None or n == environment]
    if not chosen:
        raise InvalidInput(f"no Environment {environment!r} in the manifests")
    failed = 0
    for env in chosen:
        result = check_environment(manifests, env, secrets, settings)
        failed += not result.ok
        mark = labelled("ok", "green") if result.ok else labelled("failed", "red")
        out.print(mark, f"Environment/{result.environment} ({env.spec.type.value}):",
                  result.message, soft_wrap=True)
    raise typer.Exit(1 if failed else 0)
