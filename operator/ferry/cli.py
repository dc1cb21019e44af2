"""The `ferry` command: plan and run workflows from manifests, inspect runs, drive the lab."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from ferry import logs
from ferry.api.errors import ManifestError
from ferry.api.loader import Manifests, load_manifests
from ferry.engine.plan import OpKind
from ferry.secrets import SECRETS_DIR_ENV, SecretResolver, SecretsMissing
from ferry.state.store import StateStore
from ferry.sync.expression_check import expression_problems
from ferry.sync.outcome import COUNT_KEYS, ExitCode, RunOutcome
from ferry.sync.runner import CompletedRun, RunRequest, read_run_secrets, run_workflow

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Ferry: sync and migrate identities between directories.")
lab_app = typer.Typer(no_args_is_help=True, help="The local two-domain Samba AD lab.")
app.add_typer(lab_app, name="lab")
agent_app = typer.Typer(no_args_is_help=True,
                        help="On-premises agents: enrollment tokens, the registry, revocation.")
app.add_typer(agent_app, name="agent")
agent_token_app = typer.Typer(no_args_is_help=True, help="Single-use agent enrollment tokens.")
agent_app.add_typer(agent_token_app, name="token")
guests_app = typer.Typer(no_args_is_help=True, help="B2B guests in Entra ID targets.")
app.add_typer(guests_app, name="guests")
job_credential_app = typer.Typer(
    no_args_is_help=True, help="Job credentials: what sync runs present to the gateway, each"
    " bound to a few environments (the operator makes its own for every Job).")
app.add_typer(job_credential_app, name="job-credential")
# Tables stay readable when output goes to a file or CI log (rich assumes 80 columns there).
# Nothing printed is ever parsed as rich markup or highlighted: errors, DNs, values and file
# names come from outside and may hold `[...]`. Styles are applied only through `labelled`.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, width=None if sys.stderr.isatty() else 120, markup=False,
              highlight=False)


def labelled(label: str, style: str, text: object = "") -> Text:
    """A styled label followed by text that is shown exactly as it is."""
    return Text.assemble((label, style), " " if text != "" else "", str(text))

DEFAULT_STATE = ".ferry/state.sqlite"
LAB_DIR = Path(os.environ.get("FERRY_LAB_DIR", ".lab"))

PathsOpt = Annotated[list[Path], typer.Option("-f", "--filename",
                     help="Manifest file or folder (repeatable), as for kubectl apply -f.")]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", "-w",
                        help="Run only this Workflow (default: all in the manifests).")]
StateOpt = Annotated[str, typer.Option("--state", envvar="FERRY_STATE",
                     help="State store: a SQLite file path or a SQLAlchemy URL (PostgreSQL).")]
SecretsOpt = Annotated[str | None, typer.Option("--secrets-dir", envvar=SECRETS_DIR_ENV,
                       help="Folder laid out as <secret>/<key> resolving secretKeyRef values.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")]


class _RichProgress:
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


def _load(paths: list[Path]) -> Manifests:
    try:
        manifests = load_manifests(paths)
        problems = expression_problems(manifests)  # before anything connects
        if problems:
            raise ManifestError(problems)
        return manifests
    except ManifestError as exc:
        err.print(labelled(f"{len(exc.problems)} problem(s) in the manifests; nothing ran:",
                           "bold red"))
        for problem in exc.problems:
            err.print(f"  {problem}")
        raise typer.Exit(ExitCode.INVALID_INPUT) from None


def _secrets(secrets_dir: str | None, paths: list[Path]) -> SecretResolver:
    # Outside a cluster the lab's secrets are the natural default.
    if secrets_dir is None and (LAB_DIR / "secrets").is_dir():
        secrets_dir = str(LAB_DIR / "secrets")
    base = paths[0] if paths and paths[0].is_dir() else (paths[0].parent if paths else Path())
    return SecretResolver.from_environment(secrets_dir, base)


def _execute(paths: list[Path], workflow: str | None, state: str, secrets_dir: str | None,
             test_mode: bool, full: bool, plan_out: Path | None, verbose: bool) -> None:
    logs.configure("INFO" if verbose else "ERROR")
    manifests = _load(paths)
    names = [workflow] if workflow else sorted(manifests.workflows)
    if workflow and workflow not in manifests.workflows:
        err.print(f"no Workflow named {workflow!r} in the manifests"
                  f" (found: {', '.join(sorted(manifests.workflows)) or 'none'})")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    if not names:
        err.print("the manifests hold no Workflow; nothing to run")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    # Test mode writes nothing anywhere: not the state store, not a plan file unless asked.
    tests = {n: test_mode or manifests.workflows[n].spec.test_mode for n in names}
    secrets = _secrets(secrets_dir, paths)
    # A missing Secret is a configuration error: found for every workflow of the call before
    # anything is opened, the state store included.
    missing: dict[str, None] = {}
    for name in names:
        try:
            read_run_secrets(manifests, name, secrets, tests[name])
        except SecretsMissing as exc:
            missing.update(dict.fromkeys(exc.problems))
    if missing:
        for problem in missing:
            err.print(problem, soft_wrap=True)
        raise typer.Exit(ExitCode.INVALID_INPUT)
    store = StateStore(state, read_only=all(tests.values()))
    worst = ExitCode.OK
    for name in names:
        plan_path = plan_out or (None if tests[name] else Path(".ferry/plans") / f"{name}-"
                                 f"{datetime.now().strftime('%Y%m%d-%H%M%S')}.json")
        try:
            with Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                          MofNCompleteColumn(),
                          TimeElapsedColumn(), console=err, transient=True) as bars:
                result = run_workflow(manifests, RunRequest(name, test_mode, full, plan_path),
                                      store, secrets, _RichProgress(bars))
        except SecretsMissing as exc:  # a Secret went away since the check above
            store.close()
            for problem in exc.problems:
                err.print(problem, soft_wrap=True)
            raise typer.Exit(ExitCode.INVALID_INPUT) from None
        _print_result(result)
        worst = max(worst, result.outcome.exit_code, key=_severity)
    store.close()
    raise typer.Exit(int(worst))


def _severity(code: ExitCode) -> int:
    return [ExitCode.OK, ExitCode.OBJECT_ERRORS, ExitCode.DELETE_THRESHOLD,
            ExitCode.INVALID_INPUT, ExitCode.FAILED].index(code)


def _print_result(result: CompletedRun) -> None:
    o: RunOutcome = result.outcome
    what = ("plan (test mode, nothing written)" if o.mode == "test"
            else f"run {o.run_id} ({o.mode})")
    title = f"Workflow {o.workflow}: {what}: {o.result}"
    table = Table(title=title, title_justify="left")
    table.add_column("type")
    for key in COUNT_KEYS:
        table.add_column(key, justify="right")
    for object_type, counts in o.counts_as_dict().items():
        table.add_row(object_type, *(str(counts[k]) for k in COUNT_KEYS))
    out.print(table)
    if o.mode == "test":
        _print_operations(result)
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
    if o.fatal:
        out.print(labelled("failed:", "bold red", o.fatal))
    if result.plan_path:
        out.print(f"plan saved to {result.plan_path}")


def _print_operations(result: CompletedRun, limit: int = 40) -> None:
    """What a plan would do, one line per operation (the JSON file has them all)."""
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


@app.command()
def plan(paths: PathsOpt, workflow: WorkflowOpt = None, state: StateOpt = DEFAULT_STATE,
         secrets_dir: SecretsOpt = None,
         out_file: Annotated[Path | None, typer.Option("--out", help="Plan JSON file.")] = None,
         verbose: VerboseOpt = False) -> None:
    """Show what a run would change, writing nothing anywhere (test mode)."""
    _execute(paths, workflow, state, secrets_dir, True, False, out_file, verbose)


@app.command()
def run(paths: Annotated[list[Path] | None, typer.Option(
            "-f", "--filename", help="Manifest file or folder (repeatable).")] = None,
        workflow: WorkflowOpt = None, state: StateOpt = DEFAULT_STATE,
        secrets_dir: SecretsOpt = None,
        full: Annotated[bool, typer.Option("--full", help="Read everything even when the"
                                           " workflow is changed-objects-only.")] = False,
        out_file: Annotated[Path | None, typer.Option("--out", help="Plan JSON file.")] = None,
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
        err.print("give manifests with -f PATH, or a Workflow in the cluster with --in-cluster")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    _execute(paths, workflow, state, secrets_dir, False, full, out_file, verbose)


def _request_in_cluster(target: str, wait: float) -> None:
    from ferry.controller.requests import RunRequestError, request_run, wait_for_run
    from ferry.kube import api_client, current_namespace

    namespace, _, name = target.rpartition("/")
    api = api_client()
    namespace = namespace or current_namespace()
    try:
        run_id = request_run(api, namespace, name)
        out.print(f"requested run {run_id} of Workflow {namespace}/{name}")
        if wait <= 0:
            return
        summary = wait_for_run(api, namespace, name, run_id, wait)
    except RunRequestError as exc:
        err.print(str(exc))
        raise typer.Exit(ExitCode.FAILED) from None
    counts = summary.get("counts") or {}
    out.print(f"run {run_id}: {summary.get('result')} "
              + " ".join(f"{k}={counts.get(k, 0)}" for k in ("created", "updated", "moved",
                                                            "deleted", "conflicts", "errors"))
              + (f" ({summary['message']})" if summary.get("message") else ""))
    if summary.get("result") != "Succeeded":
        raise typer.Exit(ExitCode.FAILED)


@app.command()
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
    import kopf

    from ferry.controller import handlers
    from ferry.controller.settings import OperatorSettings
    from ferry.kube import current_namespace

    logs.configure("INFO")
    settings = OperatorSettings.from_environment()
    watched = None if all_namespaces else (namespace or current_namespace())
    handlers.configure(settings.model_copy(update={"namespace": watched,
                                                   "cluster_wide": all_namespaces}))
    kopf.run(standalone=True, clusterwide=all_namespaces,
             namespaces=[watched] if watched else [], liveness_endpoint=liveness)


@app.command("sync-job")
def sync_job(
    workflow: Annotated[str, typer.Option("--workflow", help="NAMESPACE/NAME of the Workflow.")],
    run_id: Annotated[str, typer.Option("--run", help="Run id the operator gave this Job.")],
    state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
) -> None:
    """Execute one run inside its Job (started by the operator, not by hand)."""
    from ferry.controller.sync_job import run_sync_job

    _job_command("--workflow", workflow, state, secrets_dir,
                 lambda api, ns, name, store, secrets: run_sync_job(
                     api, ns, name, run_id, store, secrets))


def _job_command(option: str, target: str, state: str, secrets_dir: str | None,
                 body: Callable[..., ExitCode]) -> None:
    """What every Job entrypoint does around its body: logs, NAMESPACE/NAME, store, exit."""
    from ferry.kube import api_client

    logs.configure("INFO")
    namespace, _, name = target.partition("/")
    if not namespace or not name:
        err.print(f"{option} must be NAMESPACE/NAME, not {target!r}")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    store = StateStore(state)
    try:
        code = body(api_client(), namespace, name, store,
                    SecretResolver.from_environment(secrets_dir))
    finally:
        store.close()
    raise typer.Exit(int(code))


@app.command()
def runs(state: StateOpt = DEFAULT_STATE, workflow: WorkflowOpt = None,
         run_id: Annotated[str | None, typer.Option("--run", help="Show one run's objects.")]
         = None,
         limit: Annotated[int, typer.Option(help="How many runs to list.")] = 20) -> None:
    """List recent runs with their counts, or one run's per-object results."""
    store = StateStore(state)
    if run_id:
        table = Table("pair", "type", "operation", "outcome", "target", "message")
        for row in store.results(run_id):
            table.add_row(row.pair, row.object_type, row.operation, row.outcome, row.target_dn,
                          row.message)
        out.print(table)
        return
    table = Table()
    for column in ("run", "workflow", "mode", "started", "result"):
        table.add_column(column, no_wrap=True, min_width=len(column))
    for column in ("created", "updated", "moved", "deleted", "conflicts", "errors"):
        table.add_column(column, justify="right", no_wrap=True, min_width=len(column))
    table.add_column("message", overflow="fold")
    for r in store.runs(workflow, limit):
        totals = {k: sum(c.get(k, 0) for c in r.counts.values()) for k in COUNT_KEYS}
        table.add_row(r.id, r.workflow, r.mode, f"{r.started_at:%Y-%m-%d %H:%M:%S}", r.result,
                      *(str(totals[k]) for k in ("created", "updated", "moved", "deleted",
                                                 "conflicts", "errors")), r.message)
    out.print(table)


