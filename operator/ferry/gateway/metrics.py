"""The gateway's Prometheus metrics, on a plain-HTTP port of their own: the HTTPS port faces
agents (often the internet), and what the queue holds is nobody's business there.

The work queue lives in memory, so its counters start at 0 with the process, as the queue
does (Prometheus' rate() and increase() take such resets in their stride)."""

from __future__ import annotations

from collections.abc import Iterable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ferry.gateway.app import Services
from ferry.gateway.queue import LEASED, QUEUED

_ITEM_EVENTS = (QUEUED, LEASED, "reissued", "failed")
_ENROLL_OUTCOMES = ("enrolled", "refused", "invalid", "limit", "error")


class GatewayCollector(Collector):
    """Work items and agents per environment, and enrollments by outcome."""

    def __init__(self, services: Services):
        self._services = services

    def collect(self) -> Iterable[Metric]:
        queue = self._services.queue
        now = queue.by_environment()
        items = GaugeMetricFamily("ferry_gateway_work_items", "Work items waiting for an agent"
                                  " (queued) or held by one (leased) now.",
                                  labels=["environment", "state"])
        agents = GaugeMetricFamily(
            "ferry_gateway_agents_connected", "Agents heard from within the agent timeout that"
            " have polled for their environment's work.", labels=["environment"])
        events = CounterMetricFamily(
            "ferry_gateway_work_item_events", "Work items queued, leased, re-issued after a lost"
            " lease, and failed after the last attempt, since the gateway started.",
            labels=["environment", "event"])
        environments = sorted({*now, *(env for env, _ in queue.events)})
        for environment in environments:
            counts = now.get(environment, {})
            for state in (QUEUED, LEASED):
                items.add_metric([environment, state], counts.get(state, 0))
            agents.add_metric([environment], counts.get("agents", 0))
            for event in _ITEM_EVENTS:
                events.add_metric([environment, event], queue.events[(environment, event)])
        enrollments = CounterMetricFamily(
            "ferry_gateway_enrollments", "Enrollment attempts since the gateway started, by"
            " kind (agent, device) and outcome.", labels=["kind", "outcome"])
        for kind in ("agent", "device"):
            for outcome in _ENROLL_OUTCOMES:
                enrollments.add_metric([kind, outcome],
                                       self._services.enrollments[(kind, outcome)])
        yield from (items, agents, events, enrollments)


def metrics_app(services: Services) -> web.Application:
    """GET /metrics in Prometheus' text format; nothing else."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(services))

    async def scrape(_request: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    app = web.Application()
    app.router.add_get("/metrics", scrape)
    return app
