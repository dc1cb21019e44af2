"""The device agents' routes (see ferry_agent.protocol): enrollment with a device token, then,
by device certificate only, the runbook, results, logs and the SID table. A log line names
the device and the action, never a token, a secret or its ciphertext."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

import structlog
from aiohttp import web

from ferry.gateway.app import (
    SERVICES,
    Refusal,
    Services,
    _has_agents,
    _ok,
    _printable,
    _read,
    peer_id,
)
from ferry.gateway.enrollment import EnrollmentRefused, enroll_device
from ferry.gateway.runbook import RUN, build, needs_staging
from ferry.gateway.staging import DeviceWork
from ferry.state.rows import DeviceAgentInfo, DeviceResult
from ferry_agent.protocol import (
    MAX_LOG_BYTES,
    ActionReport,
    DeviceEnrollRequest,
    LogUpload,
    ProtocolError,
    RunbookRequest,
    encode,
)
from ferry_agent.transport import IDLE_TIMEOUT

log = structlog.get_logger("ferry.gateway")
DEVICE_ID_PREFIX = "device-"
JOINS = frozenset({"DomainJoin", "OfflineDomainJoin"})
CONTACT_SECONDS = 15.0   # devices' last contacts are written this often (new facts: at once)
MAX_FACTS = 32
# A log's JSON body: its text escaped (at worst \uXXXX per byte of UTF-8) and the envelope.
_LOG_BODY_BYTES = 6 * MAX_LOG_BYTES + 4096


@dataclass
class DeviceService:
    """What the device routes keep between requests."""

    work: DeviceWork
    facts: dict[str, dict[str, str]] = field(default_factory=dict)   # as last written
    contacts: dict[str, datetime] = field(default_factory=dict)      # polls not written yet
    writer: asyncio.Task[None] | None = None


DEVICES = web.AppKey("devices", DeviceService)


def add_device_routes(app: web.Application) -> None:
    """The device routes, on an app whose SERVICES are set."""
    services = app[SERVICES]
    app[DEVICES] = DeviceService(DeviceWork(
        services.store, services.queue, lambda environment: _has_agents(services, environment)))
    app.router.add_post("/v1/device/enroll", _enroll)
    app.router.add_post("/v1/device/runbook", _runbook)
    app.router.add_post("/v1/device/result", _result)
    app.router.add_post("/v1/device/logs", _logs)
    app.router.add_get("/v1/device/sid-table", _sid_table)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)


async def _start(app: web.Application) -> None:
    app[DEVICES].writer = asyncio.create_task(_write_contacts(app))


async def _stop(app: web.Application) -> None:
    state = app[DEVICES]
    if state.writer is not None:
        state.writer.cancel()
        await asyncio.gather(state.writer, return_exceptions=True)
    await _flush_contacts(app)
    await state.work.close()


async def _write_contacts(app: web.Application) -> None:
    # Every device polls every minute or so: their last contacts go in one write.
    while True:
        await asyncio.sleep(CONTACT_SECONDS)
        await _flush_contacts(app)


async def _flush_contacts(app: web.Application) -> None:
    state = app[DEVICES]
    batch, state.contacts = state.contacts, {}
    try:
        await asyncio.to_thread(app[SERVICES].store.devices.seen_at, batch)
    except Exception:  # housekeeping must never stop; the next polls count again
        log.exception("writing devices' last contacts failed", devices=len(batch))


def _device_id(request: web.Request) -> str:
    """The device agent id this connection's certificate proved; a directory agent's
    certificate is refused here, as a device's is on the agent routes."""
    agent_id = peer_id(request)
    if agent_id is None:
        raise Refusal(401, "client certificate required")
    request["who"] = f"agent:{agent_id}"
    if not agent_id.startswith(DEVICE_ID_PREFIX):
        raise Refusal(403, "forbidden")
    return agent_id


def _named(request: web.Request, device: DeviceAgentInfo) -> None:
    request["who"] = f"device:{device.id}"
    request["log"] = {"device": device.name, "migration": device.migration}


async def _device(request: web.Request) -> DeviceAgentInfo:
    """The enrolled, unrevoked device agent whose certificate this connection presented."""
    services: Services = request.app[SERVICES]
    device = await asyncio.to_thread(services.store.devices.get, _device_id(request))
    if device is None or device.revoked:
        raise Refusal(403, "forbidden")
    _named(request, device)
    return device


