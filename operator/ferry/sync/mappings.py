"""Ferry's built-in attribute mappings, for each kind of source and target directory.

One table names each well-known attribute in Active Directory and in Microsoft Graph; the
built-in mappings of a pair copy it from the source's name to the target's name. Account
names are set once: a matched target object keeps the names it already has.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ferry.api.environment import DirectoryType
from ferry.engine import rules as er
from ferry.engine.records import ObjectType

_U, _G, _C = ObjectType.USER, ObjectType.GROUP, ObjectType.CONTACT
_ALWAYS, _ON_CREATE = er.ApplyWhen.ALWAYS, er.ApplyWhen.ON_CREATE
AD, ENTRA = DirectoryType.ACTIVE_DIRECTORY, DirectoryType.ENTRA_ID


@dataclass(frozen=True)
class KnownAttribute:
    """One attribute by its name in each directory ("" where it has none)."""

    ad: str
    graph: str
    types: frozenset[ObjectType]
    apply: er.ApplyWhen = _ALWAYS

    def name(self, directory: DirectoryType) -> str:
        return self.ad if directory is AD else self.graph


def _known(ad: str, graph: str, *types: ObjectType,
           apply: er.ApplyWhen = _ALWAYS) -> KnownAttribute:
    return KnownAttribute(ad, graph, frozenset(types), apply)


KNOWN_ATTRIBUTES: tuple[KnownAttribute, ...] = (
    _known("cn", "", _U, _G, _C),
    _known("sAMAccountName", "", _U, _G, apply=_ON_CREATE),
    _known("userPrincipalName", "userPrincipalName", _U, apply=_ON_CREATE),
    _known("groupType", "", _G, apply=_ON_CREATE),
    _known("givenName", "givenName", _U, _C),
    _known("sn", "surname", _U, _C),
    _known("initials", "", _U, _C),
    _known("company", "companyName", _U, _C),
    _known("department", "department", _U, _C),
    _known("title", "jobTitle", _U, _C),
    _known("telephoneNumber", "", _U, _C),  # Graph holds it in the businessPhones list
    _known("mobile", "mobilePhone", _U, _C),
    _known("physicalDeliveryOfficeName", "officeLocation", _U, _C),
    _known("streetAddress", "streetAddress", _U, _C),
    _known("l", "city", _U, _C),
    _known("st", "state", _U, _C),
    _known("postalCode", "postalCode", _U, _C),
    _known("co", "country", _U, _C),
    _known("employeeID", "employeeId", _U),
    _known("employeeNumber", "", _U),
    _known("targetAddress", "", _C),
    _known("displayName", "displayName", _U, _G, _C),
    _known("description", "description", _G),
    _known("description", "", _U, _C),
    _known("mail", "mail", _U, _G, _C),
    _known("proxyAddresses", "", _U, _G, _C),  # read-only in Graph
    _known("info", "", _U, _G, _C),
)

# Graph needs a mail nickname on every user and group it creates.
_MAIL_NICKNAME = {
    AD: "has(source.mailNickname) ? source.mailNickname : source.sAMAccountName",
    ENTRA: "source.mailNickname",
}


_DISPLAY_NAME = "has(source.displayName) ? source.displayName : source.cn"
# The origin (rules.AttributeMapping.origin) of every mapping made here.
BUILT_IN = "built-in mapping"


def default_mappings(source: DirectoryType, target: DirectoryType
                     ) -> list[er.AttributeMapping]:
    """The built-in mappings from a source directory of one kind to a target of another."""
    found: list[er.AttributeMapping] = []
    for known in KNOWN_ATTRIBUTES:
        from_name, to_name = known.name(source), known.name(target)
        if from_name and to_name:
            found.append(er.AttributeMapping(to_name, f"source.{from_name}", known.apply,
                                             known.types, BUILT_IN))
    if target is ENTRA:
        # A group's mail is Exchange's to assign, read-only in Graph: never planned, or every
        # run that sees a Microsoft 365 group would try (and fail) to clear it.
        found = [replace(m, object_types=m.object_types - {_G})
                 if m.target_attribute == "mail" else m for m in found]
        found.append(er.AttributeMapping("mailNickname", _MAIL_NICKNAME[source], _ON_CREATE,
                                         frozenset({_U, _G}), BUILT_IN))
        if source is AD:  # Graph requires a display name; AD objects often have only a CN
            found = [er.AttributeMapping("displayName", _DISPLAY_NAME, m.apply, m.object_types,
                                         BUILT_IN)
                     if m.target_attribute == "displayName" else m for m in found]
    elif source is ENTRA:  # AD objects are named by their CN
        found.append(er.AttributeMapping("cn", "source.displayName", _ALWAYS,
                                         frozenset({_U, _G, _C}), BUILT_IN))
    return found
