"""`ferry operator` and the entrypoints of the Jobs it starts: `sync-job`, `discover-job`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import typer

from ferry.cli.options import DEFAULT_STATE, SecretsOpt, StateOpt
from ferry.errors import ExitCode, InvalidInput


def operator(
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", envvar="FERRY_NAMESPACE",
        help="Namespace to watch (default: the pod's own, or the kubeconfig context's).")]
    = None,
    all_namespaces: Annotated[bool, typer.Option(
        "--all-namespaces", "-A", envvar="FERRY_CLUSTER_WIDE", help="Watch every namespace.")]
    = False,
    liveness: Annotated[str | None, typer.Option(
        help="Serve a health endpoint, e.g. http://0.0.0.0:8080/healthz.")] = None,
) -> None:
    """Run the operator: reconcile Environments, Templates and Workflows; runs become Jobs."""
    from ferry import logs
    from ferry.controller import handlers
    from ferry.kube import current_namespace
    from ferry.settings import OperatorSettings

    logs.configure("INFO")
    settings = OperatorSettings.from_environment()
    watched = None if all_namespaces else (namespace or current_namespace())
    handlers.run(settings.model_copy(update={"namespace": watched,
                                             "cluster_wide": all_namespaces}), liveness)


def sync_job(
    workflow: Annotated[str, typer.Option("--workflow", help="NAMESPACE/NAME of the Workflow.")],
    run_id: Annotated[str, typer.Option("--run", help="Run id the operator gave this Job.")],
    state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
) -> None:
    """Execute one run inside its Job (started by the operator, not by hand)."""
    from ferry.controller.sync_job import run_sync_job

    _job_command("--workflow", workflow, state, secrets_dir,
                 lambda api, ns, name, store, secrets, settings: run_sync_job(
                     api, ns, name, run_id, store, secrets, settings), run=run_id)


def discover_job(
    environment: Annotated[str, typer.Option("--environment",
                                             help="NAMESPACE/NAME of the Environment.")],
    run_id: Annotated[str, typer.Option("--run", help="Run id the operator gave this Job.")],
    full: Annotated[bool, typer.Option("--full", help="Reset the environment's watermarks"
                                       " and read everything.")] = False,
    state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
) -> None:
    """Take inventory of one Environment inside its Job (started by the operator)."""
    from ferry.controller.discovery_job import run_discovery_job

    _job_command("--environment", environment, state, secrets_dir,
                 lambda api, ns, name, store, secrets, settings: run_discovery_job(
                     api, ns, name, run_id, store, secrets, settings, full), run=run_id)


def _job_command(option: str, target: str, state: str, secrets_dir: str | None,
                 body: Callable[..., ExitCode], run: str) -> None:
    """What every Job entrypoint does around its body: logs, NAMESPACE/NAME, store, exit."""
    import structlog

    from ferry import logs
    from ferry.kube import api_client
    from ferry.secrets import SecretResolver
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore

    logs.configure("INFO")
    settings = RunSettings.from_environment()
    namespace, _, name = target.partition("/")
    if not namespace or not name:
        raise InvalidInput(f"{option} must be NAMESPACE/NAME, not {target!r}")
    # Every line of the Job names what it works on: its namespace, object and run.
    structlog.contextvars.bind_contextvars(namespace=namespace, run=run,
                                           **{option.lstrip("-"): name})
    with StateStore(state) as store:
        code = body(api_client(), namespace, name, store,
                    SecretResolver.from_environment(secrets_dir), settings)
    raise typer.Exit(int(code))