@app.command()
def check(paths: PathsOpt, secrets_dir: SecretsOpt = None,
          environment: Annotated[str | None, typer.Option(
              "--environment", "-e", help="Check only this Environment.")] = None) -> None:
    """Reach, sign in to and read each environment; for Entra ID name the Graph permissions
    the workflows need that the app lacks. Exit 0 when all pass, 1 otherwise."""
    from ferry.sync.checks import check_environment  # Graph and LDAP only where needed

    manifests = _load(paths)
    secrets = _secrets(secrets_dir, paths)
    chosen = [e for n, e in sorted(manifests.environments.items())
              if environment is None or n == environment]
    if not chosen:
        err.print(f"no Environment {environment!r} in the manifests")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    failed = 0
    for env in chosen:
        result = check_environment(manifests, env, secrets)
        failed += not result.ok
        mark = labelled("ok", "green") if result.ok else labelled("failed", "red")
        out.print(mark, f"Environment/{result.environment} ({env.spec.type.value}):",
                  result.message, soft_wrap=True)
    raise typer.Exit(1 if failed else 0)


@guests_app.command("invite")
def guests_invite(
        paths: PathsOpt,
        environment: Annotated[str, typer.Option(
            "--environment", "-e", help="The Entra ID Environment holding the guests.")],
        where: Annotated[str | None, typer.Option(
            help="CEL selector over each guest (source.<property>), e.g."
            " \"source.mail.endsWith('@contoso.com')\". Unset: every pending guest.")]
        = None,
        state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="List who would be invited; send nothing.")] = False) -> None:
    """Send invitations to the guests Ferry created without one (those not redeemed yet)."""
    from ferry.engine.expressions import ExpressionError
    from ferry.sync.guests import GuestsError, invite_guests

    manifests = _load(paths)
    store = StateStore(state)
    try:
        invited = invite_guests(manifests, environment, store, _secrets(secrets_dir, paths),
                                where, dry_run)
    except (GuestsError, ExpressionError) as exc:
        err.print(str(exc))
        raise typer.Exit(ExitCode.INVALID_INPUT) from None
    finally:
        store.close()
    verb = "would invite" if dry_run else "invited"
    for guest in invited:
        out.print(f"{verb} {guest.mail} ({guest.guest})")
    out.print(f"{len(invited)} guest(s) {verb}")


