"""`ferry plan` and `ferry run` from manifests: the workflows run here, one after the other."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from ferry import logs
from ferry.alerts.delivery import alert_secrets
from ferry.alerts.local import send_run_alerts
from ferry.api.status import RunResult
from ferry.cli import manifests as local
from ferry.cli import render
from ferry.errors import ExitCode, InvalidInput
from ferry.secrets import ResolvedSecrets, SecretsMissing, resolve_all
from ferry.settings import RunSettings
from ferry.state.store import StateStore
from ferry.sync.runner import RunRequest, read_run_secrets, run_workflow


def execute(paths: list[Path], workflow: str | None, state: str, secrets_dir: str | None,
            test_mode: bool, full: bool, plan_out: Path | None, verbose: bool) -> None:
    """Run (or plan) the chosen workflows and exit with the most severe of their codes."""
    logs.configure("INFO" if verbose else "ERROR")
    settings = RunSettings.from_environment()
    manifests = local.load(paths)
    names = [workflow] if workflow else sorted(manifests.workflows)
    if workflow and workflow not in manifests.workflows:
        raise InvalidInput(f"no Workflow named {workflow!r} in the manifests"
                           f" (found: {', '.join(sorted(manifests.workflows)) or 'none'})")
    if not names:
        raise InvalidInput("the manifests hold no Workflow; nothing to run")
    # Test mode writes nothing anywhere: not the state store, not a plan file unless asked.
    tests = {n: test_mode or manifests.workflows[n].spec.test_mode for n in names}
    secrets = local.secrets(secrets_dir, paths)
    # A missing Secret is a configuration error: found for every workflow of the call before
    # anything is opened, the state store included.
    missing: dict[str, None] = {}
    alert_values: dict[str, ResolvedSecrets] = {}
    for name in names:
        try:
            read_run_secrets(manifests, name, secrets, tests[name])
        except SecretsMissing as exc:
            missing.update(dict.fromkeys(exc.problems))
        if tests[name]:
            continue  # test mode sends no alerts, so it needs none of their secrets
        try:
            alert_values[name] = resolve_all(secrets, alert_secrets(
                manifests.workflows[name].spec.alerts, f"Workflow/{name}: spec"))
        except SecretsMissing as exc:
            missing.update(dict.fromkeys(exc.problems))
    if missing:
        raise SecretsMissing(missing)
    codes = []
    with StateStore(state, read_only=all(tests.values())) as store:
        for name in names:
            plan_path = plan_out or (None if tests[name] else Path(".ferry/plans") / f"{name}-"
                                     f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
            # SecretsMissing still, should a Secret go away since the check above.
            started = datetime.now(UTC)
            with render.progress_bars() as bars:
                result = run_workflow(manifests, RunRequest(name, test_mode, full, plan_path),
                                      store, secrets, settings, bars)
            render.run_result(result)
            if name in alert_values and manifests.workflows[name].spec.alerts:
                previous = store.runs.previous_finished(name, result.outcome.run_id)
                render.alert_results(*send_run_alerts(
                    manifests.workflows[name].spec.alerts, result.outcome,
                    RunResult(previous.result) if previous else None, alert_values[name],
                    started, datetime.now(UTC)))
            codes.append(result.outcome.exit_code)
    raise typer.Exit(int(ExitCode.worst(codes)))
