"""Reconciling and Stalled as the decisions set them (kstatus' pair; the kube tests run kstatus
itself on the objects): what is under way, and what waits for a person."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tests.unit.controller.test_workflow_decision import (
    T0,
    UID,
    condition,
    decide,
    job,
    wire,
    workflow,
)

from ferry.api.conditions import ConditionType, Reason, set_condition
from ferry.api.status import DiscoveryRun, EnvironmentStatus, RunResult
from ferry.controller.environments import environment_health
from ferry.controller.runs import job_name, run_id_for
from ferry.controller.templates import TemplateReconciler


def pair(status: dict[str, Any]) -> tuple[tuple[str, str], tuple[str, str]]:
    rec, stalled = condition(status, "Reconciling"), condition(status, "Stalled")
    return (rec["status"], rec["reason"]), (stalled["status"], stalled["reason"])


def finished(result: str, message: str = "") -> dict[str, Any]:
    run_id = run_id_for(UID, "Manual", "r1")
    return {"lastRunRequest": "r1", "activeRun": {
        "id": run_id, "jobName": job_name("src-to-tgt", run_id), "trigger": "Manual",
        "startTime": "2026-11-21T10:00:00Z", "result": result, "message": message}}


def test_a_workflow_is_reconciling_while_its_run_is_active_and_stalled_by_nothing() -> None:
    decision = decide(workflow(annotations={"ferry.dev/run-requested": "r1"}), [],
                      problems=[], now=T0)
    status = wire(decision)
    assert pair(status) == (("True", "RunActive"), ("False", "NotStalled"))
    assert "Pending" in condition(status, "Reconciling")["message"]
    assert all(c["observedGeneration"] == 3 for c in status["conditions"])
    assert status["observedGeneration"] == 3


def test_a_failed_run_stalls_the_workflow_with_the_run_result_until_a_run_succeeds() -> None:
    run_id = run_id_for(UID, "Manual", "r1")
    failed = wire(decide(workflow(status=finished("Failed", "bind refused")),
                         [job(run_id, "Failed")], problems=[], now=T0))
    assert pair(failed) == (("False", "Reconciled"), ("True", "Failed"))
    assert "bind refused" in condition(failed, "Stalled")["message"]
    assert condition(failed, "Ready")["status"] == "True"   # it can still run
    held = wire(decide(workflow(status=finished("ThresholdHit", "12 deletes held")),
                       [job(run_id, "Complete")], problems=[], now=T0))
    assert pair(held)[1] == ("True", "ThresholdHit")
    # the next run is Reconciling (the stall is not shown while it works), then clears it
    again = wire(decide(workflow(status={**failed, "lastRunRequest": "r1"},
                                 annotations={"ferry.dev/run-requested": "r2"}), [],
                        problems=[], now=T0))
    assert pair(again) == (("True", "RunActive"), ("False", "NotStalled"))
    succeeded = {**again, "activeRun": {**again["activeRun"], "result": "Succeeded"}}
    done = wire(decide(workflow(status=succeeded), [job(again["activeRun"]["id"], "Complete")],
                       problems=[], now=T0))
    assert pair(done) == (("False", "Reconciled"), ("False", "NotStalled"))


def test_an_invalid_reference_or_schedule_stalls_the_workflow_with_readys_reason() -> None:
    missing = wire(decide(workflow(), [], problems=["Environment 'tgt' not found"], now=T0))
    assert pair(missing)[1] == ("True", "InvalidReference")
    assert condition(missing, "Stalled")["message"] == "Environment 'tgt' not found"
    mars = {"timeOfDay": "02:00", "timeZone": "Mars/Olympus"}
    bad = wire(decide(workflow(schedule=mars), [], problems=[], now=T0))
    assert condition(bad, "Ready")["reason"] == "InvalidSchedule"
    assert pair(bad)[1] == ("True", "InvalidSchedule")


def test_an_environment_is_reconciling_while_discovering_and_stalled_by_what_needs_fixing() -> None:
    status = EnvironmentStatus()
    now = datetime(2026, 12, 3, tzinfo=UTC)
    set_condition(status, ConditionType.READY, True, Reason.SECRETS_RESOLVED, "ok", 1, now)
    set_condition(status, ConditionType.CONNECTED, True, Reason.CONNECTED, "bound", 1, now)
    assert environment_health(status) == (None, None)
    status.active_discovery = DiscoveryRun(id="d1", job_name="e-discovery-d1",
                                           result=RunResult.RUNNING)
    reconciling, _ = environment_health(status)
    assert reconciling is not None and reconciling.reason is Reason.DISCOVERY_RUNNING
    status.active_discovery = None
    status.discovery = DiscoveryRun(id="d1", result=RunResult.FAILED, message="LDAP timeout")
    _, stalled = environment_health(status)
    assert stalled is not None and stalled.reason is Reason.DISCOVERY_FAILED
    assert "LDAP timeout" in stalled.message
    set_condition(status, ConditionType.CONNECTED, False, Reason.NO_AGENT_CONNECTED,
                  "0/0 agents connected", 1, now)
    assert environment_health(status)[1] is not None
    assert environment_health(status)[1].reason is Reason.NO_AGENT_CONNECTED  # type: ignore[union-attr]
    set_condition(status, ConditionType.READY, False, Reason.SECRET_UNAVAILABLE,
                  "Secret ad-bind not found", 1, now)
    _, stalled = environment_health(status)
    assert stalled is not None and stalled.reason is Reason.SECRET_UNAVAILABLE


class _Objects:
    """Keeps the one Template's status as the API server would after each merge patch."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}

    def patch_status(self, plural: str, body: dict[str, Any], changes: dict[str, Any]) -> None:
        self.status = {k: v for k, v in {**self.status, **changes}.items() if v is not None}


class _Events:
    def __init__(self) -> None:
        self.posted: list[str] = []

    def post(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.posted.append(reason)


def test_a_template_that_does_not_compile_is_stalled_and_one_with_a_bad_shape_says_invalid_spec(
) -> None:
    objects, events = _Objects(), _Events()
    reconciler = TemplateReconciler(objects, events)  # type: ignore[arg-type]
    meta = {"name": "t", "namespace": "ferry", "generation": 2}

    def reconcile(spec: dict[str, Any]) -> dict[str, Any]:
        reconciler.reconcile({"metadata": meta, "spec": spec, "status": objects.status})
        return objects.status

    status = reconcile({"attributeMappings": [{"target": "mail",
                                               "expression": "source.mail +"}]})
    assert pair(status) == (("False", "Reconciled"), ("True", "InvalidExpression"))
    status = reconcile({"attributeMappings": "no"})
    assert condition(status, "Ready")["reason"] == "InvalidSpec"
    assert pair(status)[1] == ("True", "InvalidSpec")
    assert events.posted == ["InvalidExpression"]  # one Event when Ready turned False
    status = reconcile({})
    assert pair(status) == (("False", "Reconciled"), ("False", "NotStalled"))
    assert status["observedGeneration"] == 2
