"""DeviceMigrations as a cluster admin sees them: a real `ferry operator` process on a real API
server (the chart's RBAC), its FERRY_STATE the SQLite file this test opens too, as the gateway
shares it. No device agents run here (the end-to-end device test runs them): the test writes
what real devices would cause into the store (enrollments, results, SID translations) and
reads what the controller made of it: status, `kubectl get fdm` columns, Events and plans."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.support.gitops_health import argocd_health, capture, kstatus
from tests.support.kube_api import Identity, KubeAPI
from tests.support.operator import operator_process
from tests.support.polling import eventually, never

from ferry.gateway.enrollment import token_hash
from ferry.state.rows import DevicePlan, DeviceResult
from ferry.state.store import StateStore

ROOT = Path(__file__).resolve().parents[3]
RELEASE = "ferry"
GROUP_VERSION = "ferry.dev/v1alpha1"
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"
WORKFLOW = "users"
PAIR = f"{WORKFLOW}/src->tgt"   # the SID translations' pair key: workflow/source->target
SRC_DOMAIN = "S-1-5-21-1111111111-2222222222-333333333"
TGT_DOMAIN = "S-1-5-21-444444444-555555555-666666666"


def environment(name: str, connection: str = "agent") -> dict[str, Any]:
    base = f"DC={name},DC=test"
    directory: dict[str, Any] = {"host": f"dc1.{name}.test", "baseDN": base}
    if connection == "direct":   # never used here: no DC answers
        directory["credentials"] = {"username": f"svc@{name}.test", "password": {
            "secretKeyRef": {"name": f"{name}-ad", "key": "password"}}}
    return {"apiVersion": GROUP_VERSION, "kind": "Environment", "metadata": {"name": name},
            "spec": {"type": "ActiveDirectory", "connection": connection,
                     "activeDirectory": directory,
                     "scope": {"ous": [base], "objectTypes": ["users", "groups"]}}}


WORKFLOW_BODY = {
    "apiVersion": GROUP_VERSION, "kind": "Workflow", "metadata": {"name": WORKFLOW},
    "spec": {"steps": [
        {"name": "read", "readFrom": {"environments": ["src", "tgt"]}},
        {"name": "stage", "stageData": {"template": "src-to-tgt", "pairs": [
            {"source": "src", "target": "tgt", "objectTypes": ["users", "groups"]}]}},
        {"name": "write", "writeTo": {"environments": ["tgt"]}}]},
}


def migration(name: str = "move", **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"source": "src", "target": "tgt", "workflow": WORKFLOW,
                            "actions": ["ReACL", "DomainJoin", "Reboot"],
                            "waves": [{"name": "pilot", "devices": ["ws1", "ws2"]}]}
    body.update(spec)
    return {"apiVersion": GROUP_VERSION, "kind": "DeviceMigration", "metadata": {"name": name},
            "spec": body}


@dataclass
class Fleet:
    """One namespace with Environments src and tgt (agent mode), Workflow users, the chart's
    ServiceAccounts and RBAC, and the state store the operator and the "gateway" share."""

    api: KubeAPI
    namespace: str
    operator_identity: Identity
    folder: Path
    store: StateStore

    @property
    def state(self) -> Path:
        return self.folder / "state.sqlite"

    def key(self, name: str = "move") -> str:
        return f"{self.namespace}/{name}"

    # -- kubectl ---------------------------------------------------------------------------

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.api.kubectl(*args, namespace=self.namespace, input=input).stdout

    def apply(self, *bodies: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(bodies))

    def get(self, name: str = "move") -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.kubectl("get", "fdm", name, "-o", "json"))
        return found

    def status(self, name: str = "move") -> dict[str, Any]:
        return self.get(name).get("status") or {}

    def device(self, device: str, name: str = "move") -> dict[str, Any]:
        return next((d for d in self.status(name).get("devices") or []
                     if d["name"] == device), {})

    def annotate(self, key: str, value: str, name: str = "move") -> None:
        self.kubectl("annotate", "fdm", name, "--overwrite", f"{key}={value}")

    def patch_spec(self, patch: dict[str, Any], name: str = "move") -> None:
        self.kubectl("patch", "fdm", name, "--type=merge", "-p", json.dumps({"spec": patch}))

    def events(self, name: str = "move") -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = json.loads(self.kubectl("get", "events", "-o", "json"))[
            "items"]
        return [e for e in items if e["involvedObject"]["kind"] == "DeviceMigration"
                and e["involvedObject"]["name"] == name]

    def reasons(self, name: str = "move") -> list[str]:
        return [e["reason"] for e in self.events(name)]

    def listed(self) -> dict[str, dict[str, Any]]:
        """`kubectl get fdm` as the API server renders it (the CRD's printer columns), by
        object name and column name."""
        context = ssl.create_default_context(cafile=str(self.api.ca_file))
        assert self.api.admin.cert_file is not None and self.api.admin.key_file is not None
        context.load_cert_chain(str(self.api.admin.cert_file), str(self.api.admin.key_file))
        connection = http.client.HTTPSConnection(self.api.address, self.api.port,
                                                 context=context, timeout=30)
        try:
            connection.request("GET", f"/apis/{GROUP_VERSION}/namespaces/{self.namespace}"
                               "/devicemigrations", headers={"Accept": TABLE})
            response = connection.getresponse()
            body = json.loads(response.read())
        finally:
            connection.close()
        assert response.status == 200 and body["kind"] == "Table", body
        names = [c["name"] for c in body["columnDefinitions"]]
        return {row["cells"][0]: dict(zip(names, row["cells"], strict=True))
                for row in body["rows"]}

    def row(self, name: str = "move") -> dict[str, Any]:
        return self.listed()[name]

    # -- what the gateway writes, and what the controller wrote ------------------------------

    def enroll(self, device: str, name: str = "move", os_: str = "windows",
               **labels: str) -> str:
        """A device agent enrolled as the gateway enrolls one: a single-use token of the
        migration, used once; its agent id."""
        token = f"token-{device}-{os.urandom(8).hex()}"
        self.store.devices.add_token(token_hash(token), self.key(name), 1,
                                     datetime.now(UTC) + timedelta(hours=1))
        key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        agent_id = f"device-{os.urandom(8).hex()}"
        agent = self.store.devices.enroll(token_hash(token), agent_id, device.upper(),
                                          f"{device.lower()}.src.test", "1.0", os_, labels,
                                          key.decode())
        assert agent is not None
        return agent_id

    def report(self, device: str, generation: int, action_id: str, ok: bool = True,
               message: str = "", name: str = "move") -> None:
        """A device's result, as the gateway records it."""
        now = datetime.now(UTC)
        recorded = self.store.devices.record_result(DeviceResult(
            migration=self.key(name), device=device, generation=generation,
            action_id=action_id, ok=ok, message=message or f"{action_id} done", attempt=1,
            finished_at=now, started_at=now - timedelta(seconds=1)))
        assert recorded

    def plans(self, name: str = "move") -> dict[str, DevicePlan]:
        return {p.device: p for p in self.store.devices.plans(self.key(name))}

    # -- the operator ------------------------------------------------------------------------

    def operator_env(self, state: bool = True) -> dict[str, str]:
        env = {**os.environ, "KUBECONFIG": str(self.operator_identity.kubeconfig),
               "FERRY_NAMESPACE": self.namespace, "FERRY_TICK_SECONDS": "0.5",
               "FERRY_IMAGE": "ferry:test", "FERRY_JOB_SERVICE_ACCOUNT": f"{RELEASE}-sync"}
        env.pop("FERRY_STATE", None)
        if state:
            env["FERRY_STATE"] = str(self.state)
        return env

    @contextmanager
    def operator(self, state: bool = True) -> Iterator[subprocess.Popen[bytes]]:
        """`ferry operator` as a process, as the chart runs it (its ServiceAccount, its
        FERRY_* variables); stopped with SIGTERM at the end, its log checked."""
        log = self.folder / "operator.log"
        with operator_process(self.namespace, self.operator_env(state), log) as process:
            yield process
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-4000:]
        assert "forbidden" not in text.lower(), text[-4000:]


