"""Graph properties Ferry reads and writes, per object type, and how their values convert.

The engine compares strings and tuples of strings; Graph has booleans and string lists too.
A staged attribute Graph does not know (say, an AD name in a template) is refused per object
with the property's name, rather than sent and failing the whole request.
"""

from __future__ import annotations

from typing import Any

from ferry.engine.records import AttributeValue, ObjectType

USER_PROPERTIES = frozenset({
    "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "country",
    "department", "displayName", "employeeHireDate", "employeeId", "employeeType",
    "externalUserState", "faxNumber", "givenName", "jobTitle", "mail", "mailNickname",
    "mobilePhone", "officeLocation", "otherMails", "postalCode", "preferredLanguage",
    "proxyAddresses", "showInAddressList", "state", "streetAddress", "surname",
    "usageLocation", "userPrincipalName", "userType", "creationType",
})
GROUP_PROPERTIES = frozenset({
    "classification", "description", "displayName", "groupTypes", "mail", "mailEnabled",
    "mailNickname", "proxyAddresses", "securityEnabled", "visibility",
})
CONTACT_PROPERTIES = frozenset({
    "companyName", "department", "displayName", "givenName", "jobTitle", "mail",
    "mailNickname", "proxyAddresses", "surname",
})
DEVICE_PROPERTIES = frozenset({
    "accountEnabled", "deviceId", "displayName", "operatingSystem", "operatingSystemVersion",
    "trustType",
})
PROPERTIES = {ObjectType.USER: USER_PROPERTIES, ObjectType.GROUP: GROUP_PROPERTIES,
              ObjectType.CONTACT: CONTACT_PROPERTIES, ObjectType.DEVICE: DEVICE_PROPERTIES}
# Read on every object of the type whatever the workflow asks.
BASE_PROPERTIES = {
    ObjectType.USER: ("id", "displayName", "userPrincipalName", "mail", "mailNickname",
                      "accountEnabled", "userType"),
    ObjectType.GROUP: ("id", "displayName", "mailNickname", "mail", "securityEnabled",
                       "mailEnabled", "groupTypes"),
    ObjectType.CONTACT: ("id", "displayName", "mail"),
    ObjectType.DEVICE: ("id", "displayName", "deviceId", "accountEnabled"),
}
# Properties that describe the object rather than carry staged data.
NOT_STAGED = frozenset({"id", "accountEnabled", "@odata.type", "members@delta"})
# Set by Ferry's own logic on create, never staged into a request body.
PSEUDO = frozenset({"invitedUserEmailAddress"})
READ_ONLY = frozenset({"proxyAddresses", "externalUserState", "creationType", "deviceId"})

_BOOLEANS = frozenset({"accountEnabled", "securityEnabled", "mailEnabled", "showInAddressList"})
_LISTS = frozenset({"businessPhones", "otherMails", "proxyAddresses", "groupTypes"})


def selected(object_type: ObjectType, wanted: set[str]) -> list[str]:
    """The $select list: the base properties plus those wanted that Graph knows."""
    known = PROPERTIES[object_type]
    return [*BASE_PROPERTIES[object_type],
            *sorted(n for n in wanted if n in known and n not in BASE_PROPERTIES[object_type])]


def to_attribute(value: Any) -> AttributeValue | None:
    """A Graph JSON value as the engine's string or tuple of strings (None: no value)."""
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        items = tuple(str(item) for item in value if item not in (None, ""))
        return items[0] if len(items) == 1 else (items or None)
    return str(value)


def to_graph(name: str, value: AttributeValue | None) -> Any:
    """A staged value as Graph JSON for property `name`."""
    if name in _LISTS:
        if value is None:
            return []
        return [value] if isinstance(value, str) else list(value)
    if value is None:
        return None
    single = value if isinstance(value, str) else (value[0] if value else "")
    if name in _BOOLEANS:
        return single.lower() == "true"
    return single
