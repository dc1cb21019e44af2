"""The generated CRDs on a real API server: valid manifests go in, each kind of invalid one is
refused by the server itself with the CEL or schema message, and kubectl teaches the fields."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from tests.support.kube_api import KubeAPI

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "ad-to-ad"

WORKFLOW = {
    "apiVersion": "ferry.dev/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "wf"},
    "spec": {
        "steps": [
            {"readFrom": {"environments": ["src", "tgt"]}},
            {"match": {"source": "src", "target": "tgt",
                       "rules": [{"sourceAttribute": "mail", "targetAttribute": "mail"}]}},
            {"stageData": {"template": "t", "pairs": [{"source": "src", "target": "tgt"}]}},
            {"writeTo": {"environments": ["tgt"]}},
            {"deleteObjects": {"pairs": [{"source": "src", "target": "tgt", "threshold": 5}]}},
        ],
    },
}
ENVIRONMENT = {
    "apiVersion": "ferry.dev/v1alpha1",
    "kind": "Environment",
    "metadata": {"name": "env"},
    "spec": {
        "type": "ActiveDirectory",
        "activeDirectory": {
            "host": "dc1.corp.example", "baseDN": "DC=corp,DC=example",
            "credentials": {"username": "svc@corp.example",
                            "password": {"secretKeyRef": {"name": "ad", "key": "password"}}},
        },
    },
}


def _steps(*steps: dict) -> dict:
    return {**WORKFLOW, "spec": {**WORKFLOW["spec"], "steps": list(steps)}}


READ = {"readFrom": {"environments": ["src", "tgt"]}}
STAGE = {"stageData": {"template": "t", "pairs": [{"source": "src", "target": "tgt"}]}}
WRITE = {"writeTo": {"environments": ["tgt"]}}

INVALID = {
    "interval below 15 minutes": (
        {**WORKFLOW, "spec": {**WORKFLOW["spec"], "schedule": {"intervalMinutes": 5}}},
        "spec.schedule.intervalMinutes: Invalid value: 5",
    ),
    "interval and time of day": (
        {**WORKFLOW, "spec": {**WORKFLOW["spec"],
                              "schedule": {"intervalMinutes": 60, "timeOfDay": "02:00"}}},
        "set intervalMinutes or timeOfDay, not both",
    ),
    "time of day out of range": (
        {**WORKFLOW, "spec": {**WORKFLOW["spec"], "schedule": {"timeOfDay": "25:00"}}},
        "spec.schedule.timeOfDay",
    ),
    "match before readFrom": (
        _steps(WORKFLOW["spec"]["steps"][1], READ, STAGE, WRITE),
        "a match step needs an earlier readFrom step reading its source and its target",
    ),
    "writeTo without a stageData pair": (
        _steps(READ, {"writeTo": {"environments": ["src"]}}, STAGE, WRITE),
        "writeTo may only write environments that an earlier stageData pair targets",
    ),
    "deleteObjects on a pair never staged": (
        _steps(READ, STAGE, WRITE,
               {"deleteObjects": {"pairs": [{"source": "tgt", "target": "src"}]}}),
        "deleteObjects may only name source/target pairs of an earlier stageData step",
    ),
    "staged target never written": (
        _steps(READ, STAGE),
        "every stageData target needs a writeTo step (or set testMode: true)",
    ),
    "negative delete threshold": (
        _steps(READ, STAGE, WRITE,
               {"deleteObjects": {"pairs": [{"source": "src", "target": "tgt",
                                             "threshold": -1}]}}),
        "threshold: Invalid value: -1",
    ),
    "two kinds in one step": (
        _steps({**READ, **WRITE}, STAGE, WRITE),
        "a step sets exactly one of readFrom, match, stageData, writeTo, deleteObjects,"
        " runScript",
    ),
    "stage pair onto itself": (
        _steps(READ, {"stageData": {"template": "t", "pairs": [{"source": "src",
                                                               "target": "src"}]}}, WRITE),
        "source and target must be different environments",
    ),
    "unknown field": (
        _steps({"readFrom": {"environments": ["src", "tgt"], "environmentz": ["x"]}}, STAGE,
               WRITE),
        'unknown field "spec.steps[0].readFrom.environmentz"',
    ),
    "wrong type": (
        {**WORKFLOW, "spec": {**WORKFLOW["spec"], "testMode": "yes"}},
        "spec.testMode: Invalid value: \"string\": spec.testMode in body must be of type boolean",
    ),
    "environment block not matching the type": (
        {**ENVIRONMENT, "spec": {**ENVIRONMENT["spec"],
                                 "entraID": {"tenantId": "t", "clientId": "c",
                                             "credentials": {"workloadIdentity": {}}}}},
        "type ActiveDirectory takes only activeDirectory; remove entraID",
    ),
    "environment without its block": (
        {**ENVIRONMENT, "spec": {"type": "EntraID"}},
        "type EntraID needs the entraID block",
    ),
    "entra credentials of two kinds": (
        {**ENVIRONMENT, "spec": {"type": "EntraID", "entraID": {
            "tenantId": "t", "clientId": "c", "credentials": {
                "workloadIdentity": {}, "clientSecret": {"env": "SECRET"}}}}},
        "set exactly one of clientSecret, certificate or workloadIdentity",
    ),
    "entra through agents": (
        {**ENVIRONMENT, "spec": {"type": "EntraID", "connection": "agent", "entraID": {
            "tenantId": "t", "clientId": "c", "credentials": {"workloadIdentity": {}}}}},
        "Ferry reaches Entra ID through Microsoft Graph itself: use connection direct",
    ),
    "device migration onto itself": (
        {"apiVersion": "ferry.dev/v1alpha1", "kind": "DeviceMigration",
         "metadata": {"name": "dm"},
         "spec": {"source": "src", "target": "src", "workflow": "wf",
                  "actions": ["ReACL", "OfflineDomainJoin", "Reboot"],
                  "waves": [{"name": "pilot", "devices": ["WS1"]}]}},
        "source and target must be different environments",
    ),
    "unknown device action": (
        {"apiVersion": "ferry.dev/v1alpha1", "kind": "DeviceMigration",
         "metadata": {"name": "dm"},
         "spec": {"source": "src", "target": "tgt", "workflow": "wf",
                  "actions": ["Reformat"], "waves": [{"name": "pilot", "devices": ["WS1"]}]}},
        'Unsupported value: "Reformat"',
    ),
    "direct connection without credentials": (
        {**ENVIRONMENT, "spec": {**ENVIRONMENT["spec"], "activeDirectory": {
            "host": "dc1.corp.example", "baseDN": "DC=corp,DC=example"}}},
        "connection direct needs activeDirectory.credentials",
    ),
    "smtp password without STARTTLS": (
        {**WORKFLOW, "spec": {**WORKFLOW["spec"], "alerts": [{"name": "ops", "email": {
            "to": ["ops@example.test"], "from": "ferry@example.test",
            "smtp": {"host": "mail", "startTLS": False, "username": "u",
                     "password": {"secretKeyRef": {"name": "smtp", "key": "password"}}}}}]}},
        "smtp: a password is only sent after STARTTLS: set startTLS: true",
    ),
    "alert with two channels": (
        {**WORKFLOW, "spec": {**WORKFLOW["spec"], "alerts": [{"name": "ops",
            "webhook": {"url": "https://x.test", "signingKey": {"env": "K"}},
            "email": {"to": ["a@x.test"], "from": "f@x.test", "smtp": {"host": "m"}}}]}},
        "set exactly one of webhook or email",
    ),
    "secret from two sources": (
        {**ENVIRONMENT, "spec": {**ENVIRONMENT["spec"], "activeDirectory": {
            **ENVIRONMENT["spec"]["activeDirectory"],
            "credentials": {"username": "u", "password": {
                "env": "AD_PASSWORD", "secretKeyRef": {"name": "ad", "key": "password"}}}}}},
        "set exactly one of secretKeyRef, env or file",
    ),
}


@pytest.fixture(scope="module")
def crds(kube_api: KubeAPI) -> KubeAPI:
    kube_api.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    for plural in ("environments", "templates", "workflows", "devicemigrations"):
        kube_api.kubectl("wait", "--for=condition=Established", f"crd/{plural}.ferry.dev",
                         "--timeout=60s")
    return kube_api


def test_the_examples_are_accepted_and_listed_under_the_ferry_category(
        crds: KubeAPI, kube_namespace: str) -> None:
    crds.kubectl("apply", "-f", str(EXAMPLES), namespace=kube_namespace)
    listed = crds.kubectl("get", "ferry", namespace=kube_namespace).stdout
    for name in ("environment.ferry.dev/src", "environment.ferry.dev/tgt",
                 "template.ferry.dev/src-to-tgt", "workflow.ferry.dev/ad-to-ad"):
        assert name in listed, listed
    short = crds.kubectl("get", "fwf", namespace=kube_namespace).stdout
    assert "ad-to-ad" in short
    # defaults from the models are applied by the server
    stored = yaml.safe_load(crds.kubectl("get", "workflow", "ad-to-ad", "-o", "yaml",
                                         namespace=kube_namespace).stdout)
    assert stored["spec"]["testMode"] is False
    assert stored["spec"]["steps"][4]["deleteObjects"]["pairs"][0]["threshold"] == 10


@pytest.mark.parametrize("case", list(INVALID), ids=list(INVALID))
def test_invalid_manifests_are_refused_by_the_api_server(crds: KubeAPI, kube_namespace: str,
                                                         case: str) -> None:
    manifest, message = INVALID[case]
    done = crds.kubectl("apply", "-f", "-", namespace=kube_namespace,
                        input=yaml.safe_dump(manifest), check=False)
    assert done.returncode != 0, f"{case}: accepted\n{done.stdout}"
    assert message in done.stderr, done.stderr
    kind = manifest["kind"].lower()
    gone = crds.kubectl("get", kind, manifest["metadata"]["name"], namespace=kube_namespace,
                        check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_an_agent_environment_needs_no_credentials_in_the_cluster(
        crds: KubeAPI, kube_namespace: str) -> None:
    agent = {**ENVIRONMENT, "spec": {**ENVIRONMENT["spec"], "connection": "agent",
                                     "activeDirectory": {"host": "dc1.corp.example",
                                                         "baseDN": "DC=corp,DC=example"}}}
    crds.kubectl("apply", "-f", "-", namespace=kube_namespace, input=yaml.safe_dump(agent))


def test_kubectl_explain_teaches_the_fields(crds: KubeAPI) -> None:
    deadline = time.monotonic() + 60
    while True:  # the server publishes a new CRD's OpenAPI a moment after it is Established
        done = crds.kubectl("explain", "workflow.spec.steps", check=False)
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "The steps, run in order." in text
    for field in ("readFrom", "match", "stageData", "writeTo", "deleteObjects", "runScript"):
        assert field in text
    threshold = crds.kubectl("explain", "workflow.spec.steps.deleteObjects.pairs.threshold")
    assert "Most objects one run may delete in the target" in threshold.stdout
    env = crds.kubectl("explain", "environment.spec.activeDirectory.tls.insecureSkipVerify")
    assert "never in production" in env.stdout


@pytest.mark.parametrize("example", ["ad-to-entra", "tenant-to-tenant"])
def test_the_entra_examples_are_accepted(crds: KubeAPI, kube_namespace: str,
                                         example: str) -> None:
    folder = ROOT / "examples" / example
    crds.kubectl("apply", "--dry-run=server", "-f", str(folder), namespace=kube_namespace)