@app.command("discover-job")
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
                 lambda api, ns, name, store, secrets: run_discovery_job(
                     api, ns, name, run_id, store, secrets, full))


def main() -> None:
    app()


LabDirOpt = Annotated[Path, typer.Option("--dir", envvar="FERRY_LAB_DIR",
                      help="Lab folder (DCs, logs, secrets).")]


@lab_app.command("up")
def lab_up(lab_dir: LabDirOpt = LAB_DIR) -> None:
    """Start SRC.TEST (127.0.0.2) and TGT.TEST (127.0.0.3) as Samba AD DCs with LDAPS."""
    from ferry.lab.samba import Lab, LabError

    try:
        domains = Lab(log=lambda m: err.print(m)).up(lab_dir)
    except LabError as exc:
        err.print(labelled("lab:", "bold red", exc))
        raise typer.Exit(ExitCode.FAILED) from None
    table = Table("realm", "address", "base DN", "LDAPS", "credentials (Secret folder)",
                  title="Lab domains", title_justify="left")
    for d in domains:
        table.add_row(d.realm, d.ip, d.base_dn, f"ldaps://{d.ip}:{d.port}",
                      str(lab_dir / "secrets" / d.secret_name))
    out.print(table)


@lab_app.command("seed")
def lab_seed(lab_dir: LabDirOpt = LAB_DIR,
             users: Annotated[int, typer.Option(help="Users to create.")] = 1000,
             groups: Annotated[int, typer.Option(help="Groups to create.")] = 50,
             contacts: Annotated[int, typer.Option(help="Contacts to create.")] = 100,
             seed_number: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
             realm: Annotated[str, typer.Option(help="Domain to fill.")] = "SRC.TEST") -> None:
    """Fill a lab domain (SRC by default) with realistic users, groups and contacts."""
    from ferry.lab.samba import Lab, LabError
    from ferry.lab.seed import seed

    domain = next((d for d in Lab().domains(lab_dir) if d.realm == realm.upper()), None)
    if domain is None:
        err.print(f"no lab domain {realm} in {lab_dir}; run `ferry lab up` first")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    try:
        summary = seed(domain, users=users, groups=groups, contacts=contacts, seed=seed_number,
                       replace=True)
    except LabError as exc:
        err.print(labelled("lab:", "bold red", exc))
        raise typer.Exit(ExitCode.FAILED) from None
    out.print(f"seeded {realm}: {summary.users} users, {summary.groups} groups,"
              f" {summary.contacts} contacts under {summary.corp_dn}"
              f" in {summary.seconds:.1f} s")