@pytest.fixture
def fleet(kube_api: KubeAPI, kube_namespace: str, tmp_path: Path) -> Iterator[Fleet]:
    ns = kube_namespace
    kube_api.kubectl("apply", "--server-side", "-f", str(ROOT / "charts" / "ferry" / "crds"))
    for plural in ("environments", "templates", "workflows", "devicemigrations"):
        kube_api.kubectl("wait", "--for=condition=Established", f"crd/{plural}.ferry.dev",
                         "--timeout=60s")
    rbac = kube_api.helm("template", RELEASE, str(ROOT / "charts" / "ferry"), "--namespace", ns,
                         "--show-only", "templates/serviceaccounts.yaml",
                         "--show-only", "templates/rbac.yaml").stdout
    kube_api.kubectl("apply", "-f", "-", namespace=ns, input=rbac)
    operator = kube_api.service_account(ns, f"{RELEASE}-operator", create=False)
    store = StateStore(str(tmp_path / "state.sqlite"))
    found = Fleet(kube_api, ns, operator, tmp_path, store)
    found.apply(environment("src"), environment("tgt"), WORKFLOW_BODY)
    try:
        yield found
    finally:
        store.close()


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def waits(fleet: Fleet, check: Callable[[dict[str, Any]], Any], what: str,
          name: str = "move", timeout: float = 60) -> dict[str, Any]:
    """The DeviceMigration's status once `check` holds for it."""
    def probe() -> dict[str, Any] | None:
        status = fleet.status(name)
        return status if check(status) else None
    return eventually(probe, what, timeout)


