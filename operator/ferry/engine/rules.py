"""What a workflow asks of the engine for one source/target pair, as plain dataclasses.

The API layer (ferry.api) translates manifests into these; the engine never sees YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from ferry.engine.records import ObjectType


class ApplyWhen(StrEnum):
    ALWAYS = "Always"          # every run
    ON_CREATE = "OnCreate"     # only when the target object is created
    WHEN_EMPTY = "WhenEmpty"   # only when the target attribute has no value


@dataclass(frozen=True, slots=True)
class MatchRule:
    """Join a source object to the target object whose target_attribute equals source_attribute.

    Comparison is case-insensitive; multi-valued attributes match on any value. A guest rule
    compares B2B guest forms instead: source `local@domain` (domain covered by a domain
    mapping) with a target `local_domain#EXT#@tenant`.
    """

    source_attribute: str
    target_attribute: str
    guest: bool = False


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    """Set target_attribute from a CEL expression over `source` (the source record's attributes).

    `object_types` empty means every type. An expression returning null clears the attribute.
    """

    target_attribute: str
    expression: str
    apply: ApplyWhen = ApplyWhen.ALWAYS
    object_types: frozenset[ObjectType] = frozenset()
    # What made this mapping, for `ferry trace`: a built-in rule or a Template's field.
    origin: str = ""


@dataclass(frozen=True, slots=True)
class DomainMapping:
    source_domain: str
    target_domain: str


@dataclass(frozen=True, slots=True)
class OuMapping:
    """Objects below source_ou go below target_ou (the longest matching source_ou wins)."""

    source_ou: str
    target_ou: str


@dataclass(frozen=True, slots=True)
class TypeSwitch:
    create: bool = True
    update: bool = True
    delete: bool = True


@dataclass(frozen=True, slots=True)
class StagingRules:
    """A compiled Template: how a source object becomes the desired target object."""

    template_name: str
    mappings: tuple[AttributeMapping, ...]
    domain_mappings: tuple[DomainMapping, ...] = ()
    # Attributes that carry domains and are rewritten by domain_mappings after the mappings ran.
    domain_mapped_attributes: tuple[str, ...] = ("userPrincipalName", "mail", "proxyAddresses")
    default_target_ou: str = ""
    ou_mappings: tuple[OuMapping, ...] = ()
    # Attribute whose (escaped) value forms the target RDN, per object type: CN=<value>.
    rdn_attribute: str = "cn"
    # False for a target without containers (Entra ID): its DNs are labels, nothing moves,
    # and the RDN attribute is updated like any other.
    containers: bool = True
    object_types: dict[ObjectType, TypeSwitch] = field(default_factory=dict)
    # Mirror enabled/disabled from the source for users.
    mirror_enabled: bool = True


@dataclass(frozen=True, slots=True)
class PairRules:
    """Everything the engine needs to plan one source -> target pair."""

    name: str                       # stable key, e.g. "ad-to-ad/src->tgt"
    staging: StagingRules
    match_rules: tuple[MatchRule, ...] = ()
    object_types: frozenset[ObjectType] = frozenset(
        {ObjectType.USER, ObjectType.GROUP, ObjectType.CONTACT}
    )
    # Only source objects below one of these OUs are staged (empty: all that were read).
    source_ous: tuple[str, ...] = ()
    # Optional CEL filter over `source`; objects for which it is false are out of scope.
    source_filter: str | None = None
    # Most deletions one run may make for this pair; above it none are made.
    delete_threshold: int = 10
    delete_enabled: bool = True