@lab_app.command("down")
def lab_down(lab_dir: LabDirOpt = LAB_DIR) -> None:
    """Stop the lab's DCs and remove the lab folder."""
    from ferry.lab.samba import Lab, LabError

    try:
        Lab().down(lab_dir)
    except LabError as exc:
        err.print(labelled("lab:", "bold red", exc))
        raise typer.Exit(ExitCode.FAILED) from None
    out.print(f"lab in {lab_dir} is down")


@lab_app.command("status")
def lab_status(lab_dir: LabDirOpt = LAB_DIR) -> None:
    """Show each lab domain and whether it answers."""
    from ferry.lab.samba import Lab

    table = Table("realm", "address", "pid", "running", "LDAPS bind")
    for s in Lab().status(lab_dir):
        table.add_row(s.domain.realm, s.domain.ip, str(s.pid or "-"), str(s.running),
                      str(s.reachable))
    out.print(table)


@app.command()
def gateway(
    tls_cert: Annotated[Path, typer.Option(
        "--tls-cert", envvar="FERRY_GATEWAY_TLS_CERT",
        help="The gateway's TLS certificate (PEM; intermediates after it).")],
    tls_key: Annotated[Path, typer.Option(
        "--tls-key", envvar="FERRY_GATEWAY_TLS_KEY", help="Its private key (PEM).")],
    listen: Annotated[str, typer.Option(help="HOST:PORT to serve HTTPS on.")] = "0.0.0.0:8443",
    ca_dir: Annotated[Path | None, typer.Option(
        "--ca-dir", envvar="FERRY_GATEWAY_CA_DIR",
        help="Folder of the agent CA (ca.crt, ca.key); created there on first start.")] = None,
    ca_cert: Annotated[Path | None, typer.Option(
        "--ca-cert", help="The agent CA's certificate, with --ca-key (instead of --ca-dir).")]
    = None,
    ca_key: Annotated[Path | None, typer.Option("--ca-key", help="The agent CA's key.")] = None,
    server_ca: Annotated[Path | None, typer.Option(
        "--server-ca", help="CA bundle agents verify this gateway with, handed out at"
        " enrollment (default: the agent CA, when it also issued --tls-cert).")] = None,
    job_key: Annotated[Path | None, typer.Option(
        "--job-key", envvar="FERRY_GATEWAY_JOB_KEY",
        help="Public half of the job signing key (PEM public key or certificate): job"
             " credentials signed with it are accepted, each for its own environments.")]
    = None,
    state: StateOpt = DEFAULT_STATE,
    lease_seconds: Annotated[float, typer.Option(
        help="How long an agent holds work without a heartbeat or result.")] = 60.0,
    agent_timeout: Annotated[float, typer.Option(
        help="Seconds of silence after which an agent's leases are re-issued.")] = 60.0,
    token_secrets_namespace: Annotated[str | None, typer.Option(
        envvar="FERRY_GATEWAY_TOKEN_SECRETS_NAMESPACE",
        help="Also accept enrollment tokens kept as Secrets in this namespace"
             " (`ferry agent token create --in-cluster`).")] = None,
    agent_stream: Annotated[bool, typer.Option(
        help="Offer agents the work stream (a WebSocket); without it they long-poll, as"
             " they do by themselves where a proxy does not pass WebSockets.")] = True,
    idle_timeout: Annotated[float, typer.Option(
        help="Seconds a connection may send nothing, after its opening or its last answer,"
             " before it is closed.")] = 60.0,
    header_timeout: Annotated[float, typer.Option(
        help="Seconds a request has from its first byte to the end of its headers; then"
             " the connection is closed.")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        help="Seconds a request has to send its body; then it gets 408.")] = 60.0,
    max_anonymous_connections: Annotated[int, typer.Option(
        help="Open connections without an agent certificate (enrolling agents, sync Jobs,"
             " anyone else); more get 503 at once.")] = 256,
) -> None:
    """Serve the HTTPS gateway agents connect to and sync Jobs submit directory work to.

    Queued work lives in memory: a restart loses it and the Jobs waiting on it fail that call.
    """
    import asyncio

    from ferry.gateway.ca import CAError
    from ferry.gateway.connections import ConnectionLimits
    from ferry.gateway.queue import QueueLimits
    from ferry.gateway.server import (
        GatewayConfig,
        GatewayConfigError,
        parse_listen,
        serve,
    )
    from ferry.gateway.tls import TLSConfigError

    logs.configure("INFO")
    settings = {"--lease-seconds": lease_seconds, "--agent-timeout": agent_timeout,
                "--idle-timeout": idle_timeout, "--header-timeout": header_timeout,
                "--body-timeout": body_timeout,
                "--max-anonymous-connections": max_anonymous_connections}
    wrong = [f"{flag} {value:g}" for flag, value in settings.items() if value <= 0]
    if wrong:
        err.print(f"{', '.join(wrong)}: must be positive")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    try:
        host, port = parse_listen(listen)
        config = GatewayConfig(
            host=host, port=port, tls_cert=tls_cert, tls_key=tls_key,
            job_key=job_key, state=state, ca_dir=ca_dir,
            ca_cert=ca_cert, ca_key=ca_key, server_ca=server_ca,
            limits=QueueLimits(lease_seconds=lease_seconds, agent_timeout=agent_timeout),
            connections=ConnectionLimits(idle_timeout=idle_timeout,
                                         header_timeout=header_timeout,
                                         body_timeout=body_timeout,
                                         max_anonymous=max_anonymous_connections),
            token_secrets_namespace=token_secrets_namespace, agent_stream=agent_stream)
        if (ca_cert is None) != (ca_key is None):
            raise GatewayConfigError("--ca-cert and --ca-key go together")
        asyncio.run(serve(config))
    except (GatewayConfigError, CAError, TLSConfigError) as exc:
        err.print(labelled("gateway:", "bold red", exc))
        raise typer.Exit(ExitCode.INVALID_INPUT) from None
    except OSError as exc:
        err.print(labelled("gateway:", "bold red",
                           f"cannot serve on {listen}: {exc.strerror or exc}"))
        raise typer.Exit(ExitCode.FAILED) from None


