"""Staging: turn a source record into the desired target object by applying a template."""

from __future__ import annotations

from collections.abc import Mapping

from ferry.engine.expressions import CompiledTemplate
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry_agent.dn import build_dn, parent_dn, rdn_value


class Staged:
    """The desired target object: its DN, enabled state, references (source anchors) and
    values aligned with its layout's attribute names, None where a mapping gave no value."""

    __slots__ = ("anchor", "dn", "enabled", "names", "object_type", "references", "values")

    def __init__(self, anchor: str, object_type: ObjectType, dn: str, names: tuple[str, ...],
                 values: tuple[AttributeValue | None, ...],
                 references: Mapping[str, tuple[str, ...]], enabled: bool | None) -> None:
        self.anchor = anchor  # the target object's anchor; "" when there is none yet
        self.object_type = object_type
        self.dn = dn
        self.names = names
        self.values = values
        self.references = references
        self.enabled = enabled

    def get(self, name: str) -> AttributeValue | None:
        """The staged value of attribute `name` (None: no value, or not mapped)."""
        try:
            return self.values[self.names.index(name)]
        except ValueError:
            return None

    @property
    def attributes(self) -> dict[str, AttributeValue]:
        """The staged values as a dict, without attributes whose mapping gave no value."""
        return {name: value for name, value in zip(self.names, self.values, strict=True)
                if value is not None}


def stage(record: Record, template: CompiledTemplate, target_anchor: str = "") -> Staged:
    """The target object record should become (references stay source anchors); raises
    ExpressionError when a mapping fails."""
    object_type = record.object_type
    layout = template.layout(object_type)
    get = record.attributes.get
    # `or None`: an empty value is no value.
    values: list[AttributeValue | None] = [get(key) or None for key in layout.copies]
    for expression in layout.computed:
        values.append(expression.evaluate(record))
    if layout.domain:
        mapper = template.domain_mapper
        for position in layout.domain:
            value = values[position]
            if value is not None:
                values[position] = mapper.map(value)
    staging = template.staging
    rdn = values[layout.rdn] if layout.rdn >= 0 else None
    if isinstance(rdn, tuple):
        rdn = rdn[0]
    if not rdn:
        rdn = rdn_value(record.dn)
    dn = build_dn(rdn, template.target_ou(parent_dn(record.dn)) if template.has_ou_mappings
                  else staging.default_target_ou)
    enabled = record.enabled if staging.mirror_enabled and object_type is ObjectType.USER else None
    # References are shared, not copied: the engine never mutates records it was given.
    return Staged(target_anchor, object_type, dn, layout.names, tuple(values), record.references,
                  enabled)
