"""`ferry report discovery|matches`: CSV files and a summary a migration engineer hands on,
written to a folder or as a tar to stdout (`--out -`, e.g. through `kubectl exec`)."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Annotated

import typer

from ferry.cli.group import command_group
from ferry.cli.options import DEFAULT_STATE, PathsOpt, SecretsOpt, StateOpt, VerboseOpt
from ferry.errors import InvalidInput

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
def matches(paths: PathsOpt,
            workflow: Annotated[str, typer.Option("--workflow", "-w",
                                                  help="The Workflow whose pairs to report.")],
            out: OutOpt, state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
            verbose: VerboseOpt = False) -> None:
    """Every source object with its target and how it matched, or why not: a CSV per pair.
    Reads both sides as a plan does; writes nothing to any directory or the state store."""
    from ferry import logs
    from ferry.cli import manifests as local
    from ferry.cli.render import err
    from ferry.cli.render import out as stdout
    from ferry.reports.match_read import match_secrets, workflow_matches
    from ferry.reports.matches import matches_csv
    from ferry.reports.output import STDOUT, check_out, write_files
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore

    logs.configure("INFO" if verbose else "ERROR")
    check_out(out)
    manifests = local.load(paths)
    if workflow not in manifests.workflows:
        raise InvalidInput(f"no Workflow named {workflow!r} in the manifests"
                           f" (found: {', '.join(sorted(manifests.workflows)) or 'none'})")
    settings = RunSettings.from_environment()
    resolved = match_secrets(manifests, workflow, local.secrets(secrets_dir, paths))
    with StateStore(state, read_only=True) as store:
        report = workflow_matches(manifests, workflow, store, resolved, settings)
    files = {pair.file_name: matches_csv(pair.rows) for pair in report}
    written = write_files(files, out, sys.stdout.buffer, folder=f"matches-{workflow}")
    console = err if out == STDOUT else stdout
    for pair, path in zip(report, written, strict=True):
        counts = Counter(row.status.value for row in pair.rows)
        console.print(f"{pair.pair.source} -> {pair.pair.target}: "
                      + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none")
                      + f"; wrote {path}" + (" to stdout" if out == STDOUT else ""),
                      soft_wrap=True)
