"""Operator settings: environment variables the Helm chart sets (FERRY_*), with safe defaults."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError

ENV_PREFIX = "FERRY_"


class OperatorSettings(BaseModel):
    """What the operator needs to know about its release; one field per FERRY_* variable."""

    model_config = ConfigDict(frozen=True)

    namespace: str | None = Field(
        default=None, description="Namespace to watch; unset with cluster_wide to watch all."
    )
    cluster_wide: bool = Field(default=False, description="Watch every namespace.")
    image: str = Field(default="ferry:latest", description="Image of sync Jobs.")
    image_pull_policy: str = Field(default="IfNotPresent")
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
            raise ValueError(f"invalid operator settings: {problems}") from None

    @property
    def watched_namespaces(self) -> list[str]:
        if self.cluster_wide or not self.namespace:
            return []
        return [self.namespace]