def phases(status: dict[str, Any]) -> dict[str, str]:
    return {d["name"]: d["phase"] for d in status.get("devices") or []}


def actions(device: dict[str, Any]) -> dict[str, str]:
    return {a["id"]: a["state"] for a in device.get("actions") or []}


def gitops_health(fleet: Fleet, case: str, name: str = "move") -> tuple[dict[str, Any], ...]:
    """kstatus' and Argo CD's verdicts on the DeviceMigration as the API server has it now,
    kept as the health check's testdata/<case>.yaml (tests.support.gitops_health)."""
    obj = fleet.get(name)
    volatile = {fleet.namespace: "ferry",
                obj["metadata"]["uid"]: "00000000-0000-4000-8000-000000000000"}
    for n, device in enumerate((obj.get("status") or {}).get("devices") or []):
        if device.get("agent"):
            volatile[device["agent"]] = f"device-{n:016x}"
    capture(obj, case, volatile)
    return kstatus(obj)[0], argocd_health(obj)[0]


def test_an_invalid_reference_keeps_it_not_ready_naming_the_field_and_writes_no_plans(
        fleet: Fleet) -> None:
    fleet.apply(environment("direct-tgt", connection="direct"),
                migration(target="direct-tgt", workflow="missing"))
    fleet.enroll("ws1")
    with fleet.operator():
        status = waits(fleet, lambda s: condition(s, "Ready").get("status") == "False",
                       "Ready False")
        ready = condition(status, "Ready")
        assert ready["reason"] == "InvalidReference"
        assert ready["observedGeneration"] == 1
        assert ("spec.workflow: Workflow missing does not exist; name the Workflow whose"
                " stageData pair syncs src -> direct-tgt") in ready["message"]
        assert ("spec.target: Environment direct-tgt has connection direct; staging computer"
                " accounts for a join needs its agents (connection: agent)") in ready["message"]
        event = eventually(lambda: [e for e in fleet.events()
                                    if e["reason"] == "InvalidReference"], "the Event")[0]
        assert event["type"] == "Warning" and "spec.workflow" in event["message"]
        assert fleet.plans() == {}
        assert fleet.store.devices.sid_table(fleet.key()) is None
        ks, argo = gitops_health(fleet, "invalid-reference")
        assert ks["status"] == "Failed" and "spec.workflow" in ks["message"]
        assert argo["status"] == "Degraded" and argo["message"].startswith("InvalidReference")

        # Fixed: the same object becomes Ready, and only then are plans written.
        fleet.patch_spec({"target": "tgt", "workflow": WORKFLOW})
        status = waits(fleet, lambda s: condition(s, "Ready").get("status") == "True",
                       "Ready once the references are fixed")
        assert condition(status, "Ready")["observedGeneration"] == 2
        assert eventually(lambda: fleet.plans(), "plans once Ready")["WS1"].state == "run"
        never(lambda: fleet.reasons().count("InvalidReference") > 1,
              "InvalidReference posted again", window=2)


