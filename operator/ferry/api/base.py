"""Kubernetes-shaped building blocks shared by the four kinds."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.alias_generators import to_camel

API_GROUP = "ferry.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


class ApiModel(BaseModel):
    """camelCase on the wire, snake_case in Python, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
    )


class ObjectMeta(BaseModel):
    """The parts of Kubernetes metadata Ferry reads; everything else is kept but ignored."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None


class Resource(ApiModel):
    """A ferry.dev object: apiVersion, kind, metadata, spec and (Ferry-owned) status."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    status: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _check_api_version(self) -> Resource:
        if self.api_version != GROUP_VERSION:
            raise ValueError(f"apiVersion must be {GROUP_VERSION!r}, not {self.api_version!r}")
        return self


class SecretKeySelector(ApiModel):
    """A key of a Kubernetes Secret in the object's namespace."""

    name: str = Field(description="Name of the Secret.")
    key: str = Field(description="Key within the Secret's data.")


class ValueSource(ApiModel):
    """Where a secret value comes from: exactly one of a Secret key, an environment variable or
    a file. Values are read when needed and never written anywhere."""

    secret_key_ref: SecretKeySelector | None = Field(
        default=None, description="A key of a Secret in the same namespace."
    )
    env: str | None = Field(default=None, description="Name of an environment variable.")
    file: str | None = Field(default=None, description="Path of a file holding the value.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ValueSource:
        chosen = [n for n in ("secret_key_ref", "env", "file") if getattr(self, n) is not None]
        if len(chosen) != 1:
            raise ValueError("set exactly one of secretKeyRef, env or file")
        return self
