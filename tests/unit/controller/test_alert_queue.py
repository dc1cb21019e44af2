"""The operator queues a finished run's alerts (Pending) in the status it records the run in:
a Job that died alerts Failed, a success after a failure Recovered, and a second look at the
same Jobs queues nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from kubernetes.client import V1Job, V1JobCondition, V1JobStatus, V1ObjectMeta

from ferry.api.base import ObjectMeta
from ferry.api.status import WorkflowStatus
from ferry.api.workflow import WorkflowSpec
from ferry.controller.runs import RUN_LABEL, job_name
from ferry.controller.workflow_decision import decide

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
META = ObjectMeta.model_validate({"name": "wf", "namespace": "ns", "uid": "u-1",
                                  "generation": 1})
SPEC = WorkflowSpec.model_validate({
    "steps": [{"readFrom": {"environments": ["src", "tgt"]}},
              {"stageData": {"template": "t", "pairs": [{"source": "src", "target": "tgt"}]}},
              {"writeTo": {"environments": ["tgt"]}}],
    "alerts": [{"name": "ops", "webhook": {"url": "https://hooks.example/x",
                                           "signingKey": {"env": "KEY"}}}]})


def finished_job(run_id: str, kind: str) -> V1Job:
    return V1Job(metadata=V1ObjectMeta(name=job_name("wf", run_id), labels={RUN_LABEL: run_id}),
                 status=V1JobStatus(conditions=[V1JobCondition(type=kind, status="True",
                                                               reason="BackoffLimitExceeded")]))


def status(active: str, last: str | None = None) -> WorkflowStatus:
    body: dict[str, Any] = {"activeRun": {"id": active, "jobName": job_name("wf", active),
                                          "result": "Running"}}
    if last:
        body["lastRun"] = {"id": "r0", "result": last}
    return WorkflowStatus.model_validate(body)


def test_a_job_that_died_queues_its_failed_alert_once() -> None:
    decided = decide(META, SPEC, status("r1"), [finished_job("r1", "Failed")], problems=[],
                     now=NOW).status
    assert [(d.alert, d.run, d.outcome, d.state) for d in decided.alerts] == [
        ("ops", "r1", "Failed", "Pending")]
    # Seen again (the run is recorded now): nothing more queued, nothing sent here.
    again = decide(META, SPEC, decided, [finished_job("r1", "Failed")], problems=[],
                   now=NOW).status
    assert again.alerts == decided.alerts


def test_a_success_after_a_failure_queues_recovered() -> None:
    decided = decide(META, SPEC, status("r1", last="Failed"), [finished_job("r1", "Complete")],
                     problems=[], now=NOW).status
    assert [d.outcome for d in decided.alerts] == ["Recovered"]
    after_success = decide(META, SPEC, status("r1", last="Succeeded"),
                           [finished_job("r1", "Complete")], problems=[], now=NOW).status
    assert after_success.alerts == []