def test_waves_hold_cutover_actions_and_show_missing_and_unmatched_agents(fleet: Fleet) -> None:
    cutover = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    fleet.store.sid_translations.update(PAIR, {
        "user-1": ("user", f"{SRC_DOMAIN}-1105", f"{TGT_DOMAIN}-2105"),
        "group-1": ("group", f"{SRC_DOMAIN}-1200", f"{TGT_DOMAIN}-2200")})
    fleet.apply(migration(waves=[
        {"name": "pilot", "devices": ["ws1"]},
        {"name": "rest", "devices": ["ws2", "ws3"], "cutover": cutover.isoformat()}]))
    ws1 = fleet.enroll("ws1")
    fleet.enroll("ws2")
    fleet.enroll("ws9", os_="linux")     # enrolled for this migration, selected by no wave
    with fleet.operator():
        status = waits(fleet, lambda s: s.get("devicesTotal") == 3 and len(s["devices"]) == 3,
                       "three devices in status")
        ready = condition(status, "Ready")
        assert (ready["status"], ready["reason"], ready["observedGeneration"]) == (
            "True", "Valid", 1)
        assert ready["message"] == "3 devices in 2 waves; SID table of 2 users and groups"
        assert status["sidTranslations"] == 2
        assert status["unmatchedDevices"] == ["WS9"]
        assert status["phase"] == "Running" and status["progress"] == "0/3"
        assert status["currentWave"] == "pilot"
        assert [(w["name"], w["total"], w.get("cutover")) for w in status["waves"]] == [
            ("pilot", 1, None), ("rest", 2, cutover.strftime("%Y-%m-%dT%H:%M:%SZ"))]
        progressing = condition(status, "Progressing")
        assert (progressing["status"], progressing["reason"],
                progressing["observedGeneration"]) == ("True", "DevicesMoving", 1)

        # Preparation starts at once in both waves; the second wave's cutover waits.
        plans = fleet.plans()
        assert sorted(plans) == ["WS1", "WS2"]   # WS3 has no agent, WS9 no wave
        assert {p.state for p in plans.values()} == {"run"}
        assert [(a.id, a.not_before) for a in plans["WS1"].actions] == [
            ("1-ReACL", None), ("2-DomainJoin", None), ("3-Reboot", None)]
        assert [(a.id, a.not_before) for a in plans["WS2"].actions] == [
            ("1-ReACL", None), ("2-DomainJoin", cutover), ("3-Reboot", cutover)]
        join = plans["WS1"].actions[1]
        assert join.stage is not None and (join.stage.environment, join.stage.ou) == (
            "tgt", "CN=Computers,DC=tgt,DC=test")
        assert join.arguments["domain"] == "tgt.test"
        table = fleet.store.devices.sid_table(fleet.key())
        assert table is not None and table.entries[f"{SRC_DOMAIN}-1105"] == f"{TGT_DOMAIN}-2105"
        assert plans["WS1"].sid_table_version == table.version

        ws3 = next(d for d in status["devices"] if d["name"] == "WS3")
        assert ws3["phase"] == "Pending" and ws3.get("agent") is None
        assert "no device agent enrolled for WS3" in ws3["message"]
        assert "ferry devices token create" in ws3["message"]
        first = next(d for d in status["devices"] if d["name"] == "WS1")
        assert (first["phase"], first["wave"], first["agent"]) == ("ReACL", "pilot", ws1)
        assert actions(first) == {"1-ReACL": "Running", "2-DomainJoin": "Pending",
                                  "3-Reboot": "Pending"}
        agent = fleet.store.devices.get(ws1)
        assert agent is not None and agent.last_seen is not None
        assert first["lastContact"] == agent.last_seen.strftime("%Y-%m-%dT%H:%M:%SZ")

        # Its polls move lastContact on (the gateway writes last_seen as devices poll).
        shown = first["lastContact"]

        def polled() -> dict[str, Any] | None:
            fleet.store.devices.seen(ws1, {"osVersion": "10.0.19045"})
            later = fleet.device("WS1")
            return later if later.get("lastContact", shown) != shown else None
        assert eventually(polled, "a later lastContact")["lastContact"] > shown

        # A re-imaged WS1 enrolls again: the new agent replaces the old one.
        again = fleet.enroll("ws1")
        eventually(lambda: fleet.device("WS1").get("agent") == again, "the new agent shown")
        assert fleet.status()["unmatchedDevices"] == ["WS9"]

        # WS2 prepared: it waits for its wave's cutover, saying when.
        fleet.report("WS2", 1, "1-ReACL")
        ws2 = eventually(lambda: fleet.device("WS2").get("phase") == "Ready"
                         and fleet.device("WS2"), "WS2 Ready")
        assert ws2["message"] == ("waiting for the wave's cutover at"
                                  f" {cutover:%Y-%m-%dT%H:%M:%SZ}")
        assert actions(ws2)["1-ReACL"] == "Succeeded"
        assert actions(ws2)["2-DomainJoin"] == "Pending"

        row = fleet.row()
        assert (row["Phase"], row["Devices"], row["Failed"], row["Wave"]) == (
            "Running", "0/3", 0, "pilot")
        ks, argo = gitops_health(fleet, "moving")
        assert (ks["status"], ks["message"]) == ("InProgress", "0/3 done")
        assert argo == {**argo, "status": "Progressing", "message": "0/3 done"}

        # The operator wrote status only: the spec's generation is the one applied.
        never(lambda: fleet.get()["metadata"]["generation"] != 1, "the spec changed",
              window=2)
        shown = json.loads(fleet.kubectl("get", "fdm", "move", "-o", "json",
                                         "--show-managed-fields"))
        managers = {(m["manager"], m.get("subresource", ""))
                    for m in shown["metadata"]["managedFields"]}
        assert {s for _, s in managers} == {"", "status"}
        assert all(not m.startswith("kubectl") for m, s in managers if s == "status"), managers
        assert all(m.startswith("kubectl") for m, s in managers if s == ""), managers