@job_credential_app.command("key")
def job_credential_key(folder: Annotated[Path, typer.Argument(
        help="Where to write job-signing.key (owner-only) and job-signing.pub.")]) -> None:
    """Make the job signing key pair: .key for the signer, .pub for `gateway --job-key`."""
    from ferry.gateway.job_auth import JobAuthError, write_signing_key

    try:
        key_file, pub_file = write_signing_key(folder)
    except (JobAuthError, OSError) as exc:
        err.print(f"job-credential key: {exc}")
        raise typer.Exit(ExitCode.INVALID_INPUT) from None
    err.print(f"signing key {key_file} (keep it secret), public key {pub_file} (--job-key)")


@job_credential_app.command("create")
def job_credential_create(
    signing_key: Annotated[Path, typer.Option(
        "--signing-key", envvar="FERRY_JOB_SIGNING_KEY_FILE",
        help="The job signing key (job-signing.key).")],
    environment: Annotated[list[str], typer.Option(
        "--environment", "-e", help="An environment the holder may reach (repeat for more).")],
    ttl: Annotated[str, typer.Option(help="How long it is valid: 30m, 8h, 7d (at most 7d).")]
    = "8h",
    subject: Annotated[str | None, typer.Option(
        help="Who it is for, as the gateway logs it (default: a new random name).")] = None,
) -> None:
    """Sign a job credential for `ferry run` against a gateway (FERRY_GATEWAY_TOKEN_FILE)."""
    import secrets as random_names

    from ferry.gateway.enrollment import check_environment, parse_ttl
    from ferry.gateway.job_auth import MAX_TTL, JobAuthError, load_signing_key, mint

    try:
        lifetime = parse_ttl(ttl)
        if lifetime > MAX_TTL:
            raise ValueError(f"--ttl {ttl}: a job credential lives at most {MAX_TTL.days} days")
        names = [check_environment(e) for e in environment]
        token = mint(load_signing_key(signing_key),
                     subject or f"cli-{random_names.token_hex(4)}", names, lifetime)
    except (ValueError, JobAuthError) as exc:
        err.print(f"job-credential create: {exc}")
        raise typer.Exit(ExitCode.INVALID_INPUT) from None
    typer.echo(token)  # alone on stdout: ferry job-credential create ... > token-file
    err.print(f"job credential for {', '.join(sorted(set(names)))}, valid for {ttl}")


