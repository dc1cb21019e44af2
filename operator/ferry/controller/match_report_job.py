"""`ferry match-report-job`: the command a match report's Job executes. Reads the Workflow
and the objects it names from the API (as the sync Job does), plans each pair with `ferry
report matches -f`'s own code (reading both directories, writing neither), keeps the rows
as the Workflow's latest report in the state store and the counts in
status.lastMatchReport; it never writes spec, joins or runs."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from kubernetes import client

from ferry.api.status import MatchCounts, MatchReportSummary, PairMatchCounts, RunResult
from ferry.controller.match_report_requests import MATCH_REPORT
from ferry.controller.request_status import RequestEnd, serve_request
from ferry.controller.sync_job import workflow_manifests  # as the run reads it
from ferry.errors import ExitCode
from ferry.kube import FerryObjects
from ferry.reports.match_read import match_secrets, workflow_matches
from ferry.reports.matches import status_counts, summary_line
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.state.rows import PairMatches
from ferry.state.store import StateStore


def run_match_report_job(api: client.ApiClient, namespace: str, workflow: str,
                         report_id: str, state: str, secrets: SecretSource,
                         settings: RunSettings,
                         reader: Callable[..., list[PairMatches]] = workflow_matches
                         ) -> ExitCode:
    """Make one match report inside its Job (serve_request says what it exits with)."""

    def work(body: dict[str, Any], _: MatchReportSummary) -> RequestEnd[MatchReportSummary]:
        manifests = workflow_manifests(FerryObjects(api), namespace, body)
        resolved = match_secrets(manifests, workflow, secrets)
        # Writable for its own tables only: the report reads joins, writes none.
        with StateStore(state) as store:
            report = reader(manifests, workflow, store, resolved, settings)
            store.match_reports.replace(namespace, workflow, report_id, report)
        pairs = [PairMatchCounts(source=pair.source, target=pair.target,
                                 counts=MatchCounts.model_validate(status_counts(pair.rows)))
                 for pair in report]
        return RequestEnd(RunResult.SUCCEEDED, ExitCode.OK,
                          "; ".join(summary_line(pair) for pair in report) or "no pairs",
                          partial(_with_pairs, pairs))

    return serve_request(MATCH_REPORT, api, namespace, workflow, report_id, work)


def _with_pairs(pairs: list[PairMatchCounts], summary: MatchReportSummary) -> None:
    summary.pairs = pairs[:100]