def test_results_move_devices_to_done_and_the_migration_completes_once(fleet: Fleet) -> None:
    fleet.apply(migration())
    fleet.enroll("ws1")
    fleet.enroll("ws2")
    with fleet.operator():
        waits(fleet, lambda s: phases(s) == {"WS1": "ReACL", "WS2": "ReACL"}, "both in ReACL")
        fleet.report("WS1", 1, "1-ReACL", message="412 files, 3 hives translated")
        ws1 = eventually(lambda: fleet.device("WS1").get("phase") == "Joining"
                         and fleet.device("WS1"), "WS1 Joining")
        assert actions(ws1) == {"1-ReACL": "Succeeded", "2-DomainJoin": "Running",
                                "3-Reboot": "Pending"}
        reacl = ws1["actions"][0]
        assert reacl["message"] == "412 files, 3 hives translated" and reacl["attempts"] == 1
        assert reacl["time"].endswith("Z")
        fleet.report("WS1", 1, "2-DomainJoin")
        eventually(lambda: fleet.device("WS1").get("phase") == "Rebooting", "WS1 Rebooting")
        fleet.report("WS1", 1, "3-Reboot")
        status = waits(fleet, lambda s: s.get("progress") == "1/2", "WS1 done")
        assert phases(status) == {"WS1": "Done", "WS2": "ReACL"}
        assert status["devicesDone"] == 1 and status["phase"] == "Running"
        assert status["waves"][0]["done"] == 1
        row = fleet.row()
        assert (row["Phase"], row["Devices"], row["Failed"]) == ("Running", "1/2", 0)
        migrated = eventually(lambda: [e for e in fleet.events()
                                       if e["reason"] == "DeviceMigrated"], "DeviceMigrated")
        assert [e["message"] for e in migrated] == ["device WS1 moved to the target"]

    # WS2 finishes while the operator is down; the next one sees it all at once.
    for action_id in ("1-ReACL", "2-DomainJoin", "3-Reboot"):
        fleet.report("WS2", 1, action_id)
    with fleet.operator():
        status = waits(fleet, lambda s: s.get("phase") == "Completed", "Completed")
        assert status["progress"] == "2/2" and status.get("currentWave") is None
        progressing = condition(status, "Progressing")
        assert (progressing["status"], progressing["reason"]) == ("False", "Completed")
        assert fleet.row()["Phase"] == "Completed" and fleet.row()["Devices"] == "2/2"
        ks, argo = gitops_health(fleet, "completed")
        assert (ks["status"], ks["message"]) == ("Current", "Resource is Ready")
        assert argo == {**argo, "status": "Healthy", "message": "every device done (2/2)"}
        eventually(lambda: fleet.reasons().count("MigrationCompleted") == 1,
                   "one MigrationCompleted")
        eventually(lambda: fleet.reasons().count("DeviceMigrated") == 2, "WS2 migrated")

    with fleet.operator():
        # Proof that this operator reconciled: it shows a spec change it was given.
        fleet.patch_spec({"options": {"rebootNotice": "Restarting to finish the move."}})
        waits(fleet, lambda s: s.get("observedGeneration") == 2
              and condition(s, "Progressing").get("observedGeneration") == 2,
              "generation 2 observed")
        never(lambda: fleet.reasons().count("MigrationCompleted") != 1
              or fleet.reasons().count("DeviceMigrated") != 2,
              "an Event repeated after the restart")
        assert fleet.plans()["WS1"].actions[2].arguments["notice"] == \
            "Restarting to finish the move."
        assert fleet.status()["phase"] == "Completed"


