"""The operator's Prometheus metrics, read at each scrape from the objects' status as the
watch streams last delivered it (ObjectCache): what a run recorded is counted, not what this
process happened to see, so the figures survive Job pods and operator restarts alike."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from ferry.api.status import (
    DeviceMigrationStatus,
    DevicePhase,
    EnvironmentStatus,
    RunCounts,
    RunResult,
    RunTotals,
    WorkflowStatus,
)
from ferry.controller.cache import ObjectCache

# ferry_objects_total{operation}: the RunCounts field each operation counts.
OPERATIONS = {"created": "created", "updated": "updated", "moved": "moved",
              "deleted": "deleted", "failed": "errors", "conflicted": "conflicts"}
_WORKFLOW = ["namespace", "workflow"]
_FINISHED = [r for r in RunResult if r not in (RunResult.PENDING, RunResult.RUNNING)]
_DAY = 24 * 3600


class StatusCollector(Collector):
    """Every ferry_* series of the operator, from the cached Workflows, Environments and
    DeviceMigrations."""

    def __init__(self, cache: ObjectCache):
        self._cache = cache

    def collect(self) -> Iterable[Metric]:
        yield from _workflows(self._cache.all("Workflow"))
        yield from _environments(self._cache.all("Environment"))
        yield from _migrations(self._cache.all("DeviceMigration"))


def _workflows(bodies: list[dict[str, Any]]) -> Iterator[Metric]:
    runs = CounterMetricFamily("ferry_runs", "Finished runs of a workflow by result.",
                               labels=[*_WORKFLOW, "result"])
    thresholds = CounterMetricFamily(
        "ferry_delete_threshold_hits", "Runs that held their deletions back: the delete"
        " threshold was hit.", labels=_WORKFLOW)
    objects = CounterMetricFamily(
        "ferry_objects", "Directory objects the finished runs wrote or could not, by object"
        " type and operation.", labels=[*_WORKFLOW, "type", "operation"])
    duration = SummaryMetricFamily("ferry_run_duration_seconds",
                                   "How long the finished runs took.", labels=_WORKFLOW)
    last_duration = GaugeMetricFamily("ferry_last_run_duration_seconds",
                                      "How long the latest finished run took.", labels=_WORKFLOW)
    last_success = GaugeMetricFamily(
        "ferry_last_success_timestamp_seconds", "When the latest run that succeeded ended"
        " (Unix time).", labels=_WORKFLOW)
    next_run = GaugeMetricFamily("ferry_next_run_timestamp_seconds",
                                 "When the schedule starts the next run (Unix time).",
                                 labels=_WORKFLOW)
    interval = GaugeMetricFamily(
        "ferry_schedule_interval_seconds", "The schedule's period, for workflows that run on"
        " one and are not suspended (manual and suspended ones have no series).",
        labels=_WORKFLOW)
    active = GaugeMetricFamily("ferry_run_active", "1 while a run is in progress.",
                               labels=_WORKFLOW)
    throttled = CounterMetricFamily(
        "ferry_graph_throttled", "Microsoft Graph's 429 answers the finished runs waited out.",
        labels=_WORKFLOW)
    retries = CounterMetricFamily(
        "ferry_graph_retries", "Graph requests the finished runs sent again (429, 5xx, lost"
        " connections).", labels=_WORKFLOW)
    for body in bodies:
        key = [body["metadata"]["namespace"], body["metadata"]["name"]]
        status = WorkflowStatus.of(body)
        # Every result from 0, before any run: increase() then sees the first failure too.
        totals = status.totals or RunTotals()
        for result in _FINISHED:
            runs.add_metric([*key, result.value], totals.runs.get(result.value, 0))
        thresholds.add_metric(key, totals.runs.get(RunResult.THRESHOLD_HIT.value, 0))
        for object_type, counts in sorted(totals.types.items()):
            for operation, value in _operations(counts):
                objects.add_metric([*key, object_type, operation], value)
        duration.add_metric(key, count_value=sum(totals.runs.values()),
                            sum_value=totals.duration_seconds)
        throttled.add_metric(key, totals.graph_throttled or 0)
        retries.add_metric(key, totals.graph_retries or 0)
        if totals.last_success_time is not None:
            last_success.add_metric(key, totals.last_success_time.timestamp())
        last = status.last_run
        if last is not None and last.start_time and last.completion_time:
            last_duration.add_metric(key, (last.completion_time - last.start_time)
                                     .total_seconds())
        if status.next_run_time is not None:
            next_run.add_metric(key, status.next_run_time.timestamp())
        period = _period(body.get("spec") or {})
        if period:
            interval.add_metric(key, period)
        active.add_metric(key, 1 if status.active_run is not None else 0)
    yield from (runs, thresholds, objects, duration, last_duration, last_success, next_run,
                interval, active, throttled, retries)


def _operations(counts: RunCounts) -> Iterator[tuple[str, int]]:
    for operation, field in OPERATIONS.items():
        yield operation, getattr(counts, field)


def _period(spec: dict[str, Any]) -> float | None:
    """The schedule's period in seconds; None when manual or suspended."""
    schedule = spec.get("schedule") or {}
    if spec.get("suspend"):
        return None
    if schedule.get("intervalMinutes"):
        return float(schedule["intervalMinutes"]) * 60
    return float(_DAY) if schedule.get("timeOfDay") else None


