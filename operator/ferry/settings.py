"""Ferry's settings: the FERRY_* variables as typed, frozen trees (the model: kopf's
OperatorSettings). Each entry point (a `ferry` command, the operator's start) reads its tree
once and passes it down; no code below an entry point reads the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from ferry.errors import InvalidInput

ENV_PREFIX = "FERRY_"
# How a run reaches the agents; the operator sets them in each Job's environment.
GATEWAY_URL_ENV = "FERRY_GATEWAY_URL"
GATEWAY_CA_ENV = "FERRY_GATEWAY_CA"
GATEWAY_TOKEN_FILE_ENV = "FERRY_GATEWAY_TOKEN_FILE"


class SettingsError(InvalidInput):
    """A FERRY_* variable has a bad value; the message names the variable."""


class GatewaySettings(BaseModel):
    """How a run reaches the agents of `connection: agent` environments: the gateway."""

    model_config = ConfigDict(frozen=True)

    url: str
    ca_file: str | None = Field(
        default=None, description="CA bundle verifying the gateway; None: the system's.")
    token: SecretStr = Field(
        default=SecretStr(""), description="The job credential the gateway checks.")


class RunSettings(BaseModel):
    """What a run takes besides its manifests, secrets and state (`ferry run`, `plan`, `check`,
    `guests invite`, and the operator's Jobs `sync-job` and `discover-job`)."""

    model_config = ConfigDict(frozen=True)

    gateway: GatewaySettings | None = Field(
        default=None, description="Unset: environments with connection: agent cannot open.")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> RunSettings:
        """$FERRY_GATEWAY_URL, $FERRY_GATEWAY_CA and $FERRY_GATEWAY_TOKEN_FILE, the job
        credential: the sync Job's own (bound to its run's environments), or one
        `ferry job-credential create` signed for `ferry run`."""
        environ = os.environ if environ is None else environ
        url = environ.get(GATEWAY_URL_ENV)
        if not url:
            return cls()
        token_file = environ.get(GATEWAY_TOKEN_FILE_ENV)
        token = _read(GATEWAY_TOKEN_FILE_ENV, token_file).strip() if token_file else ""
        ca_file = _ca_bundle(environ.get(GATEWAY_CA_ENV))
        return cls(gateway=GatewaySettings(url=url, ca_file=ca_file, token=SecretStr(token)))


class OperatorSettings(BaseModel):
    """What the operator needs to know about its release; one field per FERRY_* variable
    (the Helm chart sets them)."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = Field(
        default=None, description="Namespace to watch; unset with cluster_wide to watch all."
    )
    cluster_wide: bool = Field(default=False, description="Watch every namespace.")
    image: str = Field(default="ferry:latest", description="Image of sync Jobs.")
    image_pull_policy: str = Field(default="IfNotPresent")
    image_pull_secrets: tuple[str, ...] = Field(
        default=(), description="Secrets Jobs pull the image with (comma-separated names).")
    job_service_account: str = Field(default="ferry-sync", description="ServiceAccount of Jobs.")
    state_volume_claim: str | None = Field(
        default="ferry-state", description="PVC holding the SQLite state file; unset: emptyDir."
    )
    state_url_secret: str | None = Field(
        default=None,
        description="NAME/KEY of a Secret holding a PostgreSQL URL; replaces the SQLite file.",
    )
    job_backoff_limit: int = Field(default=2, ge=0)
    job_active_deadline_seconds: int = Field(default=6 * 3600, ge=60)
    job_ttl_seconds: int = Field(default=24 * 3600, ge=0)
    job_cpu_request: str = "250m"
    job_memory_request: str = "512Mi"
    job_cpu_limit: str = "2"
    job_memory_limit: str = "4Gi"
    history_limit: int = Field(default=10, ge=1, le=20)
    gateway_url: str | None = Field(
        default=None, description="The gateway's in-cluster URL, for connection: agent."
    )
    gateway_ca: str | None = Field(
        default=None, description="CA bundle verifying the gateway (a file); Jobs get a copy."
    )
    job_signing_key_file: str | None = Field(
        default=None, description="The job signing key (a file): each Job gets a credential"
        " bound to its run's environments, signed with it.",
    )
    tick_seconds: float = Field(default=15.0, gt=0, description="How often schedules are checked.")
    state: str | None = Field(
        default=None, description="The state store the gateway serves device agents from (a"
        " SQLite path on the shared volume or a PostgreSQL URL): DeviceMigrations write their"
        " device plans there and read results back; unset: DeviceMigrations are not Ready.")

    metrics_listen: str | None = Field(
        default=None, description="HOST:PORT serving Prometheus metrics over plain HTTP (a"
        " port of its own: kopf's liveness server takes no routes); unset: none.")

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> OperatorSettings:
        """Settings from FERRY_* variables; a bad value names the variable."""
        environ = os.environ if environ is None else environ
        values = {name: environ[ENV_PREFIX + name.upper()]
                  for name in cls.model_fields if ENV_PREFIX + name.upper() in environ}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(f"{ENV_PREFIX}{str(e['loc'][0]).upper()}: {e['msg']}"
                                 for e in exc.errors())
            raise SettingsError(f"invalid operator settings: {problems}") from None

    @field_validator("image_pull_secrets", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(n.strip() for n in value.split(",") if n.strip())
        return value

    @field_validator("metrics_listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        host, sep, port = (value or "").rpartition(":")
        if value and (not sep or not host.strip("[]") or not port.isdigit()
                      or not 0 < int(port) < 65536):
            raise ValueError(f"{value!r}: expected HOST:PORT, e.g. 0.0.0.0:9090")
        return value or None

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """(host, port) of metrics_listen."""
        if not self.metrics_listen:
            return None
        host, _, port = self.metrics_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def watched_namespaces(self) -> list[str]:
        if self.cluster_wide or not self.namespace:
            return []
        return [self.namespace]

    def gateway(self, token: str) -> GatewaySettings | None:
        """How the operator itself reaches the gateway, with `token` (None: no gateway)."""
        if not self.gateway_url:
            return None
        return GatewaySettings(url=self.gateway_url, ca_file=_ca_bundle(self.gateway_ca),
                               token=SecretStr(token))


def _ca_bundle(path: str | None) -> str | None:
    """The CA bundle file to verify the gateway with; None for the system's trust store, also
    when the bundle is empty (the gateway has a publicly trusted certificate)."""
    return path if path and _read(GATEWAY_CA_ENV, path).strip() else None


def _read(variable: str, path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"{variable}: cannot read {path}: {exc.strerror}") from None