@agent_token_app.command("create")
def agent_token_create(
    environment: Annotated[str, typer.Argument(
        help="The Environment the agent will work for (its metadata.name).")],
    ttl: Annotated[str, typer.Option(
        help="How long the token can be used: 30m, 24h, 7d (at most 30d).")] = "24h",
    state: StateOpt = DEFAULT_STATE,
    in_cluster: Annotated[bool, typer.Option(
        "--in-cluster", help="Keep the token as a Secret in the cluster (your kubeconfig) for"
        " the gateway to claim, instead of in --state.")] = False,
    namespace: Annotated[str | None, typer.Option(
        "--namespace", "-n", help="With --in-cluster: the release's namespace.")] = None,
) -> None:
    """Create a single-use enrollment token for ENVIRONMENT; it is printed once."""
    from ferry.gateway.enrollment import create_token, parse_ttl

    try:
        lifetime = parse_ttl(ttl)
        if in_cluster:
            from ferry.gateway.token_secrets import create_token_secret
            from ferry.kube import api_client, current_namespace

            token, expires, secret = create_token_secret(
                api_client(), namespace or current_namespace(), environment, lifetime)
            err.print(f"kept as Secret {secret} until the gateway claims it")
        else:
            store = StateStore(state)
            try:
                token, expires = create_token(store, environment, lifetime)
            finally:
                store.close()
    except ValueError as exc:
        err.print(str(exc))
        raise typer.Exit(ExitCode.INVALID_INPUT) from None
    typer.echo(token)  # alone on stdout, so TOKEN=$(ferry agent token create ENV) works
    err.print(f"single-use token for environment {environment}, valid until"
              f" {expires:%Y-%m-%d %H:%M:%S} UTC; it is not shown again. On the agent's host:"
              " ferry-agent enroll --gateway URL --token TOKEN")


