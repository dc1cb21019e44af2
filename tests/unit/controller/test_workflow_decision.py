"""The operator's decisions for one Workflow, from observed state only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from kubernetes.client import V1Job, V1JobCondition, V1JobStatus, V1ObjectMeta

from ferry.api.base import ObjectMeta
from ferry.api.status import WorkflowStatus
from ferry.api.workflow import WorkflowSpec
from ferry.controller.run_tracking import Decision
from ferry.controller.runs import RUN_LABEL, job_name, run_id_for
from ferry.controller.workflow_decision import decide as decide_typed
from ferry.kube import status_changes

T0 = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
UID = "4f0c3c6e-0000-4000-8000-000000000001"


def workflow(schedule: dict[str, Any] | None = None, status: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None, suspend: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "src-to-tgt", "namespace": "ferry", "uid": UID, "generation": 3,
                     "creationTimestamp": "2026-11-21T10:00:00Z",
                     "annotations": annotations or {}},
        "spec": {
            "steps": [
                {"readFrom": {"environments": ["src", "tgt"]}},
                {"stageData": {"template": "t", "pairs": [{"source": "src", "target": "tgt"}]}},
                {"writeTo": {"environments": ["tgt"]}},
            ],
            "schedule": schedule or {},
            "suspend": suspend,
        },
        "status": status or {},
    }


def decide(wf: dict[str, Any], jobs: list[V1Job], **kwargs: Any) -> Decision[WorkflowStatus]:
    """decide() on a Workflow as the API server sends it."""
    return decide_typed(ObjectMeta.model_validate(wf["metadata"]),
                        WorkflowSpec.model_validate(wf["spec"]),
                        WorkflowStatus.model_validate(wf["status"]), jobs, **kwargs)


def wire(decision: Decision[WorkflowStatus]) -> dict[str, Any]:
    """The decided status as written to the API server."""
    return decision.status.dump()


def job(run_id: str, finished: str | None = None, reason: str = "") -> V1Job:
    conditions = [V1JobCondition(type=finished, status="True", reason=reason)] if finished \
        else []
    return V1Job(metadata=V1ObjectMeta(name=job_name("src-to-tgt", run_id),
                                       labels={RUN_LABEL: run_id},
                                       creation_timestamp=datetime(2026, 11, 21, 10, 0, 1,
                                                                   tzinfo=UTC)),
                 status=V1JobStatus(conditions=conditions, completion_time=datetime(
                     2026, 11, 21, 10, 5, tzinfo=UTC) if finished else None))


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_a_manual_request_starts_one_run_with_a_deterministic_id() -> None:
    wf = workflow(annotations={"ferry.dev/run-requested": "r1"})
    first = decide(wf, [], problems=[], now=T0)
    again = decide(wf, [], problems=[], now=T0 + timedelta(seconds=5))
    assert first.start is not None and again.start is not None
    assert first.start.run_id == again.start.run_id == run_id_for(UID, "Manual", "r1")
    active = wire(first)["activeRun"]
    assert active["result"] == "Pending" and active["trigger"] == "Manual"
    assert wire(first)["lastRunRequest"] == "r1"
    assert condition(wire(first), "Running")["status"] == "True"
    assert condition(wire(first), "Ready")["status"] == "True"
    # once recorded, the same request does not start anything more
    settled = decide(workflow(annotations={"ferry.dev/run-requested": "r1"},
                              status=wire(first)), [job(first.start.run_id)],
                     problems=[], now=T0)
    assert settled.start is None
    assert wire(settled)["activeRun"]["result"] == "Running"


def test_pending_run_without_its_job_is_created_after_a_restart() -> None:
    run_id = run_id_for(UID, "Manual", "r1")
    status = {"lastRunRequest": "r1", "activeRun": {
        "id": run_id, "jobName": job_name("src-to-tgt", run_id), "trigger": "Manual",
        "startTime": "2026-11-21T10:00:00Z", "result": "Pending"}}
    decision = decide(workflow(annotations={"ferry.dev/run-requested": "r1"}, status=status),
                      [], problems=[], now=T0)
    assert decision.start is not None and decision.start.run_id == run_id


def test_a_second_request_during_a_run_starts_nothing_and_says_so() -> None:
    run_id = run_id_for(UID, "Manual", "r1")
    status = {"lastRunRequest": "r1", "activeRun": {
        "id": run_id, "jobName": job_name("src-to-tgt", run_id), "trigger": "Manual",
        "startTime": "2026-11-21T10:00:00Z", "result": "Running"}}
    decision = decide(workflow(annotations={"ferry.dev/run-requested": "r2"}, status=status),
                      [job(run_id)], problems=[], now=T0)
    assert decision.start is None
    assert wire(decision)["activeRun"]["id"] == run_id
    assert wire(decision)["lastRunRequest"] == "r2"
    assert [e.reason for e in decision.events] == ["RunSkipped"]


def test_finished_job_becomes_last_run_with_the_counts_the_sync_job_reported() -> None:
    run_id = run_id_for(UID, "Manual", "r1")
    active = {"id": run_id, "jobName": job_name("src-to-tgt", run_id), "trigger": "Manual",
              "startTime": "2026-11-21T10:00:00Z", "result": "Succeeded",
              "counts": {"created": 7, "updated": 1, "deleted": 0}}
    decision = decide(workflow(status={"lastRunRequest": "r1", "activeRun": active}),
                      [job(run_id, "Complete")], problems=[], now=T0)
    status = wire(decision)
    assert status.get("activeRun") is None
    assert status["lastRun"]["result"] == "Succeeded"
    assert status["lastRun"]["counts"]["created"] == 7
    assert status["history"][0]["id"] == run_id
    assert condition(status, "Succeeded")["status"] == "True"
    assert condition(status, "Running")["status"] == "False"
    assert [(e.type, e.reason) for e in decision.events] == [("Normal", "RunSucceeded")]


def test_failed_job_without_a_report_fails_with_the_jobs_reason() -> None:
    run_id = run_id_for(UID, "Manual", "r1")
    active = {"id": run_id, "jobName": "x", "trigger": "Manual", "result": "Running"}
    decision = decide(workflow(status={"activeRun": active}),
                      [job(run_id, "Failed", "DeadlineExceeded")], problems=[], now=T0)
    last = wire(decision)["lastRun"]
    assert last["result"] == "Failed" and "DeadlineExceeded" in last["message"]
    succeeded = condition(wire(decision), "Succeeded")
    assert (succeeded["status"], succeeded["reason"]) == ("False", "Failed")
    assert decision.events[0].reason == "RunFailed"


def test_threshold_hit_reported_by_the_sync_job_survives_the_failed_job() -> None:
    active = {"id": "abc", "jobName": "x", "trigger": "Manual", "result": "ThresholdHit",
              "message": "would delete 12 > threshold 10"}
    decision = decide(workflow(status={"activeRun": active}),
                      [job("abc", "Failed", "PodFailurePolicy")], problems=[], now=T0)
    assert wire(decision)["lastRun"]["result"] == "ThresholdHit"
    assert decision.events[0].reason == "DeleteThresholdHit"


def test_interval_schedule_fires_once_per_slot_and_suspend_stops_it() -> None:
    wf = workflow(schedule={"intervalMinutes": 30})
    early = decide(wf, [], problems=[], now=T0 + timedelta(minutes=10))
    assert early.start is None
    assert wire(early)["nextRunTime"] == "2026-11-21T10:30:00Z"
    assert wire(early)["schedule"] == "every 30m"
    due = decide(wf, [], problems=[], now=T0 + timedelta(minutes=31))
    assert due.start is not None and due.start.trigger == "Schedule"
    assert wire(due)["lastScheduleTime"] == "2026-11-21T10:30:00Z"
    assert wire(due)["nextRunTime"] == "2026-11-21T11:00:00Z"
    suspended = decide(workflow(schedule={"intervalMinutes": 30}, suspend=True), [],
                       problems=[], now=T0 + timedelta(hours=3))
    assert suspended.start is None and wire(suspended).get("nextRunTime") is None
    assert wire(suspended)["schedule"] == "every 30m (suspended)"


def test_missing_references_make_it_not_ready_and_nothing_starts() -> None:
    wf = workflow(annotations={"ferry.dev/run-requested": "r1"})
    decision = decide(wf, [], problems=["Environment 'tgt' not found in namespace ferry"],
                      now=T0)
    assert decision.start is None
    ready = condition(wire(decision), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidReference")
    assert "Environment 'tgt' not found" in ready["message"]
    assert wire(decision)["observedGeneration"] == 3


def test_a_running_job_that_status_lost_is_adopted_not_duplicated() -> None:
    decision = decide(workflow(annotations={"ferry.dev/run-requested": "r9"}), [job("zzz")],
                      problems=[], now=T0)
    assert decision.start is None
    assert wire(decision)["activeRun"]["id"] == "zzz"


def test_condition_transition_time_moves_only_when_status_changes() -> None:
    first = decide(workflow(), [], problems=[], now=T0)
    later = decide(workflow(status=wire(first)), [], problems=[], now=T0 + timedelta(hours=1))
    assert condition(wire(later), "Ready")["lastTransitionTime"] == \
        condition(wire(first), "Ready")["lastTransitionTime"]


def test_the_patch_clears_the_active_run_once_it_has_finished() -> None:
    active = {"id": "abc", "jobName": "x", "trigger": "Manual", "result": "Running",
              "startTime": "2026-11-21T10:00:00Z"}
    observed = workflow(status={"activeRun": active})
    decision = decide(observed, [job("abc", "Complete")], problems=[], now=T0)
    changes = status_changes(WorkflowStatus.model_validate(observed["status"]), decision.status)
    assert "activeRun" in changes and changes["activeRun"] is None  # merge patch: delete it
    assert changes["lastRun"] == {**active, "result": "Succeeded", "message": "",
                                  "completionTime": "2026-11-21T10:05:00Z"}
    unchanged = decide(workflow(status=wire(decision)), [], problems=[], now=T0)
    assert status_changes(decision.status, unchanged.status) == {}
