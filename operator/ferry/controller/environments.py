"""Environment reconciler: credentials resolvable (Ready) and the directory reachable
(Connected), checked on change and every few minutes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from kubernetes import client
from pydantic import ValidationError

from ferry.api.base import ObjectMeta
from ferry.api.conditions import (
    ConditionType,
    Reason,
    Signal,
    get_condition,
    has_condition,
    set_condition,
    set_kstatus,
)
from ferry.api.environment import ConnectionMode, Environment
from ferry.api.events import EventReason, EventType
from ferry.api.status import AgentStatus, ConditionStatus, EnvironmentStatus, RunResult
from ferry.controller.discovery_decision import decide_discovery
from ferry.controller.events import EventRecorder
from ferry.controller.job_credentials import create_job, operator_credential
from ferry.controller.jobs import build_discovery_job, secret_refs, token_files
from ferry.controller.run_tracking import StartJob
from ferry.controller.runs import ENVIRONMENT_LABEL
from ferry.kube import ApiSecretResolver, FerryObjects, retry_conflicts, status_changes
from ferry.secrets import SecretError, SecretSource
from ferry.settings import GATEWAY_URL_ENV, OperatorSettings, RunSettings

log = structlog.get_logger("ferry.operator")

@dataclass(frozen=True)
class Check:
    """The Connected condition (None: not known) and, in agent mode, the agents seen."""

    status: bool | None
    reason: Reason
    message: str
    agents: list[AgentStatus] | None = None


Checker = Callable[[Environment, SecretSource, OperatorSettings], Check]
_RETRY = timedelta(seconds=30)
_AGENT_POLL = timedelta(seconds=10)  # one cheap gateway call: agents come and go


def check_connection(env: Environment, secrets: SecretSource,
                     settings: OperatorSettings) -> Check:
    """Direct mode: bind (AD) or sign in (Entra ID, naming missing Graph permissions) and
    read the scope. Agent mode: ask the gateway which agents of this environment are
    connected."""
    if env.spec.connection is ConnectionMode.AGENT:
        return check_agents(env.metadata.name, settings)
    from ferry.connectors.factory import open_connector  # LDAP and Graph only when needed

    try:
        connector = open_connector(env, secrets, RunSettings())  # direct: no gateway
    except SecretError as exc:
        return Check(False, Reason.SECRET_UNAVAILABLE, str(exc))
    try:
        return Check(True, Reason.CONNECTED, connector.check())
    except Exception as exc:  # any failure to reach or bind is the message the admin needs
        return Check(False, Reason.CONNECTION_FAILED, f"{type(exc).__name__}: {exc}")
    finally:
        connector.close()


def check_agents(environment: str, settings: OperatorSettings) -> Check:
    """Connected when at least one enrolled agent of the environment talks to the gateway."""
    from ferry_agent.transport import GatewayClient, GatewayError  # HTTP client, lazily

    gateway = settings.gateway(operator_credential(settings))
    if gateway is None:
        return Check(None, Reason.NO_GATEWAY, "connection: agent, but the operator has no gateway"
                     f" configured ({GATEWAY_URL_ENV})")
    client = GatewayClient(gateway.url, ca_file=gateway.ca_file, timeout=10)
    try:
        status, body = client.get(f"/v1/environments/{environment}/agents", headers={
            "Authorization": f"Bearer {gateway.token.get_secret_value()}"})
    except GatewayError as exc:
        return Check(False, Reason.GATEWAY_UNREACHABLE, str(exc))
    finally:
        client.close()
    if status != 200 or body is None:
        return Check(False, Reason.GATEWAY_UNREACHABLE, f"the gateway answered {status}")
    agents = [AgentStatus(name=a["name"], version=a.get("version"), host=a.get("host"),
                          last_heartbeat=a.get("lastSeen"), connected=bool(a.get("connected")))
              for a in body.get("agents") or []]
    connected = [a.name for a in agents if a.connected]
    summary = f"{len(connected)}/{len(agents)} agents connected"
    if connected:
        return Check(True, Reason.AGENTS_CONNECTED, f"{summary}: {', '.join(connected)}", agents)
    hint = "" if agents else "; enroll one with `ferry agent token create`"
    return Check(False, Reason.NO_AGENT_CONNECTED, summary + hint, agents)


class EnvironmentReconciler:
    def __init__(self, api: client.ApiClient, objects: FerryObjects, events: EventRecorder,
                 settings: OperatorSettings, check_every: timedelta = timedelta(minutes=5),
                 checker: Checker = check_connection):
        self._api = api
        self._objects = objects
        self._events = events
        self._settings = settings
        self._batch = client.BatchV1Api(api)
        self._check_every = check_every
        self._checker = checker
        self._lock = threading.Lock()
        self._checked: dict[tuple[str, str], tuple[int, datetime]] = {}

    def due(self, body: dict[str, Any], now: datetime) -> bool:
        """Whether a reconcile is due without any change: a discovery's time has come, or the
        connection check is stale (every check_every; every 30 s while not connected, since
        a missing Secret may have appeared)."""
        status = EnvironmentStatus.of(body)
        if status.next_discovery_time is not None and status.next_discovery_time <= now:
            return True
        return self._check_due(body, status, now)

    def _check_due(self, body: dict[str, Any], status: EnvironmentStatus, now: datetime) -> bool:
        meta = body["metadata"]
        with self._lock:
            last = self._checked.get((meta["namespace"], meta["name"]))
        if last is None or last[0] != meta.get("generation"):
            return True
        healthy = has_condition(status, ConditionType.CONNECTED, ConditionStatus.TRUE)
        every = (_AGENT_POLL if _agent_mode(body) else
                 self._check_every if healthy else _RETRY)
        return now - last[1] >= every

    def reconcile(self, namespace: str, name: str) -> None:
        if not retry_conflicts(lambda: self._reconcile_once(namespace, name)):
            log.warning("environment.conflicts", environment=f"{namespace}/{name}")

    def _reconcile_once(self, namespace: str, name: str) -> None:
        body = self._objects.get("environments", namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            return
        meta = ObjectMeta.model_validate(body["metadata"])
        now = datetime.now(UTC)
        old = EnvironmentStatus.of(body)
        generation = meta.generation
        try:
            env: Environment | None = Environment.without_status(body)
            ready_problem = ""
        except ValidationError as exc:
            env, ready_problem = None, f"spec: {exc.errors()[0]['msg']}"
        secrets = ApiSecretResolver(self._api, namespace)
        if env is not None:
            ready_problem = _secret_problem(env, secrets)
        jobs = self._batch.list_namespaced_job(
            namespace, label_selector=f"{ENVIRONMENT_LABEL}={meta.name}").items
        interval = env.spec.discovery.interval_minutes if env else 24 * 60
        discovery = decide_discovery(meta, old, jobs, interval_minutes=interval,
                                     ready=env is not None and not ready_problem, now=now)
        status = discovery.status
        set_condition(status, ConditionType.READY, not ready_problem,
                      Reason.SECRETS_RESOLVED if not ready_problem else Reason.INVALID_SPEC
                      if env is None else Reason.SECRET_UNAVAILABLE,
                      ready_problem or "configuration and credentials found", generation, now)
        previous = get_condition(old, ConditionType.CONNECTED)
        connected: Check | None = None
        if env is None or ready_problem:
            connected = Check(False, Reason.NOT_READY, "fix the Ready condition first")
        elif self._check_due(body, old, now) or previous is None:
            connected = self._checker(env, secrets, self._settings)
            with self._lock:
                self._checked[(namespace, meta.name)] = (generation or 0, now)
        if connected is not None:
            set_condition(status, ConditionType.CONNECTED, connected.status, connected.reason,
                          connected.message, generation, now)
        reconciling, stalled = environment_health(status)
        set_kstatus(status, reconciling, stalled, generation, now)
        status.observed_generation = generation
        if env is not None and env.spec.connection is ConnectionMode.DIRECT:
            status.agents_connected = None
        elif connected is not None and connected.agents is not None:
            status.agents = connected.agents
            status.agents_connected = (f"{sum(a.connected for a in connected.agents)}/"
                                       f"{len(connected.agents)}")
        changes = status_changes(old, status)
        if changes:
            self._objects.patch_status("environments", body, changes)
        if discovery.start is not None and env is not None:
            self._start_discovery(body, env, discovery.start)
        for event in discovery.events:
            self._events.post(body, event.type, event.reason, event.message)
        if connected is not None and connected.status is False \
                and not has_condition(old, ConditionType.CONNECTED, ConditionStatus.FALSE):
            self._events.post(body, EventType.WARNING, connected.reason, connected.message)
        elif connected is not None and connected.status \
                and not has_condition(old, ConditionType.CONNECTED, ConditionStatus.TRUE):
            self._events.post(body, EventType.NORMAL, connected.reason, connected.message)

    def _start_discovery(self, body: dict[str, Any], env: Environment,
                         start: StartJob) -> None:
        meta = env.metadata
        assert meta.namespace is not None and meta.uid is not None  # read from the API
        job = build_discovery_job(
            namespace=meta.namespace, environment=meta.name, environment_uid=meta.uid,
            run_id=start.run_id, trigger=start.trigger, full=start.full,
            secrets=secret_refs([env], []), settings=self._settings,
            tokens=token_files([env]))
        if not create_job(self._api, job, [meta.name], self._settings):
            return  # this discovery's Job was created before a restart
        self._events.post(body, EventType.NORMAL, EventReason.DISCOVERY_STARTED,
                          f"{'full' if start.full else 'delta'} discovery {start.run_id}"
                          f" ({start.trigger}): Job {start.job_name}")


def environment_health(status: EnvironmentStatus) -> tuple[Signal | None, Signal | None]:
    """Reconciling (a discovery running) and Stalled (what a person must fix: the spec or a
    Secret, the connection, a failed discovery), from the status just decided. Pure."""
    active = status.active_discovery
    reconciling = (Signal(Reason.DISCOVERY_RUNNING, f"discovery {active.id} {active.result}"
                          f" ({active.job_name})") if active is not None else None)
    for type_ in (ConditionType.READY, ConditionType.CONNECTED):
        found = get_condition(status, type_)
        if found is not None and found.status != ConditionStatus.TRUE \
                and found.reason in Reason.__members__.values():
            return reconciling, Signal(Reason(found.reason), found.message)
    done = status.discovery
    if done is not None and done.result not in (RunResult.SUCCEEDED, RunResult.PENDING,
                                                RunResult.RUNNING):
        return reconciling, Signal(Reason.DISCOVERY_FAILED, f"discovery {done.id}"
                                   f" {done.result}: {done.message or 'see its Job'}")
    return reconciling, None


def _agent_mode(body: dict[str, Any]) -> bool:
    return (body.get("spec") or {}).get("connection") == ConnectionMode.AGENT.value


def _secret_problem(env: Environment, secrets: SecretSource) -> str:
    where = f"Environment/{env.metadata.name}"
    for source, field in env.spec.secret_sources():
        try:
            secrets.resolve(source, f"{where}: {field}")
        except SecretError as exc:
            return str(exc)
    return ""