def test_pausing_waves_in_the_spec_pauses_their_plans(fleet: Fleet) -> None:
    fleet.apply(migration(waves=[{"name": "pilot", "devices": ["ws1"]},
                                 {"name": "rest", "devices": ["ws2"]}]))
    fleet.enroll("ws1")
    fleet.enroll("ws2")
    with fleet.operator():
        waits(fleet, lambda s: phases(s) == {"WS1": "ReACL", "WS2": "ReACL"}, "both in ReACL")
        fleet.report("WS1", 1, "1-ReACL")
        spec = fleet.get()["spec"]
        spec["waves"][0]["paused"] = True
        fleet.patch_spec({"waves": spec["waves"]})
        eventually(lambda: {d: p.state for d, p in fleet.plans().items()}
                   == {"WS1": "paused", "WS2": "run"}, "wave pilot's plan paused")
        status = waits(fleet, lambda s: s.get("observedGeneration") == 2
                       and phases(s).get("WS1") == "Ready", "WS1 held")
        assert fleet.device("WS1")["message"] == "its wave is paused"
        assert status["phase"] == "Running"
        assert [w["paused"] for w in status["waves"]] == [True, False]

        spec["waves"][1]["paused"] = True
        fleet.patch_spec({"waves": spec["waves"]})
        status = waits(fleet, lambda s: s.get("phase") == "Paused", "Paused")
        assert {p.state for p in fleet.plans().values()} == {"paused"}
        assert phases(status) == {"WS1": "Ready", "WS2": "Pending"}
        progressing = condition(status, "Progressing")
        assert (progressing["status"], progressing["reason"],
                progressing["observedGeneration"]) == ("False", "Paused", 3)
        assert fleet.row()["Phase"] == "Paused"
        ks, argo = gitops_health(fleet, "paused")
        assert ks["status"] == "Current"   # kstatus has no "paused"
        assert argo == {**argo, "status": "Suspended", "message": "Paused by spec (0/2 done)"}

        fleet.patch_spec({"waves": [{"name": "pilot", "devices": ["ws1"]},
                                    {"name": "rest", "devices": ["ws2"]}]})
        waits(fleet, lambda s: s.get("phase") == "Running"
              and phases(s) == {"WS1": "Joining", "WS2": "ReACL"}, "running again")
        assert {p.state for p in fleet.plans().values()} == {"run"}


def test_a_failed_device_is_retried_once_per_annotation_value(fleet: Fleet) -> None:
    fleet.apply(migration(waves=[{"name": "pilot", "devices": ["ws1"]}]))
    fleet.enroll("ws1")
    refused = "the domain controller refused the join: the computer account is locked"
    with fleet.operator():
        waits(fleet, lambda s: phases(s) == {"WS1": "ReACL"}, "WS1 in ReACL")
        fleet.report("WS1", 1, "1-ReACL")
        fleet.report("WS1", 1, "2-DomainJoin", ok=False, message=refused)
        status = waits(fleet, lambda s: phases(s) == {"WS1": "Failed"}, "WS1 Failed")
        ws1 = status["devices"][0]
        assert ws1["message"] == f"2-DomainJoin: {refused}"
        assert actions(ws1) == {"1-ReACL": "Succeeded", "2-DomainJoin": "Failed",
                                "3-Reboot": "Pending"}
        assert status["devicesFailed"] == 1 and status["phase"] == "Failed"
        progressing = condition(status, "Progressing")
        assert progressing["reason"] == "DevicesFailed"
        assert "ferry.dev/retry-devices" in progressing["message"]
        row = fleet.row()
        assert (row["Phase"], row["Devices"], row["Failed"]) == ("Failed", "0/1", 1)
        failed = eventually(lambda: [e for e in fleet.events()
                                     if e["reason"] == "DeviceFailed"], "DeviceFailed")
        assert failed[0]["type"] == "Warning" and refused in failed[0]["message"]
        ks, argo = gitops_health(fleet, "devices-failed")
        assert ks["status"] == "Failed" and ks["conditions"][0]["reason"] == "DevicesFailed"
        assert argo["status"] == "Degraded" and argo["message"].startswith(
            "1 devices failed (0/1 done); retry them")

        fleet.annotate("ferry.dev/retry-devices", "WS1")
        eventually(lambda: fleet.plans()["WS1"].generation == 2, "generation 2")
        plan = fleet.plans()["WS1"]
        assert [a.id for a in plan.actions] == ["2-DomainJoin", "3-Reboot"]
        status = waits(fleet, lambda s: phases(s) == {"WS1": "Joining"}, "WS1 Joining again")
        ws1 = status["devices"][0]
        assert ws1["retries"] == 1
        assert actions(ws1)["2-DomainJoin"] == "Running"
        assert status["handledRetry"] == "WS1"
        assert status["phase"] == "Running" and status["devicesFailed"] == 0
        eventually(lambda: fleet.reasons().count("DeviceRetried") == 1, "DeviceRetried")

        # It fails again; the annotation, unchanged, is not a new request.
        fleet.report("WS1", 2, "2-DomainJoin", ok=False, message=refused)
        waits(fleet, lambda s: phases(s) == {"WS1": "Failed"}, "WS1 Failed again")
        fleet.annotate("ferry.dev/retry-devices", "WS1")
        never(lambda: fleet.plans()["WS1"].generation != 2 or fleet.device("WS1")["retries"]
              != 1 or fleet.reasons().count("DeviceRetried") != 1,
              "the same annotation value acted on twice")
        assert fleet.device("WS1")["actions"][1]["attempts"] == 2

        # A new value is a new request.
        fleet.annotate("ferry.dev/retry-devices", "WS1 after-unlock")
        eventually(lambda: fleet.plans()["WS1"].generation == 3, "generation 3")
        fleet.report("WS1", 3, "2-DomainJoin")
        fleet.report("WS1", 3, "3-Reboot")
        status = waits(fleet, lambda s: s.get("phase") == "Completed", "Completed")
        assert status["devices"][0]["retries"] == 2
        assert fleet.reasons().count("DeviceRetried") == 2


