"""EntraJoin: the controller seals the provisioning package (from a Secret) to each device's
own key; only ciphertext reaches the state store, and an unreadable package says which
field and how to fix it."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ferry.api.conditions import ConditionType, get_condition
from ferry.api.devicemigration import DeviceMigration
from ferry.api.environment import Environment
from ferry.api.workflow import Workflow
from ferry.devices.reconcile import reconcile
from ferry.secrets import SecretResolver
from ferry.state.store import StateStore
from ferry_agent.sealed import Recipient, device_binding, ephemeral_key, key_id, open_sealed

PACKAGE = b"PK\x03\x04 a provisioning package with its bulk token"
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
# Enrollment checks a token against the wall clock, not the reconcile time the tests pass.
TOKEN_EXPIRY = datetime.now(UTC) + timedelta(days=1)


def environment(name: str, base: str) -> Environment:
    return Environment.model_validate({
        "apiVersion": "ferry.dev/v1alpha1", "kind": "Environment", "metadata": {"name": name},
        "spec": {"type": "ActiveDirectory", "connection": "agent",
                 "activeDirectory": {"host": f"dc1.{name}.test", "baseDN": base}}})


def workflow() -> Workflow:
    return Workflow.model_validate({
        "apiVersion": "ferry.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "users"},
        "spec": {"steps": [
            {"name": "read", "readFrom": {"environments": ["src", "tgt"]}},
            {"name": "stage", "stageData": {"template": "t", "pairs": [
                {"source": "src", "target": "tgt", "objectTypes": ["users"]}]}},
            {"name": "write", "writeTo": {"environments": ["tgt"]}}]}})


def migration(secret: str) -> DeviceMigration:
    return DeviceMigration.model_validate({
        "apiVersion": "ferry.dev/v1alpha1", "kind": "DeviceMigration",
        "metadata": {"name": "cloud", "namespace": "ns", "generation": 1},
        "spec": {"source": "src", "target": "tgt", "workflow": "users",
                 "actions": ["EntraJoin"], "waves": [{"name": "all", "devices": ["WS1"]}],
                 "options": {"entraJoin": {"package": {"secretKeyRef": {
                     "name": secret, "key": "package"}}}}}})


def run(store: StateStore, secrets_dir: Path, secret: str) -> Any:
    envs = {"src": environment("src", "DC=src,DC=test"),
            "tgt": environment("tgt", "DC=tgt,DC=test")}
    return reconcile(migration(secret), envs, workflow(), store, NOW,
                     SecretResolver(secrets_dir, secrets_dir))


def test_the_package_reaches_the_device_sealed_to_its_own_key(tmp_path: Path) -> None:
    (tmp_path / "secrets" / "ppkg").mkdir(parents=True)
    (tmp_path / "secrets" / "ppkg" / "package").write_text(base64.b64encode(PACKAGE).decode())
    key = ephemeral_key()
    pem = Recipient(key_id(key.public_key()), key.public_key()).pem()
    with StateStore(str(tmp_path / "state.sqlite")) as store:
        store.devices.add_token("h" * 64, "ns/cloud", None, TOKEN_EXPIRY)
        agent = store.devices.enroll("h" * 64, "device-1", "WS1", "ws1", "1", "windows", {},
                                     pem)
        assert agent is not None
        outcome = run(store, tmp_path / "secrets", "ppkg")
        ready = get_condition(outcome.status, ConditionType.READY)
        assert ready is not None and ready.status == "True", ready
        progress = store.devices.progress("ns/cloud", "WS1")
    (secret,) = progress.secrets.values()
    assert open_sealed(secret.sealed, key, device_binding("WS1")) == PACKAGE
    stored = (tmp_path / "state.sqlite").read_bytes()
    assert PACKAGE not in stored and base64.b64encode(PACKAGE) not in stored


def test_a_missing_package_makes_the_migration_not_ready_naming_the_field(tmp_path: Path
                                                                          ) -> None:
    key = ephemeral_key()
    pem = Recipient(key_id(key.public_key()), key.public_key()).pem()
    with StateStore(str(tmp_path / "state.sqlite")) as store:
        store.devices.add_token("h" * 64, "ns/cloud", None, TOKEN_EXPIRY)
        store.devices.enroll("h" * 64, "device-1", "WS1", "ws1", "1", "windows", {}, pem)
        (tmp_path / "secrets").mkdir()
        outcome = run(store, tmp_path / "secrets", "nope")
        assert not store.devices.progress("ns/cloud", "WS1").secrets
    ready = get_condition(outcome.status, ConditionType.READY)
    assert ready is not None and ready.reason == "SecretUnavailable"
    assert "DeviceMigration/cloud: spec.options.entraJoin.package" in ready.message
    assert [n.reason for n in outcome.notices] == ["SecretUnavailable"]
