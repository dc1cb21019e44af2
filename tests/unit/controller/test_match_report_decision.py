"""The operator's decisions about in-cluster match reports, from observed state only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import V1Job, V1JobCondition, V1JobStatus, V1ObjectMeta

from ferry.api.base import ObjectMeta
from ferry.api.status import WorkflowStatus
from ferry.api.workflow import WorkflowSpec
from ferry.controller.job_requests import summary_patch, wanted
from ferry.controller.match_report_decision import (
    MATCH_REPORTS,
    MatchReportDecision,
    decide_match_report,
)
from ferry.controller.match_report_requests import MATCH_REPORT_LABEL
from ferry.controller.request_status import failure
from ferry.controller.runs import RUN_LABEL
from ferry.controller.trace_decision import TRACES, decide_trace
from ferry.controller.workflow_decision import decide

T0 = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
ANNOTATION = "ferry.dev/match-report-requested"


def status(**fields: Any) -> WorkflowStatus:
    return WorkflowStatus.model_validate(fields)


def after(decision: MatchReportDecision, before: WorkflowStatus | None = None
          ) -> WorkflowStatus:
    """The status the operator leaves behind (as the API server would hand it back)."""
    wire = (before or status()).dump()
    wire.pop("lastMatchReport", None)
    if decision.summary is not None:
        wire["lastMatchReport"] = decision.summary.dump()
    return WorkflowStatus.model_validate(wire)


def job(report_id: str, finished: str | None = None, reason: str = "") -> V1Job:
    conditions = [V1JobCondition(type=finished, status="True", reason=reason)] if finished \
        else []
    return V1Job(metadata=V1ObjectMeta(name=f"wf-matches-{report_id}",
                                       labels={RUN_LABEL: report_id, MATCH_REPORT_LABEL: "wf"}),
                 status=V1JobStatus(conditions=conditions))


def report(annotation: str | None, current: WorkflowStatus, jobs: list[V1Job] | None = None,
           problems: list[str] | None = None, now: datetime = T0) -> MatchReportDecision:
    return decide_match_report({ANNOTATION: annotation} if annotation else {}, "wf", current,
                               jobs or [], problems=lambda: problems or [], now=now)


def test_a_request_becomes_one_pending_report_and_one_job_even_across_a_restart() -> None:
    first = report("m1", status())
    assert first.start is not None and first.start.job_name == "wf-matches-m1"
    assert first.summary is not None and first.summary.dump() == {
        "id": "m1", "jobName": "wf-matches-m1", "requestedAt": "2026-12-03T10:00:00Z",
        "result": "Pending"}
    assert summary_patch("lastMatchReport", None, first.summary) == {
        "lastMatchReport": first.summary.dump()}
    recorded = after(first)
    # The operator restarted after writing status, before creating the Job: created once now
    # (the same name: create_job finds it if it was made after all).
    again = report("m1", recorded, now=T0 + timedelta(seconds=30))
    assert again.start is not None and again.start.job_name == "wf-matches-m1"
    assert again.summary == recorded.last_match_report and again.events == []
    # The Job exists: nothing more, however often it is decided.
    running = report("m1", recorded, [job("m1")])
    assert running.start is None and running.events == []
    assert running.summary == recorded.last_match_report


def test_an_ended_report_is_not_taken_again_and_a_new_id_replaces_it_whole() -> None:
    done = status(lastMatchReport={
        "id": "m1", "jobName": "wf-matches-m1", "result": "Succeeded", "exitCode": 0,
        "message": "src -> tgt: 3 joined",
        "pairs": [{"source": "src", "target": "tgt", "counts": {"joined": 3}}]})
    assert report("m1", done, [job("m1", "Complete")]).start is None
    assert report("m1", done, [job("m1", "Complete")]).summary == done.last_match_report
    # The operator is told nothing is to do about it (its cache holds the same).
    cached = {"metadata": {"annotations": {ANNOTATION: "m1"}}, "status": done.dump()}
    assert not wanted(MATCH_REPORTS.kind, cached, MATCH_REPORTS.request_id)
    cached["metadata"]["annotations"][ANNOTATION] = "m2"
    assert wanted(MATCH_REPORTS.kind, cached, MATCH_REPORTS.request_id)
    fresh = report("m2", done)
    assert fresh.start is not None and fresh.summary is not None
    assert (fresh.summary.id, fresh.summary.result, fresh.summary.pairs) == ("m2", "Pending",
                                                                          [])
    # Written whole: the last report's counts, message and exit code are cleared.
    patch = summary_patch("lastMatchReport", done.last_match_report,
                          fresh.summary)["lastMatchReport"]
    assert patch["pairs"] is None and patch["exitCode"] is None and patch["message"] is None
    assert patch["id"] == "m2"


def test_a_request_waits_while_another_report_is_active() -> None:
    active = after(report("m1", status()))
    waiting = report("m2", active, [job("m1")])
    assert waiting.start is None and waiting.summary is not None
    assert waiting.summary.id == "m1"
    assert active.last_match_report is not None
    ended = status(lastMatchReport={**active.last_match_report.dump(), "result": "Succeeded"})
    taken = report("m2", ended, [job("m1", "Complete")])
    assert taken.start is not None and taken.start.request_id == "m2"


def test_a_job_that_ends_without_a_report_or_vanishes_fails_the_request() -> None:
    pending = after(report("m1", status()))
    died = report("m1", pending, [job("m1", "Failed", "DeadlineExceeded")])
    assert died.summary is not None and died.summary.result == "Failed" and died.start is None
    assert died.summary.message == "Job wf-matches-m1 ended without a report: DeadlineExceeded"
    assert died.summary.exit_code == 1 and died.summary.completed_at == T0
    assert [(e.type, e.reason, e.message) for e in died.events] == [
        ("Warning", "MatchReportFinished", "match report m1 failed: Job wf-matches-m1 ended"
         " without a report: DeadlineExceeded")]
    assert pending.last_match_report is not None
    running = status(lastMatchReport={**pending.last_match_report.dump(), "result": "Running"})
    gone = report("m1", running, [])
    assert gone.summary is not None and gone.summary.result == "Failed" and gone.start is None
    assert gone.summary.message == "Job wf-matches-m1 disappeared before it reported"
    # Failed once: decided again (the same annotation), it stays as it is.
    assert report("m1", after(gone)).events == [] and report("m1", after(gone)).start is None


def test_a_workflow_that_is_not_ready_or_a_bad_id_is_refused_once_naming_why() -> None:
    refused = report("m1", status(), problems=["Environment 'tgt' not found in namespace x"])
    assert refused.start is None and refused.summary is not None
    assert (refused.summary.result, refused.summary.exit_code) == ("Failed", 2)
    assert refused.summary.message == ("Workflow is not Ready: Environment 'tgt' not found in"
                                       " namespace x")
    assert [e.reason for e in refused.events] == ["MatchReportRefused"]
    assert report("m1", after(refused), problems=["still"]).events == []
    bad = report("Not An Id", status())
    assert bad.start is None and bad.summary is not None and bad.summary.exit_code == 2
    assert bad.summary.message.startswith(
        "annotation ferry.dev/match-report-requested: 'Not An Id' is not a request id; give")
    assert report("Not An Id", after(bad)).events == []


def test_a_report_neither_waits_for_a_run_nor_holds_one_back_nor_a_trace() -> None:
    busy = status(activeRun={"id": "r9", "jobName": "wf-r9", "result": "Running"})
    beside = report("m1", busy)
    assert beside.start is not None  # read-only: it may run beside the run
    meta = ObjectMeta.model_validate({
        "name": "wf", "namespace": "ns", "uid": "u1", "generation": 1,
        "creationTimestamp": "2026-12-02T09:00:00Z",
        "annotations": {"ferry.dev/run-requested": "r1"}})
    spec = WorkflowSpec.model_validate({"steps": [
        {"readFrom": {"environments": ["src", "tgt"]}},
        {"stageData": {"template": "t", "pairs": [{"source": "src", "target": "tgt"}]}},
        {"writeTo": {"environments": ["tgt"]}}]})
    reporting = after(beside)
    assert decide(meta, spec, reporting, [], problems=[], now=T0).start is not None
    traced = decide_trace({"ferry.dev/trace-requested": "t1;ann"}, "wf", reporting, [],
                          problems=list, now=T0)
    assert traced.start is not None and traced.start.job_name == "wf-trace-t1"


def test_a_request_that_fails_here_is_written_before_the_waiting_one_is_taken() -> None:
    running = after(report("m1", status()))
    assert running.last_match_report is not None
    running = status(lastMatchReport={**running.last_match_report.dump(), "result": "Running"})
    # m2 waits for m1; m1's Job is gone: m1 fails, and its end is written on its own.
    ended = report("m2", running, [])
    assert ended.summary is not None and (ended.summary.id, ended.summary.result) == (
        "m1", "Failed")
    assert ended.start is None
    taken = report("m2", after(ended))
    assert taken.summary is not None and taken.summary.id == "m2" and taken.start is not None


def test_the_cli_ends_a_refused_request_with_exit_2_and_a_failed_one_with_1() -> None:
    refused = report("m1", status(), problems=["Environment 'tgt' not found"]).summary
    assert refused is not None
    error = failure(MATCH_REPORTS.kind, refused)
    assert (error.exit_code, str(error)) == (2, "Workflow is not Ready: Environment 'tgt' not"
                                                " found")
    gone = report("m1", status(lastMatchReport={"id": "m1", "jobName": "wf-matches-m1",
                                                "result": "Running"})).summary
    assert gone is not None and failure(MATCH_REPORTS.kind, gone).exit_code == 1
    trace = decide_trace({"ferry.dev/trace-requested": "Bad Id;x"}, "wf", status(), [],
                         problems=list, now=T0).summary
    assert trace is not None and failure(TRACES.kind, trace).exit_code == 2