async def _enroll(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    # Before any credential: no stranger gets to make the gateway hold more than this.
    message, _ = await _read(request, DeviceEnrollRequest, services.connections.small_body_bytes)
    try:
        response, device = await asyncio.to_thread(enroll_device, services.store, services.ca,
                                                   message, services.trust_bundle)
    except ProtocolError as exc:
        raise Refusal(400, str(exc)) from None
    except EnrollmentRefused as exc:
        request["log"] = {"refused": f"device token {exc.reason}"}
        raise Refusal(403, "enrollment refused") from None
    request["who"] = f"device:{device.id}"
    request["log"] = {"enrolled": device.name, "migration": device.migration,
                      "host": device.host, "os": device.os}
    return _ok(encode(response))


async def _runbook(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    state = request.app[DEVICES]
    agent_id = _device_id(request)
    ask, _ = await _read(request, RunbookRequest, services.connections.small_body_bytes)
    facts = {_printable(k, 64): _printable(v, 256)
             for k, v in list(ask.facts.items())[:MAX_FACTS]}
    # New facts are written at once; a poll that only says "still here" is written with the
    # others' (_write_contacts). One hand-off to a thread for all the poll reads.
    changed = facts if state.facts.get(agent_id) != facts else None
    found = await asyncio.to_thread(services.store.devices.poll, agent_id, changed)
    if found is None:  # unknown or revoked
        raise Refusal(403, "forbidden")
    device, progress = found
    _named(request, device)
    if changed is not None:
        state.facts[agent_id] = facts
    else:
        state.contacts[agent_id] = datetime.now(UTC)
    action = needs_staging(progress)
    staging = None
    if action is not None and progress.plan is not None:
        staging = await state.work.stage(device, progress.plan.generation, action)
    runbook = build(device, progress, datetime.now(UTC), staging)
    request["log"] = {**request["log"], "generation": runbook["generation"],
                      "state": runbook["state"], "action": runbook["next"]}
    answer = _ok(runbook)
    if runbook["state"] == RUN or runbook["pollSeconds"] >= IDLE_TIMEOUT:
        # Told to run an action, the device comes back when it is done (minutes, as a rule);
        # told to poll in 30 s or more, after its transport would have dropped the connection.
        # Either way it is closed now, not held idle by both ends: 10,000 devices held
        # 890 MB of TLS connections. The next one resumes the TLS session.
        answer.force_close()
    return answer


async def _result(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    device = await _device(request)
    report, _ = await _read(request, ActionReport, services.connections.small_body_bytes)
    request["log"] = {**request["log"], "generation": report.generation,
                      "action": report.action_id[:100], "ok": report.ok}
    if report.generation < 1 or report.attempt < 1 or not 0 < len(report.action_id) <= 100:
        raise Refusal(400, "ActionReport: generation and attempt from 1, actionId 1-100"
                      " characters")
    started, finished = _time(report.started_at, "startedAt"), \
        _time(report.finished_at, "finishedAt")
    progress = await asyncio.to_thread(services.store.devices.progress, device.migration,
                                       device.name)
    plan = progress.plan
    if plan is None or report.generation > plan.generation:
        raise Refusal(409, f"generation {report.generation} is not planned for device"
                      f" {device.name}; ask for the runbook again")
    # An earlier generation's result is kept too: the controller counts what was done.
    action = next((a for a in plan.actions if a.id == report.action_id), None)
    if report.generation == plan.generation and action is None:
        raise Refusal(409, f"no action {report.action_id!r} in generation {plan.generation} of"
                      f" device {device.name}; ask for the runbook again")
    accepted = await asyncio.to_thread(services.store.devices.record_result, DeviceResult(
        migration=device.migration, device=device.name, generation=report.generation,
        action_id=report.action_id, ok=report.ok, message=_printable(report.message, 2000),
        attempt=report.attempt, finished_at=finished, details=report.details,
        started_at=started))
    request["log"]["accepted"] = accepted
    disable = action.arguments.get("disableSource") if action is not None else None
    if accepted and report.ok and action is not None and action.action in JOINS \
            and report.generation == plan.generation and isinstance(disable, dict):
        await request.app[DEVICES].work.disable_source(device, action, disable)
    return _ok({"accepted": accepted})


async def _logs(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    device = await _device(request)
    upload, _ = await _read(request, LogUpload, _LOG_BODY_BYTES)
    size = len(upload.text.encode("utf-8", "surrogatepass"))
    if size > MAX_LOG_BYTES:
        raise Refusal(413, f"the log is {size} bytes, more than the {MAX_LOG_BYTES} kept: send"
                      " its last part")
    stored = await asyncio.to_thread(services.store.devices.store_log, device.migration,
                                     device.name, upload.text)
    request["log"] = {**request["log"], "stored": stored}
    return _ok({"stored": stored})


async def _sid_table(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    device = await _device(request)
    table = await asyncio.to_thread(services.store.devices.sid_table, device.migration)
    if table is None:
        raise Refusal(404, f"migration {device.migration} has no SID table yet")
    request["log"] = {**request["log"], "version": table.version,
                      "entries": len(table.entries)}
    return _ok({"version": table.version, "entries": table.entries})


def _time(text: str, name: str) -> datetime:
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise Refusal(400, f"ActionReport.{name}: not an RFC 3339 time: {text[:40]!r}") \
            from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
