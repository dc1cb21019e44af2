"""The directory objects the engine works on, independent of any directory's wire format."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ObjectType(StrEnum):
    USER = "user"
    GROUP = "group"
    CONTACT = "contact"
    DEVICE = "device"


# Attributes whose values name other objects. Connectors translate them to anchors on read
# and back to DNs (or ids) on write, so the engine only ever compares anchors.
REFERENCE_ATTRIBUTES = ("member", "manager")

# Values are a str for single-valued attributes and a tuple of str for multi-valued ones.
AttributeValue = str | tuple[str, ...]


@dataclass(slots=True)
class Record:
    """One directory object as read: its immutable anchor, location and attributes.

    `attributes` never holds reference attributes; those live in `references` as anchors of
    the objects they point to (in the same directory). `enabled` is None where the notion does
    not apply (groups, contacts).
    """

    anchor: str
    object_type: ObjectType
    dn: str
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    references: dict[str, tuple[str, ...]] = field(default_factory=dict)
    enabled: bool | None = None
