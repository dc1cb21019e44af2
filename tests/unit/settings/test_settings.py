"""The settings trees: read from the FERRY_* variables an entry point is given, bad values
named by variable, and nothing below an entry point reading the environment."""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import pytest

from ferry.api.loader import load_manifests
from ferry.connectors.factory import ConnectorUnavailable, open_connector
from ferry.errors import ExitCode
from ferry.secrets import SecretResolver
from ferry.settings import OperatorSettings, RunSettings, SettingsError

AGENT_ENVIRONMENT = """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {name: corp}
spec:
  type: ActiveDirectory
  connection: agent
  activeDirectory: {host: dc1.corp.example, baseDN: "DC=corp,DC=example"}
"""


def test_a_run_reaches_the_gateway_the_variables_name(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("the-credential\n")
    (tmp_path / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\n")
    settings = RunSettings.from_environment({
        "FERRY_GATEWAY_URL": "https://gateway:8443",
        "FERRY_GATEWAY_CA": str(tmp_path / "ca.crt"),
        "FERRY_GATEWAY_TOKEN_FILE": str(tmp_path / "token")})
    assert settings.gateway is not None
    assert (settings.gateway.url, settings.gateway.ca_file) == (
        "https://gateway:8443", str(tmp_path / "ca.crt"))
    assert settings.gateway.token.get_secret_value() == "the-credential"
    assert "the-credential" not in repr(settings)  # settings may be logged, secrets never
    assert RunSettings.from_environment({}).gateway is None


def test_an_empty_ca_bundle_means_the_system_trust_store(tmp_path: Path) -> None:
    (tmp_path / "ca.crt").write_text("\n")
    settings = RunSettings.from_environment({"FERRY_GATEWAY_URL": "https://gateway",
                                             "FERRY_GATEWAY_CA": str(tmp_path / "ca.crt")})
    assert settings.gateway is not None and settings.gateway.ca_file is None


def test_an_unreadable_credential_file_is_invalid_input_naming_the_variable(
        tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as raised:
        RunSettings.from_environment({"FERRY_GATEWAY_URL": "https://gateway",
                                      "FERRY_GATEWAY_TOKEN_FILE": str(tmp_path / "nope")})
    assert str(raised.value) == (f"FERRY_GATEWAY_TOKEN_FILE: cannot read {tmp_path / 'nope'}:"
                                 " No such file or directory")
    assert raised.value.exit_code is ExitCode.INVALID_INPUT


def test_a_bad_operator_setting_names_its_variable() -> None:
    with pytest.raises(SettingsError, match="FERRY_TICK_SECONDS: Input should be greater than 0"):
        OperatorSettings.from_environment({"FERRY_TICK_SECONDS": "0"})
    settings = OperatorSettings.from_environment({"FERRY_NAMESPACE": "tenant-a",
                                                  "FERRY_HISTORY_LIMIT": "5"})
    assert (settings.watched_namespaces, settings.history_limit) == (["tenant-a"], 5)


@pytest.mark.parametrize("listen", ["9090", ":9090", "0.0.0.0:http", "0.0.0.0:70000"])
def test_a_bad_metrics_address_is_refused_naming_the_variable_and_the_form(listen: str) -> None:
    with pytest.raises(SettingsError, match=r"FERRY_METRICS_LISTEN: .*expected HOST:PORT, e\.g"
                                            r"\. 0\.0\.0\.0:9090"):
        OperatorSettings.from_environment({"FERRY_METRICS_LISTEN": listen})


def test_the_metrics_address_is_host_and_port_ipv6_included() -> None:
    assert OperatorSettings.from_environment({}).metrics_address is None
    assert OperatorSettings.from_environment(
        {"FERRY_METRICS_LISTEN": "0.0.0.0:9090"}).metrics_address == ("0.0.0.0", 9090)
    assert OperatorSettings.from_environment(
        {"FERRY_METRICS_LISTEN": "[::1]:9090"}).metrics_address == ("::1", 9090)


def test_a_connector_uses_the_settings_it_is_given_not_the_environment(
        tmp_path: Path) -> None:
    (tmp_path / "env.yaml").write_text(AGENT_ENVIRONMENT)
    env = load_manifests([tmp_path / "env.yaml"]).environments["corp"]
    secrets = SecretResolver.from_environment(str(tmp_path))
    with (mock.patch.dict(os.environ, {"FERRY_GATEWAY_URL": "https://gateway"}),
          pytest.raises(ConnectorUnavailable) as raised):
        open_connector(env, secrets, RunSettings())
    assert str(raised.value) == (
        "Environment/corp: spec.connection is agent, but no gateway is configured; set"
        " FERRY_GATEWAY_URL, FERRY_GATEWAY_CA and FERRY_GATEWAY_TOKEN_FILE")
