"""Template: reusable rules that turn a source object into the desired target object."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field, model_validator

from ferry.api.base import ApiModel, Resource, ValueSource
from ferry.api.environment import ScopeObjectType


class ApplyWhen(StrEnum):
    ALWAYS = "Always"
    ON_CREATE = "OnCreate"
    WHEN_EMPTY = "WhenEmpty"


class AttributeMapping(ApiModel):
    target: str = Field(description="Target attribute to set.")
    expression: str = Field(
        description="CEL expression over `source` (the source attributes), `dn` and `objectType`;"
        " null leaves the attribute empty.",
        min_length=1,
    )
    apply: ApplyWhen = Field(
        default=ApplyWhen.ALWAYS,
        description="Always: every run. OnCreate: only when creating. WhenEmpty: only when the"
        " target attribute has no value.",
    )
    object_types: list[ScopeObjectType] = Field(
        default_factory=list, description="Object types this mapping applies to; empty: all."
    )


class DomainMapping(ApiModel):
    source: str = Field(description="Source domain, e.g. contoso.com.")
    target: str = Field(description="Domain it becomes in the target, e.g. fabrikam.com.")


class OuMapping(ApiModel):
    source_ou: str = Field(alias="sourceOU", description="Source container (DN).")
    target_ou: str = Field(alias="targetOU", description="Target container (DN) objects go to.")


class TargetOu(ApiModel):
    default: str = Field(description="Container for objects no mapping covers (DN).")
    mappings: list[OuMapping] = Field(
        default_factory=list, description="Per source OU placement; the deepest match wins."
    )


class TypeSwitch(ApiModel):
    create: bool = Field(default=True, description="Create unmatched objects of this type.")
    update: bool = Field(default=True, description="Update matched objects of this type.")
    delete: bool = Field(default=True, description="Allow DeleteObjects for this type.")


class ObjectTypeSwitches(ApiModel):
    users: TypeSwitch = Field(default_factory=TypeSwitch)
    groups: TypeSwitch = Field(default_factory=TypeSwitch)
    contacts: TypeSwitch = Field(default_factory=TypeSwitch)
    devices: TypeSwitch = Field(default_factory=lambda: TypeSwitch(create=False, update=False))


class PasswordOptions(ApiModel):
    generate: bool = Field(
        default=True,
        description="Give each created user a random password meeting AD complexity; it is"
        " never stored or shown.",
    )
    value: ValueSource | None = Field(
        default=None, description="Use this initial password instead of a generated one."
    )
    must_change_at_next_logon: bool = Field(
        default=True, description="Require created users to change the password at next sign-in."
    )

    @model_validator(mode="after")
    def _one_source(self) -> PasswordOptions:
        if self.value is not None and self.generate and "generate" in self.model_fields_set:
            raise ValueError("set either generate: true or value, not both")
        return self


class TemplateSpec(ApiModel):
    include_default_mappings: bool = Field(
        default=True,
        description="Start from Ferry's built-in mappings (names, mail, UPN, org attributes);"
        " attributeMappings override them per target attribute.",
    )
    attribute_mappings: list[AttributeMapping] = Field(default_factory=list)
    domain_mappings: list[DomainMapping] = Field(
        default_factory=list,
        description="Rewrite domains in userPrincipalName, mail and proxyAddresses.",
    )
    target_ou: TargetOu = Field(alias="targetOU", description="Where created objects go.")
    object_types: ObjectTypeSwitches = Field(default_factory=ObjectTypeSwitches)
    password: PasswordOptions = Field(default_factory=PasswordOptions)
    mirror_account_state: bool = Field(
        default=True, description="Disable target users whose source is disabled, and back."
    )


class Template(Resource):
    kind: Literal["Template"]
    spec: TemplateSpec