def _environments(bodies: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["namespace", "environment"]
    found = GaugeMetricFamily("ferry_discovery_objects", "Objects the latest discovery found,"
                              " by object type.", labels=[*labels, "type"])
    last = GaugeMetricFamily("ferry_last_discovery_timestamp_seconds",
                             "When the latest discovery ended (Unix time).", labels=labels)
    connected = GaugeMetricFamily(
        "ferry_agents_connected", "Agents of a connection: agent environment connected to the"
        " gateway now.", labels=labels)
    enrolled = GaugeMetricFamily("ferry_agents", "Agents enrolled for the environment.",
                                 labels=labels)
    for body in bodies:
        key = [body["metadata"]["namespace"], body["metadata"]["name"]]
        status = EnvironmentStatus.of(body)
        for object_type, count in sorted(status.object_counts.items()):
            found.add_metric([*key, object_type], count)
        if status.last_discovery is not None:
            last.add_metric(key, status.last_discovery.timestamp())
        if (body.get("spec") or {}).get("connection") == "agent":
            connected.add_metric(key, sum(1 for a in status.agents if a.connected))
            enrolled.add_metric(key, len(status.agents))
    yield from (found, last, connected, enrolled)


def _migrations(bodies: list[dict[str, Any]]) -> Iterator[Metric]:
    labels = ["namespace", "migration"]
    devices = GaugeMetricFamily("ferry_migration_devices", "Devices of a DeviceMigration by"
                                " phase.", labels=[*labels, "phase"])
    waves = GaugeMetricFamily("ferry_migration_wave_devices", "Devices of each wave: total,"
                              " done, failed, rolled back.", labels=[*labels, "wave", "state"])
    paused = GaugeMetricFamily("ferry_migration_wave_paused", "1 while the wave is paused.",
                               labels=[*labels, "wave"])
    retries = GaugeMetricFamily("ferry_migration_device_retries",
                                "Retries requested for the migration's devices, summed.",
                                labels=labels)
    for body in bodies:
        key = [body["metadata"]["namespace"], body["metadata"]["name"]]
        status = DeviceMigrationStatus.of(body)
        by_phase: dict[str, int] = {}
        for device in status.devices:
            by_phase[device.phase.value] = by_phase.get(device.phase.value, 0) + 1
        for phase in DevicePhase:
            devices.add_metric([*key, phase.value], by_phase.get(phase.value, 0))
        for wave in status.waves:
            for state, value in (("total", wave.total), ("done", wave.done),
                                 ("failed", wave.failed), ("rolled_back", wave.rolled_back)):
                waves.add_metric([*key, wave.name, state], value)
            paused.add_metric([*key, wave.name], 1 if wave.paused else 0)
        retries.add_metric(key, sum(d.retries for d in status.devices))
    yield from (devices, waves, paused, retries)


@dataclass
class MetricsServer:
    """The plain-HTTP /metrics endpoint (any path answers; Prometheus asks /metrics)."""

    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def serve_metrics(cache: ObjectCache, host: str, port: int) -> MetricsServer:
    """Serve the operator's metrics on host:port in a thread of its own (kopf's liveness
    endpoint is kopf's aiohttp server, which takes no routes of ours)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(cache))
    server, thread = start_http_server(port, host, registry)
    return MetricsServer(server, thread)