def test_a_device_taken_out_of_its_wave_and_put_back_resumes_its_generation(
        fleet: Fleet) -> None:
    fleet.apply(migration())
    fleet.enroll("ws1")
    with fleet.operator():
        waits(fleet, lambda s: phases(s).get("WS1") == "ReACL", "WS1 in ReACL")
        fleet.report("WS1", 1, "1-ReACL")
        fleet.report("WS1", 1, "2-DomainJoin", ok=False, message="first try: DC unreachable")
        waits(fleet, lambda s: phases(s).get("WS1") == "Failed", "WS1 Failed")
        fleet.annotate("ferry.dev/retry-devices", "WS1")
        eventually(lambda: fleet.plans()["WS1"].generation == 2, "generation 2")
        fleet.report("WS1", 2, "2-DomainJoin", ok=False, message="second try: account locked")
        waits(fleet, lambda s: fleet.device("WS1").get("message")
              == "2-DomainJoin: second try: account locked", "WS1 Failed again")

        fleet.patch_spec({"waves": [{"name": "pilot", "devices": ["ws2"]}]})
        eventually(lambda: "WS1" not in fleet.plans(), "WS1's plan dropped")
        waits(fleet, lambda s: s.get("unmatchedDevices") == ["WS1"], "WS1 unmatched")
        fleet.patch_spec({"waves": [{"name": "pilot", "devices": ["ws1", "ws2"]}]})
        plan = eventually(lambda: fleet.plans().get("WS1"), "WS1 planned again")
        assert plan.generation == 2
        assert [a.id for a in plan.actions] == ["2-DomainJoin", "3-Reboot"]
        ws1 = waits(fleet, lambda s: phases(s).get("WS1") == "Failed", "WS1 shown again")
        assert fleet.device("WS1")["message"] == "2-DomainJoin: second try: account locked"
        assert not ws1.get("unmatchedDevices")

        fleet.annotate("ferry.dev/retry-devices", "WS1 again")
        eventually(lambda: fleet.plans()["WS1"].generation == 3, "generation 3")
        fleet.report("WS1", 3, "2-DomainJoin")
        fleet.report("WS1", 3, "3-Reboot")
        waits(fleet, lambda s: phases(s).get("WS1") == "Done", "WS1 Done")


