"""`ferry report discovery|matches`: CSV files and a summary a migration engineer hands on,
written to a folder or as a tar to stdout (`--out -`, e.g. through `kubectl exec`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ferry.cli.group import command_group
from ferry.cli.options import DEFAULT_STATE, SecretsOpt, StateOpt, VerboseOpt
from ferry.errors import InvalidInput

if TYPE_CHECKING:
    from ferry.state.rows import PairMatches

app = command_group(help="Reports: discovery per Environment, matches per Workflow pair.")

OutOpt = Annotated[str, typer.Option(
    "--out", help="Folder to write the files into (made if missing), or - for a tar of them"
    " on stdout.")]


@app.command()
def discovery(environment: Annotated[str, typer.Argument(
                  metavar="ENV", help="The Environment: NAME, or NAMESPACE/NAME in a cluster.")],
              out: OutOpt,
              stale_days: Annotated[int, typer.Option(
                  min=1, help="An account is stale after this many days without a logon.")]
              = 90,
              state: StateOpt = DEFAULT_STATE) -> None:
    """Objects by type, OU and state from the last discovery: a CSV per type, summary.html."""
    from datetime import UTC, datetime

    from ferry.cli.render import err
    from ferry.cli.render import out as stdout
    from ferry.reports.discovery import discovery_report
    from ferry.reports.output import STDOUT, check_out, write_files
    from ferry.reports.summary import summary_html
    from ferry.reports.tables import object_csvs
    from ferry.state.store import StateStore

    check_out(out)
    namespace, _, name = environment.rpartition("/")
    with StateStore(state, read_only=True) as store:
        found = store.directory_objects.of(name)
        if found is None:
            known = ", ".join(store.directory_objects.environments()) or "none"
            raise InvalidInput(
                f"ENV {environment}: the state store {state} holds no discovery of Environment"
                f" {name!r} (it has: {known}); run `ferry discover -f DIR -e {name}`, or in a"
                " cluster wait for its discovery Job (annotate the Environment"
                " ferry.dev/reset-watermark=<new value> for one now)")
    if namespace and found.namespace and found.namespace != namespace:
        raise InvalidInput(f"ENV {environment}: the discovery of {name!r} in the state store is"
                           f" of namespace {found.namespace}; give {found.namespace}/{name}")
    report = discovery_report(found, datetime.now(UTC), stale_days)
    files = {**object_csvs(report), "summary.html": summary_html(report)}
    written = write_files(files, out, sys.stdout.buffer, folder=f"discovery-{name}")
    if out == STDOUT:
        err.print(f"wrote a tar of {', '.join(written)} to stdout", soft_wrap=True)
        return
    stdout.print(f"Environment/{name}: {len(report.objects)} objects", soft_wrap=True)
    for path in written:
        stdout.print(f"wrote {path}", soft_wrap=True)


@app.command()
def matches(workflow_key: Annotated[str | None, typer.Argument(
                metavar="NAMESPACE/NAME", help="A Workflow whose stored in-cluster report to"
                " write (run where its state store is: the operator's pod).")] = None,
            paths: Annotated[list[Path] | None, typer.Option(
                "-f", "--filename", help="Manifest file or folder (repeatable).")] = None,
            workflow: Annotated[str | None, typer.Option(
                "--workflow", "-w", help="With -f: the Workflow whose pairs to report.")]
            = None,
            in_cluster: Annotated[str | None, typer.Option(
                "--in-cluster", metavar="NAMESPACE/NAME", help="Have the operator report this"
                " Workflow in a Job, as its runs are; prints the counts, stores the rows.")]
            = None,
            timeout: Annotated[float | None, typer.Option(
                min=1, help="With --in-cluster: seconds to wait for the report [default:"
                " 600].")] = None,
            out: Annotated[str | None, typer.Option(
                "--out", help="Folder to write the files into (made if missing), or - for a"
                " tar of them on stdout.")] = None,
            state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
            verbose: VerboseOpt = False) -> None:
    """Every source object with its target and how it matched, or why not: a CSV per pair.
    Reads both sides as a plan does; writes nothing to any directory or to joins and runs."""
    from ferry.reports.output import check_out

    if in_cluster is not None:
        if paths or workflow or workflow_key or out is not None:
            raise InvalidInput(
                "--in-cluster has the operator report the Workflow: leave out -f, -w, --out"
                " and NAMESPACE/NAME; the CSV files are then written where its state store"
                " is: `kubectl exec -n <release namespace> deploy/ferry-operator -- ferry"
                f" report matches {in_cluster} --out - | tar x`")
        _matches_in_cluster(in_cluster, 600 if timeout is None else timeout)
        return
    if timeout is not None:
        raise InvalidInput("--timeout is how long --in-cluster waits: give it with"
                           " --in-cluster NAMESPACE/NAME, or leave it out")
    if out is None:
        raise InvalidInput("give --out DIR (or - for a tar on stdout)")
    check_out(out)
    if workflow_key is not None:
        if paths or workflow:
            raise InvalidInput(f"NAMESPACE/NAME writes the stored report of {workflow_key}:"
                               " leave out -f and -w (or give -f DIR -w NAME alone)")
        _stored_matches(workflow_key, out, state)
        return
    if not paths or not workflow:
        raise InvalidInput("give the manifests and the Workflow (-f DIR -w NAME), a Workflow"
                           " in the cluster (--in-cluster NAMESPACE/NAME), or the stored"
                           " report of one (NAMESPACE/NAME --out)")
    from ferry import logs
    from ferry.cli import manifests as local
    from ferry.reports.match_read import match_secrets, workflow_matches
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore

    logs.configure("INFO" if verbose else "ERROR")
    manifests = local.load(paths)
    if workflow not in manifests.workflows:
        raise InvalidInput(f"no Workflow named {workflow!r} in the manifests"
                           f" (found: {', '.join(sorted(manifests.workflows)) or 'none'})")
    settings = RunSettings.from_environment()
    resolved = match_secrets(manifests, workflow, local.secrets(secrets_dir, paths))
    with StateStore(state, read_only=True) as store:
        report = workflow_matches(manifests, workflow, store, resolved, settings)
    _write_matches(report, out, workflow)


def _write_matches(report: list[PairMatches], out: str, workflow: str) -> None:
    """The CSV files and a summary line per pair, the same from a plan as from the store."""
    from ferry.cli.render import err
    from ferry.cli.render import out as stdout
    from ferry.reports.matches import match_files, summary_line
    from ferry.reports.output import STDOUT, write_files

    written = write_files(match_files(report), out, sys.stdout.buffer,
                          folder=f"matches-{workflow}")
    console = err if out == STDOUT else stdout
    for pair, path in zip(report, written, strict=True):
        console.print(f"{summary_line(pair)}; wrote {path}"
                      + (" to stdout" if out == STDOUT else ""), soft_wrap=True)


def _workflow_key(value: str, what: str) -> tuple[str, str]:
    namespace, _, name = value.partition("/")
    if not namespace or not name or "/" in name:
        raise InvalidInput(f"{what} {value!r}: give NAMESPACE/NAME of a Workflow, e.g."
                           " team-a/ad-to-ad")
    return namespace, name


def _stored_matches(key: str, out: str, state: str) -> None:
    from ferry.state.store import StateStore

    namespace, name = _workflow_key(key, "NAMESPACE/NAME")
    with StateStore(state, read_only=True) as store:
        stored = store.match_reports.of(namespace, name)
        known = ", ".join(store.match_reports.workflows()) or "none" if stored is None else ""
    if stored is None:
        raise InvalidInput(
            f"Workflow {key}: the state store {state} holds no match report of it (it has:"
            f" {known}); make one with `ferry report matches --in-cluster {key}`, then run"
            " this where the operator's state store is (its pod)")
    _write_matches(stored.pairs, out, name)


def _matches_in_cluster(key: str, timeout: float) -> None:
    from ferry.cli.render import err
    from ferry.cli.render import out as stdout
    from ferry.controller.match_report_requests import MATCH_REPORT, request_match_report
    from ferry.controller.request_status import failure, wait_for_request
    from ferry.kube import api_client
    from ferry.reports.matches import counts_line

    namespace, name = _workflow_key(key, "--in-cluster")
    api = api_client()
    report_id = request_match_report(api, namespace, name)
    err.print(f"requested match report {report_id} of Workflow {key}", soft_wrap=True)
    summary = wait_for_request(MATCH_REPORT, api, namespace, name, report_id, timeout)
    if summary.exit_code:
        raise failure(MATCH_REPORT, summary)
    for pair in summary.pairs:
        stdout.print(counts_line(pair.source, pair.target, pair.counts.dump()),
                     soft_wrap=True)
    err.print(f"stored as report {report_id}; its CSV files: `kubectl exec -n <release"
              f" namespace> deploy/ferry-operator -- ferry report matches {key} --out - |"
              " tar x`", soft_wrap=True)


def match_report_job(
    workflow: Annotated[str, typer.Option("--workflow", help="NAMESPACE/NAME of the Workflow.")],
    request: Annotated[str, typer.Option("--request", help="The match report request's id.")],
    state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
) -> None:
    """Make one in-cluster match report inside its Job (started by the operator, not by
    hand)."""
    from ferry import logs
    from ferry.controller.match_report_job import run_match_report_job
    from ferry.kube import api_client
    from ferry.secrets import SecretResolver
    from ferry.settings import RunSettings

    logs.configure("INFO")
    namespace, name = _workflow_key(workflow, "--workflow")
    code = run_match_report_job(api_client(), namespace, name, request, state,
                                SecretResolver.from_environment(secrets_dir),
                                RunSettings.from_environment())
    raise typer.Exit(int(code))