@agent_app.command("list")
def agent_list(state: StateOpt = DEFAULT_STATE,
               environment: Annotated[str | None, typer.Option(
                   help="Only the agents of this environment.")] = None) -> None:
    """List enrolled agents: environment, host, version, last heartbeat, revoked or not."""
    store = StateStore(state)
    try:
        agents = store.agents(environment)
    finally:
        store.close()
    table = Table("id", "name", "environment", "host", "version", "enrolled", "last seen",
                  "state")
    for a in agents:
        table.add_row(a.id, a.name, a.environment, a.host, a.version,
                      f"{a.enrolled_at:%Y-%m-%d %H:%M:%S}",
                      f"{a.last_seen:%Y-%m-%d %H:%M:%S}" if a.last_seen else "-",
                      f"revoked {a.revoked_at:%Y-%m-%d %H:%M}" if a.revoked_at else "active")
    out.print(table)


@agent_app.command("revoke")
def agent_revoke(
    agent: Annotated[str, typer.Argument(help="The agent's id, or its name if unique.")],
    state: StateOpt = DEFAULT_STATE,
) -> None:
    """Revoke an agent: the gateway refuses its next call and re-issues its work."""
    store = StateStore(state)
    try:
        found = store.find_agents(agent)
        active = [a for a in found if not a.revoked]
        if not found:
            err.print(f"no agent with id or name {agent!r} (see `ferry agent list`)")
            raise typer.Exit(ExitCode.INVALID_INPUT)
        if len(active) > 1:
            err.print(f"{len(active)} active agents are named {agent!r}; give an id: "
                      + ", ".join(a.id for a in active))
            raise typer.Exit(ExitCode.INVALID_INPUT)
        target = active[0] if active else found[0]
        if not store.revoke_agent(target.id):
            out.print(f"agent {target.id} ({target.name}) was already revoked")
            return
    finally:
        store.close()
    out.print(f"revoked agent {target.id} ({target.name}, environment {target.environment})")