def test_a_rollback_restores_the_source_and_is_refused_once_the_source_was_disabled(
        fleet: Fleet) -> None:
    fleet.apply(migration(waves=[{"name": "pilot", "devices": ["ws1"]}]),
                migration("no-way-back", waves=[{"name": "pilot", "devices": ["ws2"]}],
                          options={"keepSourceAccount": False}))
    fleet.enroll("ws1")
    fleet.enroll("ws2", name="no-way-back")
    with fleet.operator():
        waits(fleet, lambda s: phases(s) == {"WS1": "ReACL"}, "WS1 in ReACL")
        waits(fleet, lambda s: phases(s) == {"WS2": "ReACL"}, "WS2 in ReACL",
              name="no-way-back")
        for action_id in ("1-ReACL", "2-DomainJoin", "3-Reboot"):
            fleet.report("WS1", 1, action_id)
            fleet.report("WS2", 1, action_id, name="no-way-back")
        waits(fleet, lambda s: s.get("phase") == "Completed", "move Completed")
        waits(fleet, lambda s: s.get("phase") == "Completed", "no-way-back Completed",
              name="no-way-back")
        assert "disableSource" in fleet.plans("no-way-back")["WS2"].actions[1].arguments

        fleet.annotate("ferry.dev/rollback-devices", "WS1")
        eventually(lambda: fleet.plans()["WS1"].generation == 2, "a rollback generation")
        plan = fleet.plans()["WS1"]
        assert [a.id for a in plan.actions] == ["r1-RestoreSource", "r2-UndoReACL",
                                                "r3-Reboot", "r4-UploadLogs"]
        restore = plan.actions[0]
        assert restore.arguments == {"domainController": "dc1.src.test"}
        assert restore.stage is not None and restore.stage.environment == "src"
        status = waits(fleet, lambda s: phases(s) == {"WS1": "RollingBack"}, "RollingBack")
        assert status["phase"] == "Running" and status["devices"][0]["retries"] == 0
        assert actions(status["devices"][0])["r1-RestoreSource"] == "Running"
        for action_id in ("r1-RestoreSource", "r2-UndoReACL", "r3-Reboot", "r4-UploadLogs"):
            fleet.report("WS1", 2, action_id)
        status = waits(fleet, lambda s: phases(s) == {"WS1": "RolledBack"}, "RolledBack")
        assert status["devicesRolledBack"] == 1 and status["waves"][0]["rolledBack"] == 1
        assert status["devicesDone"] == 0 and status["progress"] == "0/1"
        assert status["phase"] == "Completed"
        assert condition(status, "Progressing")["message"] == (
            "every device done or rolled back: 0 of 1 moved, 1 rolled back")
        rolled = eventually(lambda: [e for e in fleet.events()
                                     if e["reason"] == "DeviceRolledBack"], "DeviceRolledBack")
        assert rolled[0]["message"] == "device WS1 rolled back to the source"
        assert "DeviceRetried" not in fleet.reasons()

        # keepSourceAccount: false disabled WS2's source account: nothing to go back to.
        fleet.annotate("ferry.dev/rollback-devices", "WS2", name="no-way-back")
        def refused() -> dict[str, Any] | None:
            shown = fleet.device("WS2", "no-way-back")
            return shown if "cannot roll back" in (shown.get("message") or "") else None
        ws2 = eventually(refused, "the refusal in WS2's message")
        assert "keepSourceAccount is false" in ws2["message"]
        assert "enable it in the source domain" in ws2["message"]
        assert ws2["phase"] == "Done"
        assert fleet.plans("no-way-back")["WS2"].generation == 1
        event = eventually(lambda: [e for e in fleet.events("no-way-back")
                                    if e["reason"] == "RollbackRefused"], "RollbackRefused")
        assert event[0]["type"] == "Warning" and "keepSourceAccount" in event[0]["message"]
        never(lambda: fleet.reasons("no-way-back").count("RollbackRefused") != 1,
              "RollbackRefused posted again")


def test_without_a_state_store_a_device_migration_is_not_ready_saying_so(
        fleet: Fleet) -> None:
    fleet.apply(migration())
    with fleet.operator(state=False):
        status = waits(fleet, lambda s: condition(s, "Ready").get("status") == "False",
                       "Ready False")
        ready = condition(status, "Ready")
        assert ready["reason"] == "NotReady" and ready["observedGeneration"] == 1
        assert "no state store (FERRY_STATE)" in ready["message"]
        assert "state.persistence" in ready["message"]
        eventually(lambda: fleet.reasons() == ["NotReady"], "one NotReady Event")
        never(lambda: fleet.reasons() != ["NotReady"], "NotReady posted again", window=2)
        assert fleet.get()["metadata"]["generation"] == 1
    assert fleet.plans() == {}
