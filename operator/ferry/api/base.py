"""Kubernetes-shaped building blocks shared by the four kinds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, JsonValue, model_validator
from pydantic.alias_generators import to_camel

from ferry.api.errors import quoted

API_GROUP = "ferry.dev"
API_VERSION = "v1alpha1"
GROUP_VERSION = f"{API_GROUP}/{API_VERSION}"


# References to other ferry.dev objects are Kubernetes object names (DNS-1123 labels).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


@dataclass(frozen=True)
class PrinterColumn:
    """A column of `kubectl get`; priority 1 shows only with -o wide."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class CrdNames:
    """What the CustomResourceDefinition needs beyond the schema."""

    plural: str
    short_names: tuple[str, ...]
    columns: tuple[PrinterColumn, ...]


def cel(rule: str, message: str, reason: str = "FieldValueInvalid") -> dict[str, JsonValue]:
    """One x-kubernetes-validations rule: the API server refuses objects where it is false."""
    return {"rule": rule, "message": message, "reason": reason}


def validations(*rules: dict[str, JsonValue]) -> ConfigDict:
    """Model config carrying CEL rules into the generated CRD schema."""
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": list(rules)})


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

    name: str = Field(pattern=NAME_PATTERN, max_length=63)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generation: int | None = None
    uid: str | None = None
    creation_timestamp: datetime | None = Field(default=None, alias="creationTimestamp")
    deletion_timestamp: datetime | None = Field(default=None, alias="deletionTimestamp")


class Resource(ApiModel):
    """A ferry.dev object: apiVersion, kind, metadata, spec and (Ferry-owned) status."""

    api_version: str = Field(alias="apiVersion")
    kind: str
    metadata: ObjectMeta
    status: Any = None

    # Set by each kind: its CRD names and printer columns.
    crd: ClassVar[CrdNames]

    @classmethod
    def without_status(cls, body: Mapping[str, Any]) -> Self:
        """The object as the API server sent it, but for its status (Ferry's, see
        ferry.api.status.StatusModel.of): a status this version cannot read is no error."""
        return cls.model_validate({**body, "status": None})

    @model_validator(mode="after")
    def _check_api_version(self) -> Resource:
        if self.api_version != GROUP_VERSION:
            raise ValueError(f"apiVersion must be {GROUP_VERSION!r},"
                             f" not {quoted(self.api_version)}")
        return self


class SecretKeySelector(ApiModel):
    """A key of a Kubernetes Secret in the object's namespace."""

    name: str = Field(max_length=253, description="Name of the Secret.")
    key: str = Field(max_length=253, description="Key within the Secret's data.")


class ValueSource(ApiModel):
    """Where a secret value comes from: exactly one of a Secret key, an environment variable or
    a file. Values are read when needed and never written anywhere."""

    model_config = validations(cel(
        "[has(self.secretKeyRef), has(self.env), has(self.file)].exists_one(x, x)",
        "set exactly one of secretKeyRef, env or file",
    ))

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
