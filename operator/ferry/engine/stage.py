"""Staging: turn a source record into the desired target record by applying a template."""

from __future__ import annotations

from ferry.engine.dn import build_dn, rdn_value
from ferry.engine.expressions import CompiledTemplate
from ferry.engine.records import AttributeValue, ObjectType, Record, split_rdn


def _parent(dn: str) -> str:
    comma = dn.find(",")
    if comma < 0:
        return ""
    if "\\" not in dn[:comma]:
        return dn[comma + 1 :]
    return split_rdn(dn)[1]  # an escaped comma in the RDN: parse properly


def stage(record: Record, template: CompiledTemplate, target_anchor: str = "") -> Record:
    """The target object record should become (references stay source anchors); raises
    ExpressionError when a mapping fails. Attributes whose mapping gave no value are absent."""
    object_type = record.object_type
    source = record.attributes
    attributes: dict[str, AttributeValue] = {
        name: value for name, key in template.copies(object_type)
        if (value := source.get(key))  # an empty value is no value
    }
    for name, expression in template.computed(object_type):
        computed = expression.evaluate(record)
        if computed is not None:
            attributes[name] = computed
    if template.domain_attributes:
        mapper = template.domain_mapper
        for name in template.domain_attributes:
            value = attributes.get(name)
            if value is not None:
                attributes[name] = mapper.map(value)
    staging = template.staging
    rdn: AttributeValue | None = attributes.get(staging.rdn_attribute)
    if isinstance(rdn, tuple):
        rdn = rdn[0]
    if not rdn:
        rdn = rdn_value(record.dn)
    dn = build_dn(rdn, template.target_ou(_parent(record.dn)) if template.has_ou_mappings
                  else template.staging.default_target_ou)
    enabled = record.enabled if staging.mirror_enabled and object_type is ObjectType.USER else None
    # References are shared, not copied: the engine never mutates records it was given.
    return Record(target_anchor, object_type, dn, attributes, record.references, enabled)
