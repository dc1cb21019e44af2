"""The operator's decisions about in-cluster traces, from observed state only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kubernetes.client import V1Job, V1JobCondition, V1JobStatus, V1ObjectMeta

from ferry.api.base import ObjectMeta
from ferry.api.status import WorkflowStatus
from ferry.api.workflow import WorkflowSpec
from ferry.controller.job_requests import summary_patch
from ferry.controller.runs import RUN_LABEL
from ferry.controller.trace_decision import TraceDecision, decide_trace, trace_job_name
from ferry.controller.trace_requests import (
    TRACE_LABEL,
    TraceRequest,
    TraceRequestInvalid,
    parse_request,
)
from ferry.controller.workflow_decision import decide

T0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
ANNOTATION = "ferry.dev/trace-requested"


def status(**fields: Any) -> WorkflowStatus:
    return WorkflowStatus.model_validate(fields)


def after(decision: TraceDecision, before: WorkflowStatus | None = None) -> WorkflowStatus:
    """The status the operator leaves behind (as the API server would hand it back)."""
    wire = (before or status()).dump()
    wire.pop("lastTrace", None)
    if decision.summary is not None:
        wire["lastTrace"] = decision.summary.dump()
    return WorkflowStatus.model_validate(wire)


def job(trace_id: str, finished: str | None = None, reason: str = "") -> V1Job:
    conditions = [V1JobCondition(type=finished, status="True", reason=reason)] if finished \
        else []
    return V1Job(metadata=V1ObjectMeta(name=trace_job_name("wf", trace_id),
                                       labels={RUN_LABEL: trace_id, TRACE_LABEL: "wf"}),
                 status=V1JobStatus(conditions=conditions))


def trace(annotation: str | None, current: WorkflowStatus, jobs: list[V1Job] | None = None,
          problems: list[str] | None = None, now: datetime = T0) -> TraceDecision:
    return decide_trace({ANNOTATION: annotation} if annotation else {}, "wf", current,
                        jobs or [], problems=lambda: problems or [], now=now)


def request(trace_id: str = "t1", key: str = "ann@src.test", apply: bool = False) -> str:
    return TraceRequest(trace_id, key, apply).annotation()


def test_a_request_becomes_one_pending_trace_and_one_job_even_across_a_restart() -> None:
    first = trace(request(), status())
    assert first.start is not None and first.start.job_name == "wf-trace-t1"
    assert first.summary is not None and first.summary.dump() == {
        "id": "t1", "object": "ann@src.test", "apply": False, "jobName": "wf-trace-t1",
        "requestedAt": "2026-12-02T10:00:00Z", "result": "Pending"}
    recorded = after(first)
    # The operator restarted after writing status, before creating the Job: created once now.
    again = trace(request(), recorded, now=T0 + timedelta(seconds=30))
    assert again.start is not None and again.start.job_name == "wf-trace-t1"
    assert again.summary == recorded.last_trace and again.events == []
    # The Job exists (running): nothing more, however often it is decided.
    running = trace(request(), recorded, [job("t1")])
    assert running.start is None and running.events == [] and running.summary == recorded.last_trace


def test_an_ended_trace_is_not_taken_again_and_a_new_id_is() -> None:
    done = status(lastTrace={"id": "t1", "object": "ann", "result": "Succeeded",
                             "report": "{}", "exitCode": 0})
    assert trace(request(), done, [job("t1", "Complete")]).start is None
    fresh = trace(request("t2", "bob"), done)
    assert fresh.start is not None and fresh.summary is not None
    assert (fresh.summary.id, fresh.summary.object, fresh.summary.result) == (
        "t2", "bob", "Pending")
    # Written whole: the last trace's report and exit code are cleared, not merged in.
    patch = summary_patch("lastTrace", done.last_trace, fresh.summary)["lastTrace"]
    assert patch["report"] is None and patch["exitCode"] is None and patch["id"] == "t2"


def test_a_request_waits_while_another_trace_is_active() -> None:
    active = after(trace(request("t1"), status()))
    waiting = trace(request("t2"), active, [job("t1")])
    assert waiting.start is None and waiting.summary is not None and waiting.summary.id == "t1"
    assert active.last_trace is not None
    ended = status(lastTrace={**active.last_trace.dump(), "result": "Succeeded"})
    taken = trace(request("t2"), ended, [job("t1", "Complete")])
    assert taken.start is not None and taken.start.request_id == "t2"


def test_a_job_that_ends_without_a_report_or_vanishes_fails_the_trace() -> None:
    pending = after(trace(request(), status()))
    died = trace(request(), pending, [job("t1", "Failed", "BackoffLimitExceeded")])
    assert died.summary is not None and died.summary.result == "Failed"
    assert died.summary.message == "Job wf-trace-t1 ended without a report: BackoffLimitExceeded"
    assert died.summary.exit_code == 1 and died.start is None
    assert [(e.type, e.reason) for e in died.events] == [("Warning", "TraceFinished")]
    assert pending.last_trace is not None
    running = status(lastTrace={**pending.last_trace.dump(), "result": "Running"})
    gone = trace(request(), running, [])
    assert gone.summary is not None and gone.summary.result == "Failed" and gone.start is None
    assert "disappeared before it reported" in gone.summary.message


def test_an_apply_is_refused_while_a_run_is_active_and_a_read_only_trace_is_not() -> None:
    busy = status(activeRun={"id": "r9", "jobName": "wf-r9", "result": "Running"})
    refused = trace(request(apply=True), busy)
    assert refused.start is None and refused.summary is not None
    assert (refused.summary.result, refused.summary.exit_code) == ("Failed", 1)
    assert refused.summary.message == "run r9 is active; try again when it ends"
    assert [e.reason for e in refused.events] == ["TraceRefused"]
    # Refused once: decided again, it stays as it is.
    again = trace(request(apply=True), after(refused, busy))
    assert again.events == [] and again.start is None
    looking = trace(request("t3"), busy)
    assert looking.start is not None and looking.summary is not None
    assert looking.summary.result == "Pending"


def test_a_workflow_that_is_not_ready_refuses_the_trace_naming_why() -> None:
    refused = trace(request(), status(), problems=["Environment 'tgt' not found in namespace x"])
    assert refused.start is None and refused.summary is not None
    assert refused.summary.exit_code == 2
    assert refused.summary.message == ("Workflow is not Ready: Environment 'tgt' not found in"
                                     " namespace x")


def test_an_unreadable_annotation_is_refused_once_saying_what_to_give() -> None:
    bad = trace("Bad Id;ann", status())
    assert bad.start is None and bad.summary is not None and bad.summary.exit_code == 2
    assert bad.summary.message.startswith(
        "annotation ferry.dev/trace-requested: id 'Bad Id' is not a valid id; give")
    assert [e.reason for e in bad.events] == ["TraceRefused"]
    assert trace("Bad Id;ann", after(bad)).events == []


@pytest.mark.parametrize(("value", "expected"), [
    ("t1;ann@src.test", TraceRequest("t1", "ann@src.test")),
    ("t1;CN=Ann;x,OU=Corp,DC=src,DC=test;apply",
     TraceRequest("t1", "CN=Ann;x,OU=Corp,DC=src,DC=test", True)),
    ('{"id": "abc-9", "object": "ann", "apply": true}', TraceRequest("abc-9", "ann", True)),
])
def test_the_annotation_forms(value: str, expected: TraceRequest) -> None:
    assert parse_request(value) == expected
    assert parse_request(expected.annotation()) == expected


@pytest.mark.parametrize(("value", "says"), [
    ("t1;", "the object must be 1 to 1024 characters"),
    ("t1;" + "x" * 1025, "the object must be 1 to 1024 characters"),
    ("{not json", "not JSON"),
    ('{"id": "t1", "object": "a", "force": true}', "unknown key(s) force"),
    ('{"id": "t1", "object": "a", "apply": "yes"}', "apply true or false"),
    ("-t1;ann", "is not a valid id"),
])
def test_bad_annotations_name_the_problem(value: str, says: str) -> None:
    with pytest.raises(TraceRequestInvalid) as exc:
        parse_request(value)
    assert str(exc.value).startswith("annotation ferry.dev/trace-requested: ")
    assert says in str(exc.value)


def test_runs_wait_while_a_trace_applies() -> None:
    meta = ObjectMeta.model_validate({
        "name": "wf", "namespace": "ns", "uid": "u1", "generation": 1,
        "creationTimestamp": "2026-12-02T09:00:00Z",
        "annotations": {"ferry.dev/run-requested": "r1"}})
    spec = WorkflowSpec.model_validate({"steps": [
        {"readFrom": {"environments": ["src", "tgt"]}},
        {"stageData": {"template": "t", "pairs": [{"source": "src", "target": "tgt"}]}},
        {"writeTo": {"environments": ["tgt"]}}]})
    applying = status(lastTrace={"id": "t1", "object": "ann", "apply": True,
                                 "jobName": "wf-trace-t1", "result": "Running"})
    held = decide(meta, spec, applying, [], problems=[], now=T0)
    assert held.start is None and held.status.active_run is None
    assert [e.message for e in held.events] == ["run request 'r1' ignored: trace t1 is applying"]
    reading = status(lastTrace={"id": "t1", "object": "ann", "result": "Running"})
    assert decide(meta, spec, reading, [], problems=[], now=T0).start is not None
