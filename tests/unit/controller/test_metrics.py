"""The operator's metrics: what each finished run adds to status.totals (once), and the series
a scrape shows from the cached objects' status."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from tests.unit.controller.test_workflow_decision import T0, UID, decide, job, wire, workflow

from ferry.controller.cache import ObjectCache
from ferry.controller.metrics import StatusCollector
from ferry.controller.runs import job_name, run_id_for
from ferry.gateway.app import Services
from ferry.gateway.metrics import GatewayCollector
from ferry.gateway.queue import WorkQueue

RUN = run_id_for(UID, "Manual", "r1")


def finished_run(result: str = "Succeeded", **types: dict[str, int]) -> dict[str, Any]:
    """Status as the sync Job leaves it: the active run reported, its Job complete."""
    return {"lastRunRequest": "r1", "activeRun": {
        "id": RUN, "jobName": job_name("src-to-tgt", RUN), "trigger": "Manual",
        "startTime": "2026-11-21T10:00:00Z", "completionTime": "2026-11-21T10:02:30Z",
        "result": result, "counts": {"created": 4},
        "types": types}}


def scrape(*objects: tuple[str, dict[str, Any]]) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                          float]:
    cache = ObjectCache()
    for kind, body in objects:
        cache.put(kind, body)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(cache))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_a_finished_run_is_added_to_the_totals_once() -> None:
    wf = workflow(annotations={"ferry.dev/run-requested": "r1"},
                  status=finished_run(user={"created": 4, "errors": 1}, group={"updated": 2}))
    done = wire(decide(wf, [job(RUN, finished="Complete")], problems=[], now=T0))
    assert done["totals"] == {
        "runs": {"Succeeded": 1}, "durationSeconds": 150.0,
        "lastSuccessTime": "2026-11-21T10:02:30Z",
        "types": {"user": {"created": 4, "errors": 1}, "group": {"updated": 2}}}
    # reconciled again (a restart, the next event): nothing more is added
    again = wire(decide(workflow(annotations={"ferry.dev/run-requested": "r1"}, status=done),
                        [job(RUN, finished="Complete")], problems=[], now=T0))
    assert again["totals"] == done["totals"]


def test_graphs_throttling_of_each_run_is_summed_and_scraped() -> None:
    status = {**finished_run(user={"created": 1}), "totals": {
        "runs": {"Succeeded": 1}, "graphThrottled": 5, "graphRetries": 7}}
    status["activeRun"] |= {"graphThrottled": 2, "graphRetries": 3}
    wf = workflow(annotations={"ferry.dev/run-requested": "r1"}, status=status)
    done = wire(decide(wf, [job(RUN, finished="Complete")], problems=[], now=T0))
    assert (done["totals"]["graphThrottled"], done["totals"]["graphRetries"]) == (7, 10)
    found = scrape(("Workflow", workflow(status=done)))
    key = (("namespace", "ferry"), ("workflow", "src-to-tgt"))
    assert found[("ferry_graph_throttled_total", key)] == 7
    assert found[("ferry_graph_retries_total", key)] == 10


def test_a_run_that_failed_counts_and_keeps_the_last_success() -> None:
    earlier = {"runs": {"Succeeded": 3}, "durationSeconds": 30.0,
               "lastSuccessTime": "2026-11-20T10:00:00Z", "types": {"user": {"created": 1}}}
    status = {**finished_run("ThresholdHit", user={"deleted": 0}), "totals": earlier}
    wf = workflow(annotations={"ferry.dev/run-requested": "r1"}, status=status)
    done = wire(decide(wf, [job(RUN, finished="Failed")], problems=[], now=T0))
    assert done["totals"]["runs"] == {"Succeeded": 3, "ThresholdHit": 1}
    assert done["totals"]["lastSuccessTime"] == "2026-11-20T10:00:00Z"
    assert done["totals"]["durationSeconds"] == 180.0


def test_a_scrape_shows_the_workflow_environment_and_migration_figures() -> None:
    wf = workflow(schedule={"intervalMinutes": 60}, status={
        "totals": {"runs": {"Succeeded": 2, "Failed": 1, "ThresholdHit": 1},
                   "durationSeconds": 300.0, "lastSuccessTime": "2026-11-21T10:00:00Z",
                   "types": {"user": {"created": 4, "conflicts": 2}}},
        "nextRunTime": "2026-11-21T11:00:00Z",
        "lastRun": {"id": "x", "result": "Failed", "startTime": "2026-11-21T10:30:00Z",
                    "completionTime": "2026-11-21T10:30:42Z"}})
    env = {"metadata": {"namespace": "ferry", "name": "src"},
           "spec": {"connection": "agent"},
           "status": {"objectCounts": {"users": 120, "groups": 7},
                      "agents": [{"name": "a1", "connected": True}, {"name": "a2"}]}}
    migration = {"metadata": {"namespace": "ferry", "name": "move"}, "status": {
        "devices": [{"name": "ws1", "wave": "w1", "phase": "Done", "retries": 1},
                    {"name": "ws2", "wave": "w2", "phase": "Failed"}],
        "waves": [{"name": "w1", "total": 1, "done": 1},
                  {"name": "w2", "total": 1, "failed": 1, "paused": True}]}}
    found = scrape(("Workflow", wf), ("Environment", env), ("DeviceMigration", migration))
    wf_labels = (("namespace", "ferry"), ("workflow", "src-to-tgt"))

    def get(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted({**dict(wf_labels), **labels}.items())))]

    assert get("ferry_runs_total", result="Succeeded") == 2
    assert get("ferry_runs_total", result="Failed") == 1
    assert get("ferry_runs_total", result="CompletedWithErrors") == 0
    assert get("ferry_delete_threshold_hits_total") == 1
    assert get("ferry_objects_total", type="user", operation="created") == 4
    assert get("ferry_objects_total", type="user", operation="conflicted") == 2
    assert get("ferry_run_duration_seconds_sum") == 300.0
    assert get("ferry_run_duration_seconds_count") == 4
    assert get("ferry_last_run_duration_seconds") == 42.0
    assert get("ferry_last_success_timestamp_seconds") == T0.timestamp()
    assert get("ferry_next_run_timestamp_seconds") == T0.timestamp() + 3600
    assert get("ferry_schedule_interval_seconds") == 3600
    assert get("ferry_run_active") == 0
    env_labels = {"namespace": "ferry", "environment": "src"}
    assert found[("ferry_discovery_objects", tuple(sorted(
        {**env_labels, "type": "users"}.items())))] == 120
    assert found[("ferry_agents_connected", tuple(sorted(env_labels.items())))] == 1
    assert found[("ferry_agents", tuple(sorted(env_labels.items())))] == 2
    m = {"namespace": "ferry", "migration": "move"}
    assert found[("ferry_migration_devices", tuple(sorted({**m, "phase": "Done"}.items())))] == 1
    assert found[("ferry_migration_devices", tuple(sorted({**m, "phase": "Pending"}.items())))] \
        == 0
    assert found[("ferry_migration_wave_devices", tuple(sorted(
        {**m, "wave": "w2", "state": "failed"}.items())))] == 1
    assert found[("ferry_migration_wave_paused", tuple(sorted({**m, "wave": "w2"}.items())))] \
        == 1


def test_manual_and_suspended_workflows_have_no_schedule_period() -> None:
    manual = scrape(("Workflow", workflow()))
    suspended = scrape(("Workflow", workflow(schedule={"timeOfDay": "02:00"}, suspend=True)))
    daily = scrape(("Workflow", workflow(schedule={"timeOfDay": "02:00"})))
    assert not [k for k in {**manual, **suspended} if k[0] == "ferry_schedule_interval_seconds"]
    assert [v for k, v in daily.items() if k[0] == "ferry_schedule_interval_seconds"] == [86400]


CHART = Path(__file__).resolve().parents[3] / "charts" / "ferry"


def test_the_charts_alerts_and_dashboard_use_only_metrics_ferry_serves() -> None:
    """Every ferry_* name in the PrometheusRule and the Grafana dashboard is a series the
    operator or the gateway serves (a renamed metric would silence an alert)."""
    wf = workflow(schedule={"intervalMinutes": 60}, status={
        "totals": {"runs": {"Succeeded": 1}, "lastSuccessTime": "2026-11-21T10:00:00Z",
                   "types": {"user": {"created": 1}}},
        "nextRunTime": "2026-11-21T11:00:00Z",
        "lastRun": {"id": "x", "result": "Succeeded", "startTime": "2026-11-21T10:00:00Z",
                    "completionTime": "2026-11-21T10:00:42Z"}})
    env = {"metadata": {"namespace": "ferry", "name": "src"}, "spec": {"connection": "agent"},
           "status": {"objectCounts": {"users": 1}, "lastDiscovery": "2026-11-21T10:00:00Z"}}
    migration = {"metadata": {"namespace": "ferry", "name": "m"},
                 "status": {"waves": [{"name": "w"}]}}
    served = {name for name, _ in scrape(("Workflow", wf), ("Environment", env),
                                          ("DeviceMigration", migration))}
    queue = WorkQueue()
    queue.submit("src", "exists", {})
    services = Services(store=None, ca=None, queue=queue, job_key=None,  # type: ignore[arg-type]
                        trust_bundle="")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(services))
    served |= {s.name for f in text_string_to_metric_families(generate_latest(registry).decode())
               for s in f.samples}
    used = set(re.findall(r"\bferry_[a-z_]+", (CHART / "templates" / "metrics.yaml").read_text()
                          + (CHART / "dashboards" / "ferry.json").read_text()))
    assert used and used - served == set()
    assert {"ferry_runs_total", "ferry_last_success_timestamp_seconds",
            "ferry_schedule_interval_seconds", "ferry_delete_threshold_hits_total",
            "ferry_agents_connected"} <= used  # the four alerts' series
