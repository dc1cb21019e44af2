"""Device agents against a real `ferry gateway` over real TLS: device tokens (wave, single-use,
revoked), runbooks computed from plans written into the state store, results kept once,
bounded logs, a join's computer account staged by the target's agent (an enrolled agent
identity answering the work by hand) and sealed to the device, the source account disabled
after the join, and device and agent certificates each kept to their own routes."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.integration.gateway.harness import REQUEST_SECONDS, FakeAgent, RunningGateway
from tests.support.polling import eventually

from ferry.state.rows import DevicePlan, DeviceSecret, PlannedAction, StageRequest
from ferry.state.store import StateStore
from ferry_agent import identity
from ferry_agent.identity import Identity
from ferry_agent.protocol import (
    DeviceEnrollRequest,
    DeviceEnrollResponse,
    ErrorInfo,
    WorkItem,
    decode,
    encode,
)
from ferry_agent.sealed import Recipient, device_binding, open_sealed, seal
from ferry_agent.transport import IDLE_TIMEOUT, GatewayClient, GatewayRefused

NOW = "2026-01-01T10:00:00Z"


@pytest.fixture
def migration() -> str:
    return f"it/m-{uuid.uuid4().hex[:8]}"


def device_token(gateway: RunningGateway, migration: str, *options: str) -> str:
    done = gateway.cli("devices", "token", "create", migration, "--ttl", "1h", *options)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def enroll(gateway: RunningGateway, token: str, name: str, folder: Path
           ) -> tuple[Identity, DeviceEnrollResponse, GatewayClient]:
    csr = identity.create_key(folder, name)
    status, body = gateway.client().post("/v1/device/enroll", encode(DeviceEnrollRequest(
        token=token, name=name, host=f"{name.lower()}.src.example", version="0.1.0",
        csr=csr.decode(), os="linux", labels={"ring": "pilot"})))
    assert status == 200, body
    response = decode(DeviceEnrollResponse, body)
    who = identity.store_certificate(folder, response.certificate.encode(),
                                     response.ca.encode())
    return who, response, gateway.agent(who)


def runbook(device: GatewayClient, facts: dict[str, str] | None = None) -> dict[str, Any]:
    status, body = device.post("/v1/device/runbook", {"v": 1, "facts": facts or {}})
    assert status == 200 and body is not None, body
    return body


def report(device: GatewayClient, generation: int, action_id: str, ok: bool = True
           ) -> dict[str, Any] | None:
    status, body = device.post("/v1/device/result", {
        "v": 1, "generation": generation, "actionId": action_id, "attempt": 1, "ok": ok,
        "message": "done" if ok else "it broke", "details": {"files": {"scanned": 2}},
        "startedAt": NOW, "finishedAt": NOW})
    assert status == 200, body
    return body


def plan(gateway: RunningGateway, migration: str, device: str, *actions: PlannedAction,
         generation: int = 1, state: str = "run") -> None:
    with StateStore(gateway.state) as store:
        store.devices.set_plans(migration, [DevicePlan(
            migration, device, "pilot", generation, state, "src", "tgt", tuple(actions))])


def refused(call: Any) -> tuple[int, str]:
    """The status and error text of a call the gateway refuses (401 and 403 raise)."""
    try:
        status, body = call()
    except GatewayRefused as exc:
        return exc.status, exc.message
    assert status >= 400, body
    return status, str((body or {}).get("error", ""))


def test_a_wave_token_enrolls_many_devices_until_revoked(gateway: RunningGateway,
                                                         migration: str, tmp_path: Path) -> None:
    token = device_token(gateway, migration)
    _, first, _ = enroll(gateway, token, "ws1", tmp_path / "ws1")
    _, second, _ = enroll(gateway, token, "WS2", tmp_path / "ws2")
    assert first.migration == second.migration == migration
    assert first.agent_id.startswith("device-") and first.agent_id != second.agent_id

    revoked = gateway.cli("devices", "token", "revoke", migration)
    assert revoked.returncode == 0 and "revoked 1 device token" in revoked.stdout
    assert refused(lambda: enroll(gateway, token, "WS3", tmp_path / "ws3")) == (
        403, "enrollment refused")
    assert '"refused": "device token revoked"' in gateway.log_text()
    listed = gateway.cli("devices", "list", migration)
    assert listed.returncode == 0, listed.stderr
    assert "WS1" in listed.stdout and "WS2" in listed.stdout and "WS3" not in listed.stdout
    assert token not in gateway.log_text()


def test_a_single_use_token_enrolls_one_device(gateway: RunningGateway, migration: str,
                                               tmp_path: Path) -> None:
    token = device_token(gateway, migration, "--single-use")
    enroll(gateway, token, "WS1", tmp_path / "ws1")
    assert refused(lambda: enroll(gateway, token, "WS2", tmp_path / "ws2")) == (
        403, "enrollment refused")
    assert '"refused": "device token used"' in gateway.log_text()


def test_a_malformed_enrollment_does_not_use_the_token(gateway: RunningGateway, migration: str,
                                                       tmp_path: Path) -> None:
    token = device_token(gateway, migration, "--single-use")
    client = gateway.client()
    status, message = refused(lambda: client.post("/v1/device/enroll", {
        "v": 1, "token": token, "name": "WS1", "host": "ws1", "version": "0.1.0",
        "csr": "not a CSR", "os": "linux", "labels": {}}))
    assert status == 400 and "csr" in message
    enroll(gateway, token, "WS1", tmp_path / "ws1")  # the token still works


def test_a_reimaged_workstation_enrolling_again_cuts_off_its_old_identity(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    token = device_token(gateway, migration)
    _, _, old = enroll(gateway, token, "WS1", tmp_path / "old")
    assert runbook(old)["state"] == "wait"
    _, _, new = enroll(gateway, token, "WS1", tmp_path / "new")
    assert refused(lambda: runbook(old)) == (403, "forbidden")
    assert runbook(new)["device"] == "WS1"


def test_a_planned_device_gets_its_runbook_and_each_result_is_kept_once(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    token = device_token(gateway, migration)
    _, enrolled, device = enroll(gateway, token, "WS1", tmp_path / "ws1")
    first = runbook(device, {"domain": "SRC", "computerName": "WS1"})
    assert (first["state"], first["next"], first["actions"]) == ("wait", None, [])
    with StateStore(gateway.state) as store:
        agent = store.devices.get(enrolled.agent_id)
    assert agent is not None and agent.facts == {"domain": "SRC", "computerName": "WS1"}
    assert agent.last_seen is not None
    cutover = datetime.now(UTC) + timedelta(hours=2)
    plan(gateway, migration, "WS1", PlannedAction("1-ReACL", "ReACL", {"mode": "add"}),
         PlannedAction("2-Reboot", "Reboot", {"rebootDelaySeconds": 0}, cutover))

    ready = runbook(device)
    assert (ready["state"], ready["next"], ready["generation"]) == ("run", "1-ReACL", 1)
    assert [(a["id"], a["state"], a["sealed"]) for a in ready["actions"]] == [
        ("1-ReACL", "pending", None), ("2-Reboot", "pending", None)]
    assert ready["actions"][1]["notBefore"].startswith(f"{cutover:%Y-%m-%dT%H:%M}")

    assert report(device, 1, "1-ReACL") == {"v": 1, "accepted": True}
    assert report(device, 1, "1-ReACL", ok=False) == {"v": 1, "accepted": False}
    waiting = runbook(device)
    assert (waiting["state"], waiting["next"]) == ("wait", "2-Reboot")
    assert "cutover" in waiting["reason"]
    assert [a["state"] for a in waiting["actions"]] == ["done", "pending"]
    status, message = refused(lambda: device.post("/v1/device/result", {
        "v": 1, "generation": 1, "actionId": "9-Nothing", "attempt": 1, "ok": True,
        "message": "", "details": {}, "startedAt": NOW, "finishedAt": NOW}))
    assert status == 409 and "9-Nothing" in message

    with StateStore(gateway.state) as store:
        (result,) = store.devices.results(migration)
    assert (result.action_id, result.ok, result.details) == (
        "1-ReACL", True, {"files": {"scanned": 2}})

    plan(gateway, migration, "WS1", PlannedAction("1-ReACL", "ReACL", {"mode": "add"}),
         state="paused")
    assert runbook(device)["state"] == "done"  # its only action is done: paused or not
    plan(gateway, migration, "WS1", PlannedAction("3-Reboot", "Reboot", {}), state="paused")
    assert runbook(device)["state"] == "paused"


def test_a_kept_secret_travels_only_in_the_answer_that_runs_its_action(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    token = device_token(gateway, migration)
    _, _, device = enroll(gateway, token, "WS1", tmp_path / "ws1")
    package = {"k1": "c2VhbGVkIHBhY2thZ2U="}
    plan(gateway, migration, "WS1", PlannedAction("1-ReACL", "ReACL", {"mode": "add"}),
         PlannedAction("2-EntraJoin", "EntraJoin", {}))
    with StateStore(gateway.state) as store:
        store.devices.keep_secret(migration, "WS1", 1, "2-EntraJoin",
                                  DeviceSecret(package, ""))

    first = runbook(device)
    assert first["next"] == "1-ReACL"
    assert [a["sealed"] for a in first["actions"]] == [None, None]   # not due yet
    assert report(device, 1, "1-ReACL") == {"v": 1, "accepted": True}
    due = runbook(device)
    assert (due["state"], due["next"]) == ("run", "2-EntraJoin")
    assert [a["sealed"] for a in due["actions"]] == [None, package]


def test_a_runbook_that_sends_the_device_away_ends_the_connection_and_tls_resumes(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    """A device told to come back in a minute or more, or to run an action, does not keep a
    connection (10,000 of them would hold the gateway's memory); one told to ask again in a
    few seconds keeps it."""
    who, enrolled, _ = enroll(gateway, device_token(gateway, migration), "WS1",
                              tmp_path / "ws1")
    context = ssl.create_default_context(cafile=str(gateway.ca_file))
    context.load_cert_chain(who.cert_file, who.key_file)

    session: ssl.SSLSession | None = None

    def ask() -> tuple[dict[str, str], dict[str, Any], bool]:
        """One runbook poll on a new connection offering the last TLS session: the answer's
        headers and body, and whether the session was resumed."""
        nonlocal session
        sock = context.wrap_socket(socket.create_connection((gateway.host, gateway.port),
                                                            timeout=REQUEST_SECONDS),
                                   server_hostname=gateway.host, session=session)
        conn = http.client.HTTPSConnection(gateway.host, gateway.port)
        conn.sock = sock
        conn.request("POST", "/v1/device/runbook", body=b'{"v": 1, "facts": {}}',
                     headers={"Content-Type": "application/json"})
        answer = conn.getresponse()
        session, resumed = sock.session, bool(sock.session_reused)
        body = json.loads(answer.read())
        conn.close()
        return {k.lower(): v for k, v in answer.getheaders()}, body, resumed

    headers, idle, _ = ask()
    assert (idle["state"], headers.get("connection")) == ("wait", "close")
    assert idle["pollSeconds"] >= IDLE_TIMEOUT
    headers, again, resumed = ask()
    assert resumed  # no full handshake, and still this device:
    assert (again["device"], headers.get("connection")) == ("WS1", "close")

    plan(gateway, migration, "WS1", PlannedAction("1-ReACL", "ReACL", {"mode": "add"}))
    headers, running, _ = ask()
    assert (running["state"], headers.get("connection")) == ("run", "close")
    with StateStore(gateway.state) as store:  # the ReACL waits for this SID table version
        store.devices.set_plans(migration, [DevicePlan(
            migration, "WS1", "pilot", 1, "run", "src", "tgt",
            (PlannedAction("1-ReACL", "ReACL", {"mode": "add"}),), "v9")])
    headers, soon, _ = ask()
    assert soon["state"] == "wait" and soon["pollSeconds"] < IDLE_TIMEOUT
    assert headers.get("connection") != "close"
    with StateStore(gateway.state) as store:
        assert store.devices.get(enrolled.agent_id) is not None


def test_idle_polls_are_spread_so_devices_started_together_do_not_stay_in_step(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    _, _, device = enroll(gateway, device_token(gateway, migration), "WS1", tmp_path / "ws1")
    waits = {runbook(device)["pollSeconds"] for _ in range(20)}
    assert len(waits) > 1 and min(waits) >= 60 and max(waits) <= 75, waits


def test_a_poll_with_unchanged_facts_still_counts_as_the_last_contact(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    _, enrolled, device = enroll(gateway, device_token(gateway, migration), "WS1",
                                 tmp_path / "ws1")
    runbook(device, {"domain": "SRC"})
    with StateStore(gateway.state) as store:
        first = store.devices.get(enrolled.agent_id)
    assert first is not None and first.last_seen is not None
    runbook(device, {"domain": "SRC"})  # written with the others' contacts, within 15 s

    def later() -> datetime | None:
        with StateStore(gateway.state) as store:
            seen = store.devices.get(enrolled.agent_id)
        assert seen is not None and first.last_seen is not None
        return seen.last_seen if seen.last_seen and seen.last_seen > first.last_seen \
            else None

    eventually(later, "the second poll recorded as WS1's last contact", timeout=90)


def test_a_log_over_a_mebibyte_is_refused_and_one_below_kept(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    _, _, device = enroll(gateway, device_token(gateway, migration), "WS1", tmp_path / "ws1")
    status, message = refused(lambda: device.post("/v1/device/logs",
                                                  {"v": 1, "text": "x" * ((1 << 20) + 1)}))
    assert status == 413 and "1048576" in message
    assert device.post("/v1/device/logs", {"v": 1, "text": "line\n" * 1000}) == (
        200, {"v": 1, "stored": 5000})
    with StateStore(gateway.state) as store:
        assert store.devices.logs_size(migration, "WS1") == 5000


def test_the_sid_table_is_served_to_the_migrations_devices(gateway: RunningGateway,
                                                          migration: str, tmp_path: Path) -> None:
    _, _, device = enroll(gateway, device_token(gateway, migration), "WS1", tmp_path / "ws1")
    assert refused(lambda: device.get("/v1/device/sid-table"))[0] == 404
    with StateStore(gateway.state) as store:
        store.devices.set_sid_table(migration, "v7", {"S-1-5-21-1-2-3-1104": "S-1-5-21-4-1201"})
    assert device.get("/v1/device/sid-table") == (200, {
        "v": 1, "version": "v7", "entries": {"S-1-5-21-1-2-3-1104": "S-1-5-21-4-1201"}})


def test_device_and_agent_certificates_each_open_only_their_own_routes(
        gateway: RunningGateway, migration: str, environment: str, tmp_path: Path) -> None:
    _, _, device = enroll(gateway, device_token(gateway, migration), "WS1", tmp_path / "ws1")
    agent = gateway.fake_agent(environment, "dc-01", tmp_path)
    for path in ("/v1/agent/heartbeat", "/v1/agent/poll", "/v1/agent/password-routes"):
        assert refused(lambda p=path: device.post(p, {"v": 1, "version": "1", "host": "h",
                                                     "leases": []}
                                                  if p.endswith("heartbeat") else {"v": 1}
                                                  )) == (403, "forbidden")
    assert refused(lambda: agent.client.post("/v1/device/runbook", {"v": 1, "facts": {}})) == (
        403, "forbidden")
    assert refused(lambda: agent.client.get("/v1/device/sid-table")) == (403, "forbidden")
    assert refused(lambda: gateway.client().post("/v1/device/runbook", {"v": 1})) == (
        401, "client certificate required")


def _leased(agent: FakeAgent, operation: str) -> WorkItem:
    item = eventually(lambda: agent.poll(wait=5), f"{operation} work for {agent.environment}",
                      timeout=120)
    assert item.operation == operation, item
    return item


def test_a_join_gets_its_computer_account_staged_by_the_targets_agent_and_sealed_to_it(
        gateway: RunningGateway, migration: str, tmp_path: Path) -> None:
    target, source = f"tgt-{uuid.uuid4().hex[:8]}", f"src-{uuid.uuid4().hex[:8]}"
    target_agent = gateway.fake_agent(target, "tgt-dc", tmp_path)
    source_agent = gateway.fake_agent(source, "src-dc", tmp_path)
    who, _, device = enroll(gateway, device_token(gateway, migration), "WS1", tmp_path / "ws1")
    stage = StageRequest(target, "password", "WS1", "OU=Workstations,DC=tgt,DC=example",
                         "tgt.example", "dc1.tgt.example")
    plan(gateway, migration, "WS1", PlannedAction(
        "1-DomainJoin", "DomainJoin", {"disableSource": {"environment": source, "name": "WS1"}},
        stage=stage))

    first = runbook(device)
    assert (first["state"], first["next"]) == ("wait", "1-DomainJoin")
    assert "staging WS1's computer account in " + target in first["reason"]
    item = _leased(target_agent, "stage_computer")
    assert {k: v for k, v in item.arguments.items() if k != "recipient"} == {
        "name": "WS1", "ou": "OU=Workstations,DC=tgt,DC=example", "dnsDomain": "tgt.example",
        "mode": "password", "domainController": "dc1.tgt.example"}
    device_key = identity.private_key(who)
    recipient = Recipient.from_pem(item.arguments["recipient"])
    assert recipient.key_id == Recipient.from_pem(Recipient(
        "", device_key.public_key()).pem()).key_id
    assert runbook(device)["state"] == "wait"
    assert target_agent.poll() is None   # one staging per action at a time

    # The first staging fails: the runbook says so, and a later poll stages again.
    target_agent.post(item, 0, final=True, error=ErrorInfo("DirectoryError", "no rights on OU"))
    failed = eventually(lambda: (r := runbook(device)) and "failed" in r["reason"] and r,
                        "the failed staging in the runbook")
    assert "no rights on OU" in failed["reason"] and failed["state"] == "wait"
    retry = eventually(lambda: (runbook(device), target_agent.poll())[1],
                       "staging tried again after its backoff", timeout=120)
    assert retry.operation == "stage_computer"
    sealed = seal(b"one-time password", [recipient], device_binding("WS1"))
    target_agent.post(retry, 0, final=True, value={
        "dn": "CN=WS1,OU=Workstations,DC=tgt,DC=example", "sid": "S-1-5-21-9-1105",
        "sealed": sealed})

    ready = eventually(lambda: (r := runbook(device))["state"] == "run" and r,
                       "the runbook with the sealed secret")
    (action,) = ready["actions"]
    assert open_sealed(action["sealed"], device_key, device_binding("WS1")) == \
        b"one-time password"
    assert report(device, 1, "1-DomainJoin") == {"v": 1, "accepted": True}
    disable = _leased(source_agent, "disable_computer")
    assert disable.arguments == {"name": "WS1"}
    with StateStore(gateway.state) as store:
        assert store.devices.progress(migration, "WS1").secrets == {}
    log = gateway.log_text()
    assert next(iter(sealed.values())) not in log and "one-time password" not in log
    assert '"event": "staged"' in log and '"device": "WS1"' in log
